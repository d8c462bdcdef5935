"""The plan's spawn figures, measured where they are defined: on a real node, through the deployed proxy.

Deploys the node tier's stack (tests/node/realnode.py: the e2e cluster with a real kubelet and containerd, the
program through the real Pulumi engine, images from the local registry) and prints:
  - the hub's own start on a fresh node (its image store emptied first): `pulumi up` of a new stack until the hub
    answers through the proxy (the hub's and proxy's images pulled), and the hub pod's creation and container
    start to Ready;
  - a cold start: the CPU server with `jupyter-ml-cpu` absent from the node (the pre-puller's DaemonSet is
    deleted and the image removed from containerd first), from the start request until the server answers at
    /user/<name>/api through the proxy, and the kubelet's own pull time (goal < 2 min);
  - warm starts: the same with the image present, --starts times (p50, p95; goal p95 < 30 s);
  - the hub's restart after a values change (`pulumi up` with a changed culling timeout): the up's duration, and
    the new hub pod from creation to Ready, while a user's server keeps answering.
Prints figures, asserts nothing. Needs root, the toolchain (scripts/e2e/setup.sh), Docker and the registry
(scripts/docker/setup.sh), Debian's containerd, runc, containernetworking-plugins, iptables and conntrack.

    python -m benchmarks.spawn_bench [--starts 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import PulumiProject, cluster  # noqa: E402
from tests.images import docker_env as de  # noqa: E402
from tests.node import realnode  # noqa: E402
from tests.node.realnode import CLUSTER, NAMESPACE, STACK, HubUser  # noqa: E402


def p95(xs: list[float]) -> float:
    ordered = sorted(xs)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def kubectl_json(*args: str) -> dict:
    return json.loads(cluster.kubectl(CLUSTER, "-n", NAMESPACE, *args, "-o", "json").stdout)


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def ready_seconds(pod: dict) -> tuple[float, float]:
    """(creation → Ready, container started → Ready) of a pod, from its own status."""
    created = ts(pod["metadata"]["creationTimestamp"])
    ready = next(ts(c["lastTransitionTime"]) for c in pod["status"]["conditions"] if c["type"] == "Ready")
    started = ts(pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"])
    return ready - created, ready - started


def pull_events(image: str) -> list[str]:
    events = kubectl_json("get", "events")["items"]
    return [e["message"] for e in events if e.get("reason") == "Pulled" and image in e.get("message", "")]


def make_images_absent(images: list[str]) -> None:
    """Delete the CPU pre-puller (it would pull them back) and remove ``images`` from the node; all of them, since
    `jupyter-agent-dev` shares `jupyter-ml-cpu`'s layers and would keep them on the node."""
    for ds in kubectl_json("get", "daemonsets")["items"]:
        spec = ds["spec"]["template"]["spec"]
        if any(c["image"] in images for c in spec.get("initContainers", []) + spec["containers"]):
            cluster.kubectl(CLUSTER, "-n", NAMESPACE, "delete", "daemonset", ds["metadata"]["name"], "--wait=true")
    realnode.wait("pre-puller pods to go", lambda: not any(_prepull_pods(i) for i in images), 120)
    for image in images:
        realnode.node.remove_image(image)
    names = realnode.node._ctr("images", "ls", "-q").stdout.decode().split()
    assert not set(images) & set(names), names


def _prepull_pods(image: str) -> list[dict]:
    return [
        p
        for p in kubectl_json("get", "pods")["items"]
        if any(c["image"] == image for c in p["spec"].get("initContainers", []) + p["spec"]["containers"])
        and "hub.jupyter.org/username" not in p["metadata"].get("labels", {})
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--starts", type=int, default=10, help="warm starts (image present)")
    args = ap.parse_args()
    missing = realnode.missing()
    if missing:
        print("spawn_bench: no real node: this machine lacks " + "; ".join(missing), file=sys.stderr)
        return 1
    env = de.load_env()
    with tempfile.TemporaryDirectory() as tmp:
        images = realnode.build_images(env, Path(tmp) / "docker-config", log=lambda m: print(m, file=sys.stderr))
        realnode.node.down()
        realnode.node.forget_images()  # a fresh node: the hub's, the proxy's and the users' images all pulled
        try:
            context = realnode.up_cluster(images)
            project = PulumiProject.create(Path(tmp) / "pulumi")
            config, secrets, password = realnode.stack_config(context, images, env)
            project.init_stack(STACK, config, secrets)
            stack = realnode.Stack(project, config, secrets, password)
            run(stack, images, args.starts)
        finally:
            if "project" in locals():
                project.pulumi("destroy", "--stack", STACK, "--yes", check=False)
            cluster.down(CLUSTER)
    return 0


def run(stack: realnode.Stack, images: realnode.Images, starts: int) -> None:
    print(f"spawn_bench: {platform.node()}, {platform.processor() or platform.machine()}, real node e2e-real-node")
    t0 = time.monotonic()
    stack.project.pulumi("up", "--stack", STACK, "--yes", timeout=realnode.UP_TIMEOUT)
    base = realnode.proxy_url()
    realnode.wait("the hub through the proxy", lambda: realnode.hub_pod() and _answers(base), 300)
    first_up = time.monotonic() - t0
    hub_created, hub_started = ready_seconds(realnode.hub_pod() or {})
    print(
        f"hub, new stack: pulumi up until the hub answers through the proxy {first_up:.1f} s; "
        f"hub pod created -> Ready {hub_created:.1f} s (container start -> Ready {hub_started:.1f} s)"
    )

    alice = HubUser(base, "alice")
    alice.login(stack.shared_password)
    cpu = realnode.profile_slug(realnode.live_plan(stack), gpu=False)
    image = images.user["jupyter-ml-cpu"]

    make_images_absent([images.user[n] for n in realnode.REAL_IMAGES])
    t = time.monotonic()
    alice.start(cpu)
    alice.wait_started(timeout=600)
    cold = time.monotonic() - t
    pulled = pull_events(image)
    print(
        f"cold start (jupyter-ml-cpu absent, pulled from the registry): {cold:.1f} s until the server answers; "
        f"kubelet: {pulled[-1] if pulled else 'no pull event'}"
    )
    alice.stop()
    alice.wait_stopped()

    warm: list[float] = []
    for _ in range(starts):
        t = time.monotonic()
        alice.start(cpu)
        alice.wait_started()
        warm.append(time.monotonic() - t)
        alice.stop()
        alice.wait_stopped()
    print(
        f"warm starts (image present), {len(warm)}: p50 {statistics.median(warm):.1f} s, p95 {p95(warm):.1f} s, "
        f"min {min(warm):.1f} s, max {max(warm):.1f} s (goal p95 < 30 s)"
    )

    alice.start(cpu)
    alice.wait_started()
    before = realnode.hub_pod() or {}
    stack.project.set_config(STACK, "culling", {"timeoutSeconds": 3000})
    t = time.monotonic()
    stack.project.pulumi("up", "--stack", STACK, "--yes", timeout=realnode.UP_TIMEOUT)
    up_s = time.monotonic() - t
    after = realnode.wait_new_hub(before)
    created, started = ready_seconds(after)
    print(
        f"hub restart after a values change: pulumi up {up_s:.1f} s; new hub pod created -> Ready {created:.1f} s "
        f"(container start -> Ready {started:.1f} s); alice's server answers meanwhile: {alice.server_answers()}"
    )


def _answers(base: str) -> bool:
    import requests

    try:
        return requests.get(f"{base}/hub/api/", timeout=5).status_code == 200
    except requests.RequestException:
        return False


if __name__ == "__main__":
    sys.exit(main())
