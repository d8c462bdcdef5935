"""Notebook storage as plain Kubernetes objects and chart values.

Notebooks live in one ReadWriteMany claim on SeaweedFS, one sub-directory per user (z2jh static storage
with ``subPath``), so a server finds its files on any node. Everything that keeps SQLite databases
(IPython history, the file-ID index, the collaboration store) stays on the pod's local disk, because
SQLite locking is unreliable on network file systems.
"""

from __future__ import annotations

import re
from typing import Any

from components.core.config import StackConfig
from components.core.node_table import runs_user_pods
from components.core.nodes import Inventory

HOME = "/home/jovyan"
NOTEBOOKS_DIR = f"{HOME}/notebooks"
SCRATCH_DIR = f"{HOME}/scratch"
LOCAL_STATE_DIR = f"{HOME}/.local/state/gpu-jupyterhub"
CLAIM_NAME = "jupyterhub-notebooks"
VOLUME_NAME = "jupyterhub-notebooks"
SERVER_CONFIG_PATH = "/etc/jupyter/jupyter_server_config.json"


def user_environment() -> dict[str, Any]:
    """Environment of every user pod: where things live, SQLite files on local disk, the node's name."""
    return {
        "NODE_NAME": {"valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        "GPU_JUPYTERHUB_NOTEBOOKS_DIR": NOTEBOOKS_DIR,
        "GPU_JUPYTERHUB_SCRATCH_DIR": SCRATCH_DIR,
        "IPYTHONDIR": f"{HOME}/.ipython",
        "JUPYTER_DATA_DIR": f"{HOME}/.local/share/jupyter",
        "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
        "TMPDIR": SCRATCH_DIR,
    }


def server_config() -> dict[str, Any]:
    """jupyter_server config that pins the file-ID and collaboration databases to local paths."""
    return {
        "BaseFileIdManager": {"db_path": f"{LOCAL_STATE_DIR}/file_id_manager.db"},
        "SQLiteYStore": {"db_path": f"{LOCAL_STATE_DIR}/ystore.db"},
        "YDocExtension": {"db_path": f"{LOCAL_STATE_DIR}/ystore.db"},
    }


def singleuser_storage_values(cfg: StackConfig) -> dict[str, Any]:
    """``singleuser.storage``: the shared claim per user, scratch and shared memory."""
    return {
        "type": "static",
        "static": {"pvcName": CLAIM_NAME, "subPath": "{username}"},
        "homeMountPath": NOTEBOOKS_DIR,
        "extraVolumes": [
            {"name": "scratch", "emptyDir": {"sizeLimit": cfg.storage.scratchSize}},
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": cfg.storage.shmSize}},
        ],
        "extraVolumeMounts": [
            {"name": "scratch", "mountPath": SCRATCH_DIR},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
    }


SHARED_CODE_CLAIM = "shared-code"


def shared_code_mounts(cfg: StackConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Volume and mount for the shared code: its claim, read-only. A claim, not a hostPath, so the namespace
    keeps Pod Security "restricted" (which forbids hostPath volumes) and the hub can create no privileged pod."""
    shared = cfg.storage.sharedCode
    assert shared is not None
    volume = {"name": "shared-code", "persistentVolumeClaim": {"claimName": SHARED_CODE_CLAIM, "readOnly": True}}
    mount = {"name": "shared-code", "mountPath": shared.mountPath, "readOnly": True}
    return volume, mount


def shared_code_host(inventory: Inventory) -> str | None:
    """The node that serves the shared code: the first Ready, schedulable control-plane node (by name)."""
    hosts = sorted(n.name for n in inventory.nodes if n.control_plane and n.ready and n.schedulable)
    return hosts[0] if hosts else None


def shared_code_volume_name(namespace: str) -> str:
    return f"gpu-jupyterhub-shared-code-{namespace}"


def shared_code_objects(cfg: StackConfig, host: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ``local`` PersistentVolume of the host directory on ``host`` (the scheduler places the pods that use it
    there), read-only many, retained; and the claim bound to it. The directory must exist on the node: the
    kubelet refuses to start a pod whose local volume is missing, and creates nothing."""
    shared = cfg.storage.sharedCode
    assert shared is not None
    name = shared_code_volume_name(cfg.namespace)
    labels = {"app.kubernetes.io/part-of": "gpu-jupyterhub", "app.kubernetes.io/component": "shared-code"}
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "capacity": {"storage": "1Gi"},  # nominal: a local volume is the directory as it is
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "volumeMode": "Filesystem",
            "claimRef": {"namespace": cfg.namespace, "name": SHARED_CODE_CLAIM},
            "local": {"path": shared.hostPath},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}
                    ]
                }
            },
        },
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": SHARED_CODE_CLAIM, "namespace": cfg.namespace, "labels": labels},
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "volumeName": name,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    return volume, claim


def volume_attributes(cfg: StackConfig) -> dict[str, str]:
    """The CSI volume context; the node plugin turns known keys into ``weed mount`` flags (csi_mount.py)."""
    attrs = {
        "collection": cfg.storage.collection,
        "replication": cfg.storage.replication,
        "path": cfg.storage.path,
    }
    if cfg.storage.cacheMetaTtlSec is not None:
        attrs["cacheMetaTtlSec"] = str(cfg.storage.cacheMetaTtlSec)
    return attrs


