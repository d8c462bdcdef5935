"""The program under the real Pulumi engine against a real API server with simulated nodes (KWOK).

One stack is taken through a user's life in order: preview of a new stack, up, a no-change preview, new
hardware, a node switched off, storage verification Jobs, bad config, a second cluster beside the first, and
destroy. Expected values are computed from the cluster's live node list with the program's own pure core, so
the tests check that the engine deploys what the core decides, not a copy of it.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from components.core.backup_spec import BACKUP_CRONJOB, CHECK_CRONJOB, SECRET_NAME
from components.core.config_load import parse_config
from components.core.egress_spec import user_egress_rules
from components.core.image_specs import IMAGE_SPECS
from components.core.nodes import parse_nodes
from components.core.profiles import ProfilePlan, build_profiles
from components.core.storage_spec import CLAIM_NAME, VOLUME_NAME
from tests.e2e.conftest import FIXTURES
from tests.e2e.harness import DIGEST, IMAGE_REFS, PulumiProject, Result, cluster, example_config

STACK = "homelab"
NAMESPACE = "jupyterhub"
RELEASE = "kubernetes:helm.sh/v3:Release"
REBUILT_DIGEST = "sha256:" + "7a" * 32
# Far below the provider's own await timeouts (10 minutes and more): an up that waits on something that
# cannot happen fails here rather than passing late.
UP_TIMEOUT = 240


def kubectl_json(name: str, *args: str) -> Any:
    return json.loads(cluster.kubectl(name, *args, "-o", "json").stdout)


def expected_plan(cluster_name: str, config: dict[str, Any], secrets: dict[str, str]) -> ProfilePlan:
    """What the pure core makes of the cluster's nodes as they are now (the program's own lookup's input)."""
    raw = json.loads(json.dumps(config))
    for path, value in secrets.items():
        node = raw
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    nodes = cluster.kubectl(cluster_name, "get", "nodes", "-o", "json").stdout
    return build_profiles(parse_config(raw), parse_nodes(nodes), {s.name: "(pending)" for s in IMAGE_SPECS})


def preview_steps(project: PulumiProject, *extra: str) -> list[dict[str, Any]]:
    """`pulumi preview --json` steps other than `same`."""
    out = project.pulumi("preview", "--stack", STACK, "--json", *extra).stdout
    return [s for s in json.loads(out).get("steps", []) if s.get("op") != "same"]


def by_type(resources: list[dict[str, Any]], typ: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["type"] == typ]


def report(what: str, result: Result) -> None:
    print(f"[e2e] {what}: {result.seconds:.1f} s")


@pytest.fixture(scope="module")
def stack(homelab: str, project: PulumiProject) -> dict[str, Any]:
    config, secrets = example_config(homelab)
    project.init_stack(STACK, config, secrets)
    return {"config": config, "secrets": secrets}


def test_a_preview_of_a_new_stack_shows_the_live_profiles(project: PulumiProject, stack: dict[str, Any]) -> None:
    result = project.pulumi("preview", "--stack", STACK, "--diff")
    report("preview of a new stack", result)
    plan = expected_plan("homelab", stack["config"], stack["secrets"])
    names = [p["display_name"] for p in plan.profiles]
    assert any("RTX 4090" in n for n in names), names
    for name in names:
        assert name in result.stdout, f"profile {name!r} not in the preview's outputs"
    assert "gpu-ws-off" in result.stdout, "the NotReady GPU node is reported as excluded"
    assert "+ 1 to create" not in result.stdout and "to create" in result.stdout
    # Nothing exists yet: a preview registers nothing in the cluster.
    assert cluster.kubectl("homelab", "get", "namespace", NAMESPACE, check=False).returncode != 0


