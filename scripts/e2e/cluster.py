"""A simulated Kubernetes cluster for the e2e tier: real etcd, kube-apiserver, controller-manager and scheduler,
with KWOK simulating the nodes (from the test fixtures' `kubectl get nodes -o json` documents) and their pods.

Usage (the toolchain from scripts/e2e/setup.sh must be built):
  python scripts/e2e/cluster.py up NAME NODES.json [NODES.json ...] [--real-node SANDBOX_IMAGE]
                                                                      prints the kube context
  python scripts/e2e/cluster.py add-nodes NAME NODES.json             adds or replaces nodes
  python scripts/e2e/cluster.py switch-off NAME NODE                   the node's machine goes off
  python scripts/e2e/cluster.py down NAME                             deletes the cluster (idempotent)

Everything lives under $GPU_JUPYTERHUB_E2E_DIR (default ~/.cache/gpu-jupyterhub/e2e): KWOK's work directory and
one kubeconfig file, `kubeconfig`, with a context `kwok-NAME` per cluster. The user's ~/.kube/config is never
touched. Nodes whose Ready condition is True are simulated by KWOK (kept Ready, their pods run and Job pods
complete); other nodes are created as given and left alone, like a machine that is switched off: the
controller-manager's node lifecycle controller taints them, and pods bound to them never start.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
# Cluster-wide objects every simulated cluster gets: a default StorageClass served by the controller-manager's
# hostpath provisioner, as MicroK8s' hostpath storage serves the hub's database claim on a home lab.
DEFAULT_STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": "hostpath",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    "provisioner": "kubernetes.io/host-path",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
}


class ClusterError(Exception):
    pass


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def toolchain_bin() -> Path:
    cache = Path(os.environ.get("GPU_JUPYTERHUB_TOOLCHAIN", Path.home() / ".cache/gpu-jupyterhub/toolchain"))
    return cache / "bin"


def e2e_dir() -> Path:
    return Path(os.environ.get("GPU_JUPYTERHUB_E2E_DIR", Path.home() / ".cache/gpu-jupyterhub/e2e"))


def kubeconfig_path() -> Path:
    return e2e_dir() / "kubeconfig"


def kube_cache_dir() -> Path:
    """kubectl's discovery cache for the simulated clusters (KUBECACHEDIR), instead of ~/.kube/cache."""
    return e2e_dir() / "kube-cache"


def context_of(name: str) -> str:
    return f"kwok-{name}"


@functools.cache
def kube_version() -> str:
    """The release of the kube-apiserver in use: the pinned build, or an installed one setup.sh linked."""
    try:
        out = subprocess.run(
            [str(toolchain_bin() / "kube-apiserver"), "--version"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        out = ""
    found = re.search(r"v\d+\.\d+\.\d+", out)
    return found.group(0) if found else f"v{versions()['KUBERNETES_VERSION']}"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["KWOK_WORKDIR"] = str(e2e_dir() / "kwok")
    env["KUBECONFIG"] = str(kubeconfig_path())
    env["KUBECACHEDIR"] = str(kube_cache_dir())
    env["KWOK_KUBE_VERSION"] = kube_version()  # kwokctl's flags for that release
    env["KWOK_KUBECTL_BINARY"] = str(toolchain_bin() / "kubectl")
    env["PATH"] = f"{toolchain_bin()}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(args: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True, env=_env(), check=False)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(args[:4])} ... failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def kubectl(name: str, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["kubectl", f"--context={context_of(name)}", *args], stdin=stdin, check=check)


def creatable_node(node: dict[str, Any]) -> dict[str, Any]:
    """A fixture node as an object to create: Ready nodes are handed to KWOK, others stay as they are."""
    md = node.get("metadata", {})
    status = node.get("status", {})
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
    annotations = dict(md.get("annotations") or {})
    spec = {k: v for k, v in (node.get("spec") or {}).items() if k in ("taints", "unschedulable", "podCIDR")}
    keep = ("addresses", "allocatable", "capacity") if ready else ("addresses", "allocatable", "capacity", "conditions")
    new_status = {k: status[k] for k in keep if k in status}
    if ready:
        annotations[KWOK_ANNOTATION] = "fake"  # KWOK initializes its conditions and keeps it Ready
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": md["name"], "labels": md.get("labels", {}), "annotations": annotations},
        "spec": spec,
        "status": new_status,  # the API server accepts a node's status on create
    }


def load_nodes(paths: list[Path]) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    for p in paths:
        doc = json.loads(Path(p).read_text())
        nodes.extend(doc["items"] if doc.get("kind") == "List" else [doc])
    return [creatable_node(n) for n in nodes]


def add_nodes(name: str, paths: list[Path]) -> list[str]:
    """Create (or replace) the nodes of ``paths``; returns once KWOK has made the Ready ones Ready."""
    nodes = load_nodes(paths)
    names = [n["metadata"]["name"] for n in nodes]
    kubectl(name, "delete", "node", "--ignore-not-found", *names)
    kubectl(name, "create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))
    managed = {n["metadata"]["name"] for n in nodes if KWOK_ANNOTATION in n["metadata"]["annotations"]}

    def ready() -> bool:
        items = json.loads(kubectl(name, "get", "nodes", "-o", "json").stdout)["items"]
        ready = {
            n["metadata"]["name"]
            for n in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
        }
        return managed <= ready

    _wait(f"nodes {', '.join(sorted(managed))} of cluster {name} to be Ready", ready, 60)
    return names


def switch_off(name: str, node: str) -> None:
    """The node's machine goes off: KWOK lets go of it and its Ready condition turns Unknown."""
    kubectl(name, "annotate", "node", node, f"{KWOK_ANNOTATION}-")
    status = {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "Unknown",
                    "reason": "NodeStatusUnknown",
                    "message": "Kubelet stopped posting node status.",
                }
            ]
        }
    }
    kubectl(name, "patch", "node", node, "--subresource=status", "--type=strategic", "-p", json.dumps(status))