def persistent_volume(cfg: StackConfig) -> dict[str, Any]:
    """Static RWX PV on the SeaweedFS CSI driver; Retain so a deleted claim never deletes notebooks."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": VOLUME_NAME, "labels": {"app.kubernetes.io/part-of": "gpu-jupyterhub"}},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "capacity": {"storage": cfg.storage.capacity},
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": cfg.namespace, "name": CLAIM_NAME},
            "csi": {
                "driver": cfg.storage.driver,
                "volumeHandle": cfg.storage.volumeHandle,
                "volumeAttributes": volume_attributes(cfg),
            },
        },
    }


def persistent_volume_claim(cfg: StackConfig) -> dict[str, Any]:
    """The claim user pods mount: bound to the static PV by name, or provisioned by a StorageClass."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": cfg.storage.capacity}},
    }
    if cfg.storage.mode == "static":
        spec.update({"storageClassName": "", "volumeName": VOLUME_NAME})
    else:
        spec["storageClassName"] = cfg.storage.storageClass
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": CLAIM_NAME,
            "namespace": cfg.namespace,
            "labels": {"app.kubernetes.io/part-of": "gpu-jupyterhub"},
        },
        "spec": spec,
    }


def _label(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower())[:limit].strip("-")


def verification_nodes(inventory: Inventory, tolerations: list[dict[str, str]]) -> list[str]:
    """Nodes that can run user pods now: Ready, not cordoned, no taint the pods do not tolerate, and an OS
    and architecture the images are built for (the check runs the CPU image).

    A Job pinned to any other node (a tainted control plane, a Windows node) stays Pending or fails to
    start, and `pulumi up` waits for it.
    """
    return [n.name for n in inventory.nodes if runs_user_pods(n, tolerations)]


_WRITE = """set -eu
d=/data/.storage-check/$RUN_ID
mkdir -p "$d"
echo "$NODE_NAME $(date +%s)" > "$d/$NODE_NAME.tmp"
mv "$d/$NODE_NAME.tmp" "$d/$NODE_NAME"
echo "wrote marker for $NODE_NAME"
"""

_READ = """set -u
d=/data/.storage-check/$RUN_ID
end=$(( $(date +%s) + TIMEOUT ))
while :; do
  missing=""
  for n in $EXPECTED; do [ -f "$d/$n" ] || missing="$missing $n"; done
  [ -z "$missing" ] && { echo "$NODE_NAME sees all markers"; exit 0; }
  [ "$(date +%s)" -ge "$end" ] && break
  sleep 2
done
msg="node $NODE_NAME cannot see files written on:$missing (after ${TIMEOUT}s)"
echo "$msg" | tee /dev/termination-log
exit 1
"""


def job_pod_security_context() -> dict[str, Any]:
    """The pod security context of the project's own Jobs on the notebooks volume: the notebook user (uid 1000,
    group 100, as the files' owner), never root, the runtime's default seccomp profile ("restricted")."""
    return {
        "runAsUser": 1000,
        "runAsGroup": 100,
        "fsGroup": 100,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def proof_id(
    cfg: StackConfig, nodes: list[str], image: str, tolerations: list[dict[str, str]], pull_secret: str | None
) -> str:
    """The storage proof's run id: a hash of what it proves (the volume and claim, the nodes user pods can run
    on, the image as configured) and of the Jobs themselves. The same inputs give the same Jobs, so a second
    `pulumi preview --expect-no-changes` passes; a changed node set, volume attribute or image gives new Jobs,
    and the proof runs again."""
    import hashlib
    import json

    volume = persistent_volume(cfg) if cfg.storage.mode == "static" else None
    jobs = verification_jobs(cfg, nodes, "", image, tolerations, pull_secret)
    text = json.dumps([volume, persistent_volume_claim(cfg), jobs], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def verification_jobs(
    cfg: StackConfig,
    nodes: list[str],
    run_id: str,
    image: str,
    tolerations: list[dict[str, str]],
    pull_secret: str | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Writer and reader Jobs, one of each per node, pinned to it with the user pods' tolerations.

    Each reader waits (up to storage.verifyTimeoutSeconds) until it sees every other node's marker, so a
    stale metadata cache on any node fails the check with a message naming both sides.
    """

    def job(kind: str, node: str, index: int, script: str, extra_env: list[dict[str, str]]) -> dict[str, Any]:
        pod_spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/hostname": node},
            "tolerations": tolerations,
            "securityContext": job_pod_security_context(),
            # the check reads and writes files; it has no business with the API server
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "check",
                    "image": image,
                    "command": ["/bin/sh", "-c", script],
                    "env": [
                        {"name": "NODE_NAME", "value": node},
                        {"name": "RUN_ID", "value": run_id},
                        *extra_env,
                    ],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"cpu": "200m", "memory": "64Mi"},
                    },
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "notebooks", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "notebooks", "persistentVolumeClaim": {"claimName": CLAIM_NAME}}],
        }
        if pull_secret:
            pod_spec["imagePullSecrets"] = [{"name": pull_secret}]
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                # the node's name in the Job's name, so a failed `pulumi up` names the node that failed
                "name": f"storage-{kind}-{_label(node, 32)}-{index:03d}-{run_id}",
                "namespace": cfg.namespace,
                "labels": {"app.kubernetes.io/part-of": "gpu-jupyterhub", "gpu-jupyterhub/check": "storage"},
                "annotations": {"gpu-jupyterhub/node": node},
            },
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": cfg.storage.verifyTimeoutSeconds + 600,
                "ttlSecondsAfterFinished": 3600,
                "template": {"metadata": {"labels": {"gpu-jupyterhub/check": "storage"}}, "spec": pod_spec},
            },
        }

    expected = " ".join(nodes)
    writers = [job("write", n, i, _WRITE, []) for i, n in enumerate(nodes)]
    readers = [
        job(
            "read",
            n,
            i,
            _READ,
            [
                {"name": "EXPECTED", "value": expected},
                {"name": "TIMEOUT", "value": str(cfg.storage.verifyTimeoutSeconds)},
            ],
        )
        for i, n in enumerate(nodes)
    ]
    return writers, readers