def test_b_up_deploys_the_hub_storage_and_prepullers(project: PulumiProject, stack: dict[str, Any]) -> None:
    result = project.pulumi("up", "--stack", STACK, "--yes", "--skip-preview")
    report("first up (gpu-ws-off NotReady)", result)
    # the SDK is pinned at the provider the tier runs (tests/test_versions.py): no version warning
    assert "is expected to have version" not in result.stdout + result.stderr, result.stderr[-2000:]
    resources = project.resources(STACK)
    (release,) = by_type(resources, RELEASE)
    assert release["outputs"]["status"]["status"] == "deployed"
    assert release["inputs"]["chart"].endswith("chart/jupyterhub")

    hub = kubectl_json("homelab", "-n", NAMESPACE, "get", "deployment", "hub")
    assert hub["status"].get("availableReplicas", 0) >= 1
    # The hub and proxy run on the CPU node, not on a GPU machine that may be switched off.
    for component in ("hub", "proxy"):
        pods = kubectl_json("homelab", "-n", NAMESPACE, "get", "pods", "-l", f"component={component}")["items"]
        assert [p["spec"].get("nodeName") for p in pods] == ["cpu-1"], component
    pv = kubectl_json("homelab", "get", "pv", VOLUME_NAME)
    pvc = kubectl_json("homelab", "-n", NAMESPACE, "get", "pvc", CLAIM_NAME)
    assert pv["status"]["phase"] == "Bound" and pvc["status"]["phase"] == "Bound"
    assert pv["spec"]["csi"]["driver"] == "seaweedfs-csi-driver"
    # the hub's Role (components/core/hub_rbac.py) in place of the chart's: KubeSpawner's objects, no Secrets
    hub_account = f"--as=system:serviceaccount:{NAMESPACE}:hub"
    for verb, resource, answer in (("get", "secrets", "no"), ("list", "secrets", "no"), ("create", "pods", "yes")):
        can = cluster.kubectl("homelab", "-n", NAMESPACE, "auth", "can-i", verb, resource, hub_account, check=False)
        assert can.stdout.strip() == answer, (verb, resource, can.stdout, can.stderr)
    # user egress: the rule in the API server is the one egress_spec makes from the nodes' live addresses
    live = kubectl_json("homelab", "get", "nodes")["items"]
    addresses = sorted({a["address"] for n in live for a in n["status"].get("addresses", [])
                        if a["type"] in ("InternalIP", "ExternalIP")})  # fmt: skip
    policy = kubectl_json("homelab", "-n", NAMESPACE, "get", "networkpolicy", "singleuser")
    internet = user_egress_rules(addresses, [])[0]
    assert internet in policy["spec"]["egress"], policy["spec"]["egress"]
    assert "203.0.113.40/32" in internet["to"][0]["ipBlock"]["except"], "gpu-4090's public address (the fixture's)"
    hub_db = kubectl_json("homelab", "-n", NAMESPACE, "get", "pvc", "hub-db-dir")
    assert hub_db["status"]["phase"] == "Bound"
    daemonsets = kubectl_json("homelab", "-n", NAMESPACE, "get", "daemonsets")["items"]
    images = {c["image"] for ds in daemonsets for c in ds["spec"]["template"]["spec"]["initContainers"]}
    assert images == set(IMAGE_REFS.values())

    plan = expected_plan("homelab", stack["config"], stack["secrets"])
    outputs = project.outputs(STACK)
    assert outputs["profiles"] == [p["display_name"] for p in plan.profiles]
    assert outputs["gpu_nodes"] == plan.gpu_nodes == ["gpu-4090"]
    assert "gpu-ws-off" in outputs["excluded_nodes"]
    # The values the engine deployed are the ones the hub's config holds: the profile list reached the chart.
    values = release["inputs"]["values"]
    assert [p["display_name"] for p in values["singleuser"]["profileList"]] == outputs["profiles"]


def test_c_second_preview_has_no_changes(project: PulumiProject, stack: dict[str, Any]) -> None:
    result = project.pulumi("preview", "--stack", STACK, "--expect-no-changes", "--diff")
    report("no-change preview", result)


def test_d_new_hardware_changes_only_the_release(project: PulumiProject, stack: dict[str, Any]) -> None:
    cluster.add_nodes("homelab", [FIXTURES / "homelab-added.json"])  # returns once the node is Ready
    steps = preview_steps(project, "--diff")
    changed = sorted((s["op"], s["urn"].split("::")[-2].split("$")[-1]) for s in steps)
    assert changed == [("update", RELEASE)], changed
    result = project.pulumi("up", "--stack", STACK, "--yes", "--skip-preview")
    report("up after adding a GPU node", result)
    outputs = project.outputs(STACK)
    assert outputs["gpu_nodes"] == ["gpu-4090", "gpu-4090-b"]
    assert outputs["profiles"] == [
        p["display_name"] for p in expected_plan("homelab", stack["config"], stack["secrets"]).profiles
    ]