def _wait(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")


def up(name: str, node_files: list[Path], sandbox_image: str | None = None) -> str:
    """Create cluster ``name`` with the nodes of ``node_files``; returns its kube context. With
    ``sandbox_image`` the cluster also gets a real node (scripts/e2e/node.py) whose pods really run."""
    bin_dir = toolchain_bin()
    missing = [b for b in ("kwokctl", "kwok", "etcd", "kube-apiserver", "kubectl") if not (bin_dir / b).exists()]
    if missing:
        raise ClusterError(f"toolchain missing {', '.join(missing)} in {bin_dir}: run scripts/e2e/setup.sh first")
    e2e_dir().mkdir(parents=True, exist_ok=True)
    down(name)
    real: list[str] = []
    if sandbox_image:
        import node

        node.network_up()  # the API server advertises the bridge's address, so it must exist first
        config = e2e_dir() / f"kwokctl-{name}.json"
        config.write_text(node.kwokctl_config())
        real = [f"--config={config}"]
    _run(
        [
            "kwokctl",
            "create",
            "cluster",
            f"--name={name}",
            "--runtime=binary",
            f"--kubeconfig={kubeconfig_path()}",
            f"--etcd-binary={bin_dir / 'etcd'}",
            f"--kube-apiserver-binary={bin_dir / 'kube-apiserver'}",
            f"--kube-controller-manager-binary={bin_dir / 'kube-controller-manager'}",
            f"--kube-scheduler-binary={bin_dir / 'kube-scheduler'}",
            f"--kwok-controller-binary={bin_dir / 'kwok'}",
            "--kube-authorization=true",
            "--extra-args=kube-controller-manager=enable-hostpath-provisioner=true",
            # KWOK simulates only the nodes annotated for it (kwokctl's binary runtime manages all nodes).
            "--extra-args=kwok-controller=manage-all-nodes=false",
            f"--extra-args=kwok-controller=manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
            "--wait=120s",
            "--quiet-pull",
            *real,
        ]
    )
    kubectl(name, "create", "-f", "-", stdin=json.dumps(DEFAULT_STORAGE_CLASS))
    if sandbox_image:
        import node

        (e2e_dir() / "real-node-cluster").write_text(name)
        node.up(name, sandbox_image)
    add_nodes(name, node_files)
    return context_of(name)


def down(name: str) -> None:
    marker = e2e_dir() / "real-node-cluster"
    if marker.exists() and marker.read_text() == name:
        import node

        node.down()
        marker.unlink()
    if (e2e_dir() / "kwok" / "clusters" / name).exists():
        _run(["kwokctl", "delete", "cluster", f"--name={name}", f"--kubeconfig={kubeconfig_path()}"], check=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up")
    p_up.add_argument("name")
    p_up.add_argument("nodes", nargs="+", type=Path)
    p_up.add_argument("--real-node", metavar="SANDBOX_IMAGE", help="also start a real node (scripts/e2e/node.py)")
    p_add = sub.add_parser("add-nodes")
    p_add.add_argument("name")
    p_add.add_argument("nodes", nargs="+", type=Path)
    p_off = sub.add_parser("switch-off")
    p_off.add_argument("name")
    p_off.add_argument("node")
    p_down = sub.add_parser("down")
    p_down.add_argument("name")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "up":
            print(up(args.name, args.nodes, args.real_node))
        elif args.cmd == "add-nodes":
            print(" ".join(add_nodes(args.name, args.nodes)))
        elif args.cmd == "switch-off":
            switch_off(args.name, args.node)
        else:
            down(args.name)
    except ClusterError as e:
        print(f"cluster.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
