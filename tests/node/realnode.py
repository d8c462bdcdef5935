"""The node tier's environment: the e2e cluster with a real node (scripts/e2e/node.py), the images it pulls from
the local registry, the stack a user would write for it, and a user's HTTP client for the deployed proxy.

Shared by tests/node and benchmarks/spawn_bench.py. Nothing here imitates a component: the hub, the proxy and the
users' servers run as containers on the real node, from images built here and pulled by containerd.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.e2e.harness import CHART_DIR, TOOLS, PulumiProject, cluster, example_config
from tests.images import docker_env as de

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "e2e"))
import chart_images  # noqa: E402  (scripts/e2e/chart_images.py)
import node  # noqa: E402  (scripts/e2e/node.py)

from components.core.config_load import parse_config  # noqa: E402
from components.core.image_specs import IMAGE_SPECS, specs_by_name  # noqa: E402
from components.core.nodes import parse_nodes  # noqa: E402
from components.core.profiles import ProfilePlan, build_profiles  # noqa: E402

REQUIRED_ENV = "GPU_JUPYTERHUB_NODE"
CLUSTER = "realnode"
STACK = "realnode"
NAMESPACE = "jupyterhub"
PROJECT = "jupyter"  # the Harbor project of the stack (the local registry's repository prefix)
USERS = ("alice", "bob")
NODE_FIXTURE = Path(__file__).parent / "gpu-node.json"  # the simulated GPU node beside the real one
NODE_TOOLS = ("kubelet", "kube-proxy", "coredns")
# Images the real node pulls (the CPU pre-puller group): built here. The GPU images only ever land on
# simulated GPU nodes, so their references name the local registry with a digest nothing serves.
REAL_IMAGES = ("jupyter-ml-cpu", "jupyter-agent-dev")
UNSERVED_DIGEST = "sha256:" + "6d" * 32
NOTEBOOKS_CLASS = "e2e-notebooks"
UP_TIMEOUT = 900


class NodeTierError(AssertionError):
    pass


def missing() -> list[str]:
    """What this machine lacks for the node tier (empty when it can run)."""
    out: list[str] = []
    if os.geteuid() != 0:
        out.append("root (bridge, iptables, containerd)")
    bin_dir = cluster.toolchain_bin()
    tools = [t for t in (*TOOLS, *NODE_TOOLS) if not (bin_dir / t).exists()]
    if tools:
        out.append(f"{', '.join(tools)} in {bin_dir} (scripts/e2e/setup.sh)")
    packages = node.missing_packages()
    if packages:
        out.append(f"Debian's {', '.join(packages)}")
    problem = de.engine_problem()
    if problem:
        out.append(f"a Docker engine ({problem}; scripts/docker/setup.sh)")
    else:
        try:
            de.load_env()
        except KeyError as e:
            out.append(str(e))
    if not CHART_DIR.is_dir():
        out.append(f"the z2jh chart at {CHART_DIR}")
    return out


@dataclass(frozen=True)
class Images:
    user: dict[str, str]  # image name -> digest reference, every image of the stack
    hub: str
    proxy: str
    pause: str


def build_images(env: de.DockerEnv, config_dir: Path, log: Callable[[str], None] = print) -> Images:
    """The CPU images the real node runs, and the chart's images, built (cached) and pushed to the local registry."""
    de.login(env, config_dir)
    version = "0.0.0-node"
    user: dict[str, str] = {}
    stacks: dict[str, str] = {}
    for name in REAL_IMAGES:
        start = time.monotonic()
        spec = specs_by_name()[name]
        base = stacks[spec.base] if spec.base else env.base_image
        repo = f"{env.registry}/{PROJECT}/{name}"
        if name == "jupyter-ml-cpu":
            stack_tag = f"{repo}:{version}-stack"
            de.build(name, stack_tag, base, version=version, config_dir=config_dir, target="stack")
            de.docker("push", stack_tag, config_dir=config_dir)
            stacks[name] = de.repo_digest(stack_tag, repo)
        tag = f"{repo}:{version}"
        de.build(name, tag, base, version=version, config_dir=config_dir)
        de.docker("push", tag, config_dir=config_dir)
        user[name] = de.repo_digest(tag, repo)
        log(f"[node] {name}: built and pushed in {time.monotonic() - start:.0f} s")
    for spec in IMAGE_SPECS:
        user.setdefault(spec.name, f"{env.registry}/{PROJECT}/{spec.name}@{UNSERVED_DIGEST}")
    start = time.monotonic()
    chart = chart_images.build_and_push(de.work_dir() / "docker" / "registry.env")
    log(f"[node] chart images (hub, proxy, pause): built and pushed in {time.monotonic() - start:.0f} s")
    return Images(user=user, hub=chart["hub"], proxy=chart["proxy"], pause=chart["pause"])


def volumes_dir() -> Path:
    return cluster.e2e_dir() / "realnode-volumes"