def test_e_a_gpu_node_switched_off_does_not_block_up(project: PulumiProject, stack: dict[str, Any]) -> None:
    """A GPU workstation goes off after the deploy, then new image digests roll out: up must still finish."""
    cluster.switch_off("homelab", "gpu-4090-b")
    rebuilt = {name: ref.replace(DIGEST, REBUILT_DIGEST) for name, ref in IMAGE_REFS.items()}
    project.set_config(STACK, "images", {"build": False, "refs": rebuilt})
    result = project.pulumi("up", "--stack", STACK, "--yes", "--skip-preview", timeout=UP_TIMEOUT)
    report("up with new digests while a GPU node is off", result)
    outputs = project.outputs(STACK)
    assert outputs["gpu_nodes"] == ["gpu-4090"]
    assert "gpu-4090-b" in outputs["excluded_nodes"]
    assert outputs["images"] == rebuilt
    # Why up does not wait for the node: the node lifecycle controller taints a NotReady/Unknown node NoSchedule,
    # which DaemonSet pods do not tolerate, so the node leaves the DaemonSet's desired set and the rollout that
    # the provider awaits completes without it.
    (gpu_ds,) = [
        ds
        for ds in kubectl_json("homelab", "-n", NAMESPACE, "get", "daemonsets")["items"]
        if ds["metadata"]["labels"]["app.kubernetes.io/component"] == "gpu"
    ]
    assert gpu_ds["status"]["desiredNumberScheduled"] == 1, gpu_ds["status"]  # gpu-4090 only
    assert gpu_ds["status"]["updatedNumberScheduled"] == 1, gpu_ds["status"]
    taints = {t["key"] for t in kubectl_json("homelab", "get", "node", "gpu-4090-b")["spec"].get("taints", [])}
    assert "node.kubernetes.io/unreachable" in taints, taints


def test_f_storage_verification_jobs_run_to_completion(project: PulumiProject, stack: dict[str, Any]) -> None:
    project.set_config(STACK, "verifyStorage", True)
    try:
        result = project.pulumi("up", "--stack", STACK, "--yes", "--skip-preview")
        report("up with verifyStorage", result)
        jobs = [
            j
            for j in kubectl_json("homelab", "-n", NAMESPACE, "get", "jobs")["items"]
            if j["metadata"]["labels"].get("gpu-jupyterhub/check") == "storage"
        ]
        nodes = {j["metadata"]["annotations"]["gpu-jupyterhub/node"] for j in jobs}
        # A writer and a reader on every Ready, schedulable node a user pod can use.
        assert nodes == {"cpu-1", "gpu-4090"}, nodes
        assert len(jobs) == 2 * len(nodes)
        assert all(j["status"].get("succeeded") == 1 for j in jobs), [j["status"] for j in jobs]
        assert len(by_type(project.resources(STACK), "kubernetes:batch/v1:Job")) == len(jobs)
        # nothing the proof covers changed: a second preview proposes nothing (the run id was random before)
        report(
            "no-change preview with verifyStorage", project.pulumi("preview", "--stack", STACK, "--expect-no-changes")
        )
        # one node fewer for user pods: the proof runs again, on the nodes left
        cluster.kubectl("homelab", "cordon", "gpu-4090")
        try:
            steps = preview_steps(project)
        finally:
            cluster.kubectl("homelab", "uncordon", "gpu-4090")
        jobs_ops = sorted({s["op"] for s in steps if s["urn"].split("::")[-2].endswith("batch/v1:Job")})
        # the Jobs on the nodes left get the new run id (replaced: they run again), the cordoned node's go
        assert jobs_ops == ["delete", "replace"], [(s["op"], s["urn"]) for s in steps]
    finally:
        project.set_config(STACK, "verifyStorage", False)
    project.pulumi("up", "--stack", STACK, "--yes", "--skip-preview")
    assert by_type(project.resources(STACK), "kubernetes:batch/v1:Job") == []


def test_f2_backups_are_created_admitted_and_their_secret_stays_secret(
    project: PulumiProject, stack: dict[str, Any]
) -> None:
    """backup.enabled through the real engine: the CronJobs and Secret exist in the API server, a Job made from
    the CronJob gets its pod past the namespace's "restricted" Pod Security admission, the Secret holds the
    password and Pulumi's state only its ciphertext; turning backups off removes them again."""
    password = "e2e-restic-password-5f1c9a"
    project.set_config(
        STACK,
        "backup",
        {
            "enabled": True,
            "target": "s3:http://seaweedfs-s3.storage.svc:8333/notebook-backups/homelab",
            "image": "harbor.lab.example/proxy/restic/restic@sha256:" + "2" * 64,
        },
    )
    for path, value in (
        ("backup.password", password),
        ("backup.credentials.accessKey", "e2e-access"),
        ("backup.credentials.secretKey", "e2e-secret-key-value"),
    ):
        project.pulumi("config", "set", "--stack", STACK, "--secret", "--path", f"gpu-jupyterhub:{path}", value)
    try:
        report("up with backups", project.pulumi("up", "--stack", STACK, "--yes", "--skip-preview"))
        crons = kubectl_json("homelab", "-n", NAMESPACE, "get", "cronjobs")["items"]
        assert sorted(c["metadata"]["name"] for c in crons) == [BACKUP_CRONJOB, CHECK_CRONJOB]
        secret = kubectl_json("homelab", "-n", NAMESPACE, "get", "secret", SECRET_NAME)
        assert base64.b64decode(secret["data"]["RESTIC_PASSWORD"]).decode() == password
        state = json.dumps(project.resources(STACK))
        assert password not in state and "e2e-secret-key-value" not in state
        assert project.outputs(STACK)["backup"]["schedule"] == "17 3 * * *"
        report("no-change preview with backups", project.pulumi("preview", "--stack", STACK, "--expect-no-changes"))
        _the_hub_cannot_mount_the_backup_secret()
        cluster.kubectl("homelab", "-n", NAMESPACE, "create", "job", "--from=cronjob/" + BACKUP_CRONJOB, "backup-now")
        pods: list[Any] = []
        for _ in range(60):
            pods = kubectl_json("homelab", "-n", NAMESPACE, "get", "pods", "-l", "job-name=backup-now")["items"]
            if pods:
                break
            time.sleep(1)
        events = kubectl_json("homelab", "-n", NAMESPACE, "get", "events", "--field-selector",
                              "involvedObject.name=backup-now")["items"]  # fmt: skip
        assert pods, [e.get("message") for e in events]
        cluster.kubectl("homelab", "-n", NAMESPACE, "delete", "job", "backup-now", "--wait=false")
    finally:
        project.set_config(STACK, "backup", {"enabled": False})
    report("up with backups off", project.pulumi("up", "--stack", STACK, "--yes", "--skip-preview"))
    assert kubectl_json("homelab", "-n", NAMESPACE, "get", "cronjobs")["items"] == []
    part_of = "app.kubernetes.io/part-of=gpu-jupyterhub"
    assert kubectl_json("homelab", "get", "validatingadmissionpolicies", "-l", part_of)["items"] == []


def _restricted_pod(name: str, **extra: Any) -> dict[str, Any]:
    """A pod the namespace's "restricted" Pod Security level admits, plus ``extra`` in its spec."""
    container = {
        "name": "c",
        "image": "busybox",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    containers = [{**container, **extra.pop("container", {})}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"containers": containers, **extra},
    }


def _the_hub_cannot_mount_the_backup_secret() -> None:
    """The hub may create pods (user servers), but the API server's admission policy refuses one of its own that
    would read the backup Secret, by volume, projected volume, env or envFrom; an ordinary pod and the admin's
    pods are admitted (dry run on the server: admission runs, nothing is stored)."""
    hub = f"--as=system:serviceaccount:{NAMESPACE}:hub"
    ref = {"name": SECRET_NAME, "key": "RESTIC_PASSWORD"}
    attempts = {
        "volume": {"volumes": [{"name": "s", "secret": {"secretName": SECRET_NAME}}]},
        "projected": {"volumes": [{"name": "s", "projected": {"sources": [{"secret": {"name": SECRET_NAME}}]}}]},
        "env": {"container": {"env": [{"name": "P", "valueFrom": {"secretKeyRef": ref}}]}},
        "envfrom": {"container": {"envFrom": [{"secretRef": {"name": SECRET_NAME}}]}},
    }
    for how, extra in attempts.items():
        pod = json.dumps(_restricted_pod(f"take-{how}", **extra))
        refused = cluster.kubectl("homelab", "create", "--dry-run=server", "-f", "-", hub, stdin=pod, check=False)
        assert refused.returncode != 0 and "backup Secret" in refused.stderr, (how, refused.stderr)
        admitted = cluster.kubectl("homelab", "create", "--dry-run=server", "-f", "-", stdin=pod, check=False)
        assert admitted.returncode == 0, ("the admin", how, admitted.stderr)
    plain = json.dumps(_restricted_pod("plain"))
    admitted = cluster.kubectl("homelab", "create", "--dry-run=server", "-f", "-", hub, stdin=plain, check=False)
    assert admitted.returncode == 0, admitted.stderr