def storage_objects() -> list[dict[str, Any]]:
    """What the cluster's admin provides before `pulumi up`: a ReadWriteMany class for the notebooks (a static
    host-path volume; the SeaweedFS CSI driver is not on this node) and the hub database's volume, both
    writable by the hub's and the servers' uids as a home lab's host-path storage is."""
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": NOTEBOOKS_CLASS},
            "provisioner": "kubernetes.io/no-provisioner",
            "reclaimPolicy": "Retain",
            "volumeBindingMode": "Immediate",
        }
    ]
    for name, modes, klass, claim in (
        ("e2e-notebooks", ["ReadWriteMany"], NOTEBOOKS_CLASS, None),
        ("e2e-hub-db", ["ReadWriteOnce"], "hostpath", {"namespace": NAMESPACE, "name": "hub-db-dir"}),
    ):
        path = volumes_dir() / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        spec: dict[str, Any] = {
            "accessModes": modes,
            "capacity": {"storage": "10Gi"},
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": klass,
            "hostPath": {"path": str(path), "type": "Directory"},
        }
        if claim:
            spec["claimRef"] = claim
        objs.append({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec})
    return objs


def up_cluster(images: Images) -> str:
    """The e2e cluster with the real node and one simulated, tainted GPU node; returns the kube context."""
    context = cluster.up(CLUSTER, [NODE_FIXTURE], sandbox_image=images.pause)
    cluster.kubectl(
        CLUSTER, "create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": storage_objects()})
    )
    return context


@dataclass
class Stack:
    project: PulumiProject
    config: dict[str, Any]
    secrets: dict[str, str]
    shared_password: str


def stack_config(context: str, images: Images, env: de.DockerEnv) -> tuple[dict[str, Any], dict[str, str], str]:
    """The example stack as an admin edits it for this cluster: the local registry and its robot, every image
    by digest (the chart's too), shared-password login, notebooks on the admin's ReadWriteMany class."""
    config, secrets_ = example_config(context)
    secrets_.pop("auth.oidc.clientSecret", None)
    password = secrets.token_urlsafe(18)
    config["registry"] = {"host": env.registry, "project": PROJECT, "username": env.user}
    secrets_["registry.password"] = env.password
    config["images"] = {"build": False, "refs": dict(images.user)}
    config["chart"] = {
        "path": str(CHART_DIR),
        "timeoutSeconds": 600,
        "images": {"hub": images.hub, "proxy": images.proxy},
    }
    config["auth"] = {"mode": "shared-password", "allowedUsers": list(USERS)}
    secrets_["auth.sharedPassword"] = password
    config["storage"] = {
        "mode": "dynamic",
        "storageClass": NOTEBOOKS_CLASS,
        "capacity": "10Gi",
        "scratchSize": "1Gi",
        "shmSize": "256Mi",
    }
    config["hub"] = {**config["hub"], "concurrentSpawnLimit": 20}
    return config, secrets_, password


# --- what a failure shows --------------------------------------------------------------------------------------


def pod_report(selector: str) -> str:
    """Each matching pod's phase, node, container states and the namespace's last events about it."""
    pods = json.loads(
        cluster.kubectl(CLUSTER, "-n", NAMESPACE, "get", "pods", "-l", selector, "-o", "json", check=False).stdout
        or '{"items": []}'
    )["items"]
    events = json.loads(
        cluster.kubectl(CLUSTER, "-n", NAMESPACE, "get", "events", "-o", "json", check=False).stdout or '{"items": []}'
    )["items"]
    lines = []
    for p in pods:
        name = p["metadata"]["name"]
        status = p.get("status", {})
        statuses = [
            f"{s['name']}: {json.dumps(s.get('state', {}))}"
            for s in status.get("initContainerStatuses", []) + status.get("containerStatuses", [])
        ]
        lines.append(
            f"pod {name} on {p['spec'].get('nodeName')}: {p.get('status', {}).get('phase')}; " + "; ".join(statuses)
        )
        mine = [e for e in events if e.get("involvedObject", {}).get("name") == name]
        for e in sorted(mine, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")[-8:]:
            lines.append(f"  {e.get('type')} {e.get('reason')}: {e.get('message')}")
    return "\n".join(lines) or f"no pods match {selector}"


def wait(what: str, check: Callable[[], Any], timeout: float, selector: str | None = None, every: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; a timeout names the step and the pods' last events."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            detail = pod_report(selector) if selector else ""
            raise NodeTierError(f"timed out after {timeout:.0f} s: {what}\n{detail}")
        time.sleep(every)


def proxy_url() -> str:
    svc = json.loads(cluster.kubectl(CLUSTER, "-n", NAMESPACE, "get", "service", "proxy-public", "-o", "json").stdout)
    return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"


def hub_pod() -> dict[str, Any] | None:
    pods = json.loads(
        cluster.kubectl(CLUSTER, "-n", NAMESPACE, "get", "pods", "-l", "component=hub", "-o", "json").stdout
    )["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return live[0] if len(live) == 1 else None


def wait_new_hub(before: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    """The hub pod that replaced ``before``, once it is Ready (after a values change restarts the hub)."""

    def replaced() -> dict[str, Any] | None:
        p = hub_pod()
        return p if p and p["metadata"]["uid"] != before["metadata"]["uid"] and pod_ready(p) else None

    return wait("a new hub pod to be Ready", replaced, timeout, selector="component=hub")


def pod_ready(p: dict[str, Any] | None) -> bool:
    return bool(p) and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", [])
    )


# --- a user's browser, as HTTP ---------------------------------------------------------------------------------


@dataclass
class HubUser:
    """One user's session with the hub through the deployed proxy: the login form, then an API token."""

    base: str
    name: str
    session: requests.Session = field(default_factory=requests.Session)
    token: str = ""

    def login(self, password: str) -> None:
        r = self.session.get(f"{self.base}/hub/login", timeout=30)
        r.raise_for_status()
        xsrf = self.session.cookies.get("_xsrf")
        r = self.session.post(
            f"{self.base}/hub/login",
            data={"username": self.name, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=30,
        )
        if r.status_code != 302:
            raise NodeTierError(f"login of {self.name} through the proxy: HTTP {r.status_code}: {r.text[:300]}")
        r = self.session.post(
            f"{self.base}/hub/api/users/{self.name}/tokens",
            json={"note": "node tier", "expires_in": 3600},
            headers={"X-XSRFToken": self.session.cookies.get("_xsrf") or ""},
            timeout=30,
        )
        if r.status_code != 201:
            raise NodeTierError(f"token for {self.name}: HTTP {r.status_code}: {r.text[:300]}")
        self.token = r.json()["token"]

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"token {self.token}", **kw.pop("headers", {})}
        return requests.request(method, f"{self.base}{path}", headers=headers, timeout=kw.pop("timeout", 30), **kw)

    def server(self, server: str = "") -> dict[str, Any] | None:
        r = self.api("GET", f"/hub/api/users/{self.name}")
        r.raise_for_status()
        return r.json().get("servers", {}).get(server)

    def start(self, profile: str, server: str = "") -> None:
        path = f"/hub/api/users/{self.name}/servers/{server}" if server else f"/hub/api/users/{self.name}/server"
        r = self.api("POST", path, json={"profile": profile})
        if r.status_code not in (201, 202):
            raise NodeTierError(f"start of {self.name}'s server ({profile}): HTTP {r.status_code}: {r.text[:300]}")

    def stop(self, server: str = "") -> None:
        path = f"/hub/api/users/{self.name}/servers/{server}" if server else f"/hub/api/users/{self.name}/server"
        r = self.api("DELETE", path)
        if r.status_code not in (202, 204):
            raise NodeTierError(f"stop of {self.name}'s server: HTTP {r.status_code}: {r.text[:300]}")

    def server_answers(self, owner: str | None = None) -> bool:
        """The user's single-user server answers its REST API through the proxy."""
        try:
            r = self.api("GET", f"/user/{owner or self.name}/api/status", timeout=10)
        except requests.RequestException:
            return False
        return r.status_code == 200 and "started" in r.text

    def wait_started(self, timeout: float = 300) -> float:
        """Seconds from now until the server answers through the proxy (the hub marks it ready first)."""
        start = time.monotonic()
        wait(
            f"{self.name}'s server to answer at /user/{self.name}/api through the proxy",
            self.server_answers,
            timeout,
            selector=f"hub.jupyter.org/username={self.name}",
        )
        return time.monotonic() - start

    def wait_stopped(self, timeout: float = 120) -> None:
        wait(
            f"{self.name}'s server to stop",
            lambda: self.server() is None,
            timeout,
            selector=f"hub.jupyter.org/username={self.name}",
        )
        wait(
            f"{self.name}'s pod to go",
            lambda: (
                not json.loads(
                    cluster.kubectl(
                        CLUSTER,
                        "-n",
                        NAMESPACE,
                        "get",
                        "pods",
                        "-l",
                        f"hub.jupyter.org/username={self.name}",
                        "-o",
                        "json",
                    ).stdout
                )["items"]
            ),
            timeout,
        )


def live_plan(stack: Stack) -> ProfilePlan:
    """The profiles the pure core makes of the cluster's nodes as they are now (what the deployed hub offers)."""
    raw = json.loads(json.dumps(stack.config))
    for path, value in stack.secrets.items():
        at = raw
        *parents, leaf = path.split(".")
        for p in parents:
            at = at.setdefault(p, {})
        at[leaf] = value
    nodes = cluster.kubectl(CLUSTER, "get", "nodes", "-o", "json").stdout
    return build_profiles(parse_config(raw), parse_nodes(nodes), dict(stack.config["images"]["refs"]))


def profile_slug(plan: ProfilePlan, gpu: bool) -> str:
    """The first CPU-only (or GPU) profile of the plan."""
    for p in plan.profiles:
        limits = p.get("kubespawner_override", {}).get("extra_resource_limits", {})
        if bool(limits.get("nvidia.com/gpu")) == gpu or (gpu and "gpus" in p.get("profile_options", {})):
            return p["slug"]
    raise NodeTierError(f"no {'GPU' if gpu else 'CPU'} profile in {[p['slug'] for p in plan.profiles]}")