def test_f3_shared_code_keeps_the_namespace_restricted(project: PulumiProject, stack: dict[str, Any]) -> None:
    """storage.sharedCode used to lower the namespace to enforce=privileged (a hostPath volume), where the hub's
    service account could create privileged pods. Now: a local volume on the control-plane node and its claim,
    bound by the real controller; the namespace enforces restricted, and the API server refuses a privileged pod
    created as the hub's account."""
    storage = dict(stack["config"]["storage"])
    project.set_config(STACK, "storage", {**storage, "sharedCode": {"hostPath": "/srv/shared-code"}})
    try:
        report("up with shared code", project.pulumi("up", "--stack", STACK, "--yes", "--skip-preview"))
        labels = kubectl_json("homelab", "get", "namespace", NAMESPACE)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        pv = kubectl_json("homelab", "get", "pv", f"gpu-jupyterhub-shared-code-{NAMESPACE}")
        assert pv["spec"]["local"]["path"] == "/srv/shared-code"
        terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
        assert terms[0]["matchExpressions"][0]["values"] == ["cp-1"]
        claim: dict[str, Any] = {}
        for _ in range(60):
            claim = kubectl_json("homelab", "-n", NAMESPACE, "get", "pvc", "shared-code")
            if claim["status"].get("phase") == "Bound":
                break
            time.sleep(1)
        assert claim["status"].get("phase") == "Bound", claim["status"]
        privileged = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "escalate", "namespace": NAMESPACE},
            "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]},
        }
        refused = cluster.kubectl(
            "homelab", "create", "--dry-run=server", "-f", "-", f"--as=system:serviceaccount:{NAMESPACE}:hub",
            stdin=json.dumps(privileged), check=False,
        )  # fmt: skip
        assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr
    finally:
        project.set_config(STACK, "storage", storage)
    report("up without shared code", project.pulumi("up", "--stack", STACK, "--yes", "--skip-preview"))
    assert kubectl_json("homelab", "-n", NAMESPACE, "get", "pvc", "-l", "app.kubernetes.io/component=shared-code")[
        "items"
    ] == []


def test_h_a_second_stack_reads_its_own_cluster(project: PulumiProject, homelab: str) -> None:
    context = cluster.up("ws", [FIXTURES / "workstation.json"])
    try:
        config, secrets = example_config(context)
        project.init_stack("ws", config, secrets)
        project.pulumi("stack", "select", "ws")
        result = project.pulumi("up", "--yes", "--skip-preview")  # the selected stack
        report("up of a second stack on a second cluster", result)
        assert project.outputs("ws")["gpu_nodes"] == ["ws-1"]
        assert project.outputs(STACK)["gpu_nodes"] == ["gpu-4090"]
        assert kubectl_json("ws", "-n", NAMESPACE, "get", "deployment", "hub")["status"].get("availableReplicas")
        project.pulumi("destroy", "--yes", "--exclude-protected")
    finally:
        project.pulumi("stack", "select", STACK)
        cluster.down("ws")


def test_i_bad_config_and_unreachable_context_register_nothing(project: PulumiProject, homelab: str) -> None:
    config, secrets = example_config(homelab)
    config["hub"]["hots"] = "typo.example"
    project.init_stack("bad", config, secrets)
    result = project.pulumi("preview", "--stack", "bad", check=False)
    assert result.returncode != 0
    assert "gpu-jupyterhub:hub.hots" in result.text
    assert "Traceback" not in result.text
    project.set_config("bad", "hub", example_config(homelab)[0]["hub"])
    project.set_config("bad", "kubeContext", "kwok-no-such-cluster")
    result = project.pulumi("up", "--stack", "bad", "--yes", "--skip-preview", check=False)
    assert result.returncode != 0
    assert "kube context 'kwok-no-such-cluster'" in result.text
    assert "Traceback" not in result.text
    assert [r["type"] for r in project.resources("bad")] in ([], ["pulumi:pulumi:Stack"])
    # A context that exists, whose API server does not answer (a machine that is off).
    cluster.kubectl("homelab", "config", "set-cluster", "kwok-dead", "--server=https://127.0.0.1:1")
    cluster.kubectl(
        "homelab",
        "config",
        "set-context",
        "kwok-dead",
        "--cluster=kwok-dead",
        f"--user={cluster.context_of('homelab')}",
    )
    project.set_config("bad", "kubeContext", "kwok-dead")
    result = project.pulumi("preview", "--stack", "bad", check=False)
    assert result.returncode != 0
    assert "cannot list nodes of kube context 'kwok-dead'" in result.text and "refused" in result.text
    assert "Traceback" not in result.text
    assert [r["type"] for r in project.resources("bad")] in ([], ["pulumi:pulumi:Stack"])


def test_g_destroy_stops_at_the_notebooks_and_says_what_to_do(project: PulumiProject, stack: dict[str, Any]) -> None:
    volume_uid = kubectl_json("homelab", "get", "pv", VOLUME_NAME)["metadata"]["uid"]
    result = project.pulumi("destroy", "--stack", STACK, "--yes", check=False)
    print("[e2e] refused destroy says:\n" + result.text)
    assert result.returncode != 0
    assert "protect" in result.text
    assert "notebooks-volume" in result.text or "notebooks-claim" in result.text
    # Nothing was deleted by the refused destroy.
    assert kubectl_json("homelab", "-n", NAMESPACE, "get", "deployment", "hub")

    # What the README tells an admin who wants the hub gone and the notebooks kept.
    result = project.pulumi("destroy", "--stack", STACK, "--yes", "--exclude-protected")
    report("destroy --exclude-protected", result)
    left = sorted(r["type"] for r in project.resources(STACK) if not r["type"].startswith("pulumi:"))
    assert left == [  # the data, and what it depends on
        "gpu-jupyterhub:storage:NotebookStorage",
        "kubernetes:core/v1:Namespace",
        "kubernetes:core/v1:PersistentVolume",
        "kubernetes:core/v1:PersistentVolumeClaim",
    ], left
    assert kubectl_json("homelab", "get", "pv", VOLUME_NAME)["status"]["phase"] == "Bound"
    assert kubectl_json("homelab", "-n", NAMESPACE, "get", "pvc", CLAIM_NAME)["status"]["phase"] == "Bound"
    assert cluster.kubectl("homelab", "-n", NAMESPACE, "get", "deployment", "hub", check=False).returncode != 0
    assert kubectl_json("homelab", "-n", NAMESPACE, "get", "daemonsets")["items"] == []
    assert (
        kubectl_json("homelab", "get", "clusterrole", "-l", "app.kubernetes.io/part-of=gpu-jupyterhub")["items"] == []
    )

    # A later up brings the hub back on the same volume.
    project.pulumi("up", "--stack", STACK, "--yes", "--skip-preview")
    assert kubectl_json("homelab", "get", "pv", VOLUME_NAME)["metadata"]["uid"] == volume_uid
    assert kubectl_json("homelab", "-n", NAMESPACE, "get", "deployment", "hub")["status"].get("availableReplicas")

    # Removing the stack for good: unprotect, destroy. The volume, claim and namespace stay in the cluster.
    project.pulumi("state", "unprotect", "--stack", STACK, "--all", "--yes")
    project.pulumi("destroy", "--stack", STACK, "--yes")
    assert [r for r in project.resources(STACK) if not r["type"].startswith("pulumi:")] == []
    assert kubectl_json("homelab", "get", "pv", VOLUME_NAME)["metadata"]["uid"] == volume_uid
    assert kubectl_json("homelab", "-n", NAMESPACE, "get", "pvc", CLAIM_NAME)["status"]["phase"] == "Bound"
    assert cluster.kubectl("homelab", "-n", NAMESPACE, "get", "deployment", "hub", check=False).returncode != 0
