"""A user's path through the deployed hub, on a real node: `pulumi up` → the hub in its image with the program's
values → login through the proxy → a CPU server from `jupyter-ml-cpu` → a notebook saved, the server stopped and
started, the notebook back byte for byte → another user kept out → a changed value redeployed while the server
runs → destroy, the notebook still on the volume.

The tests run in order on one stack (module-scoped fixtures); each failure names the step and the pods' last events.
GPU profiles still land on the simulated GPU node: their pods are scheduled there and stay simulated.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

from components.core.storage_spec import CLAIM_NAME
from tests.e2e.harness import cluster
from tests.node import realnode
from tests.node.realnode import CLUSTER, NAMESPACE, STACK, HubUser, NodeTierError, node, wait

NOTEBOOK_PATH = "notebooks/persist.ipynb"
SERVICE_LABEL = "app.kubernetes.io/name=gpu-availability"
state: dict[str, Any] = {}


def kubectl_json(*args: str) -> Any:
    return json.loads(cluster.kubectl(CLUSTER, "-n", NAMESPACE, *args, "-o", "json").stdout)


def user_pod(name: str) -> dict[str, Any]:
    items = kubectl_json("get", "pods", "-l", f"hub.jupyter.org/username={name}")["items"]
    if len(items) != 1:
        raise NodeTierError(f"expected one server pod of {name}, found {[p['metadata']['name'] for p in items]}")
    return items[0]


def notebook_bytes(seed: float) -> str:
    doc = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "persist",
                "metadata": {},
                "outputs": [],
                "source": f"print('saved on the real node', {seed!r})",
            }
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(doc, indent=1) + "\n"


def test_0_the_pod_network_stays_on_this_machine(real_cluster: str) -> None:
    """No route, masquerade or forward off the host: pods reach each other, the host's services and nothing else."""
    forward = _sh("iptables", "-w", "-S", "FORWARD")
    assert f"-A FORWARD -j {node.ISOLATE_CHAIN}" in forward, forward  # kube-proxy accepts no NEW packet before it
    isolate = _sh("iptables", "-w", "-S", node.ISOLATE_CHAIN)
    assert f"-A {node.ISOLATE_CHAIN} -i {node.BRIDGE} ! -o {node.BRIDGE} -j DROP" in isolate
    assert f"-A {node.ISOLATE_CHAIN} ! -i {node.BRIDGE} -o {node.BRIDGE} -j DROP" in isolate
    masquerade = [r for r in _sh("iptables", "-w", "-t", "nat", "-S", "POSTROUTING").splitlines() if "MASQUERADE" in r]
    assert not masquerade, masquerade  # kube-proxy masquerades only inside KUBE-POSTROUTING, by its mark
    conflist = json.loads(next((node.node_dir() / "cni").glob("*.conflist")).read_text())
    assert conflist["plugins"][0]["ipMasq"] is False
    assert f"{node.SERVICE_CIDR} dev {node.BRIDGE}" in _sh("ip", "route", "show", node.SERVICE_CIDR)


def _sh(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def test_a_up_starts_the_hub_and_proxy_from_the_registry_on_the_real_node(
    stack: realnode.Stack, images: realnode.Images
) -> None:
    result = stack.project.pulumi("up", "--stack", STACK, "--yes", timeout=realnode.UP_TIMEOUT)
    print(f"[node] pulumi up: {result.seconds:.1f} s")
    hub = wait(
        "the hub pod to be Ready",
        lambda: (p := realnode.hub_pod()) and realnode.pod_ready(p) and p,
        300,
        selector="component=hub",
    )
    assert hub["spec"]["nodeName"] == "e2e-real-node"
    assert hub["spec"]["containers"][0]["image"] == images.hub
    proxy = kubectl_json("get", "pods", "-l", "component=proxy")["items"]
    assert [p["spec"]["nodeName"] for p in proxy] == ["e2e-real-node"]
    assert proxy[0]["spec"]["containers"][0]["image"] == images.proxy
    # the chart's images came from the user's registry with the stack's pull secret, not node credentials
    assert hub["spec"].get("imagePullSecrets"), hub["spec"]
    base = realnode.proxy_url()
    info = wait("the hub's API through the proxy", lambda: _get_json(f"{base}/hub/api/"), 60)
    assert info["version"].startswith("5.5."), info
    state["base"] = base


def _get_json(url: str) -> Any:
    import requests

    try:
        r = requests.get(url, timeout=5)
    except requests.RequestException:
        return None
    return r.json() if r.status_code == 200 else None


def test_b_the_hub_runs_the_programs_values(stack: realnode.Stack) -> None:
    """The spawn form the running hub renders lists the profiles the pure core computes from the live nodes."""
    alice = HubUser(state["base"], "alice")
    alice.login(stack.shared_password)
    plan = realnode.live_plan(stack)
    form = alice.session.get(f"{state['base']}/hub/spawn", timeout=30)
    assert form.status_code == 200, form.text[:500]
    for profile in plan.profiles:
        assert profile["display_name"] in form.text, profile["display_name"]
    state["alice"], state["plan"] = alice, plan


def test_b2_the_form_shows_free_gpus_from_the_availability_service(stack: realnode.Stack) -> None:
    """The hub reads no pod outside its namespace: the availability service (its own pod, account and
    ClusterRole) watches them and the hub polls its per-node totals, which then appear in the form."""
    service = wait(
        "the availability service to be Ready",
        lambda: next(
            (p for p in kubectl_json("get", "pods", "-l", SERVICE_LABEL)["items"] if realnode.pod_ready(p)), None
        ),
        300,
        selector=SERVICE_LABEL,
    )
    assert service["spec"]["nodeName"] == "e2e-real-node"
    assert service["spec"]["serviceAccountName"] == "gpu-availability"
    gpu = next(p for p in state["plan"].profiles if p["slug"] == realnode.profile_slug(state["plan"], gpu=True))

    def live_form() -> str | None:
        text = state["alice"].session.get(f"{state['base']}/hub/spawn", timeout=30).text
        return (
            text
            if re.search(re.escape(gpu["display_name"]) + r" - [0-9]+ GPU\(s\) free now|[0-9]+/[0-9]+ free", text)
            else None
        )

    wait("free GPUs in the hub's spawn form", live_form, 120)
    # the GPU overview, a hub service in the hub pod, through the proxy and the hub's OAuth login
    def overview() -> str | None:
        page = state["alice"].session.get(f"{state['base']}/services/gpu-overview/", timeout=30)
        ready = page.status_code == 200 and "GPU overview" in page.text and "figures from never" not in page.text
        return page.text if ready else None

    text = wait("the GPU overview page through the proxy", overview, 120)
    assert "nvidia.com/gpu free" in text and "Signed in as alice" in text, text[-1500:]
    # the hub's own account cannot list pods outside its namespace any more
    hub_account = f"system:serviceaccount:{NAMESPACE}:hub"
    for where in ("--all-namespaces", "--namespace=kube-system"):
        can = cluster.kubectl(CLUSTER, "auth", "can-i", "list", "pods", where, f"--as={hub_account}", check=False)
        assert can.stdout.strip() == "no", (where, can.stdout, can.stderr)
    # nor read a Secret of its own namespace (the chart's Role allowed it; components/core/hub_rbac.py does not)
    can = cluster.kubectl(CLUSTER, "auth", "can-i", "get", "secrets", f"--namespace={NAMESPACE}", f"--as={hub_account}",
                          check=False)  # fmt: skip
    assert can.stdout.strip() == "no", (can.stdout, can.stderr)
    service_account = f"system:serviceaccount:{NAMESPACE}:gpu-availability"
    can = cluster.kubectl(CLUSTER, "auth", "can-i", "list", "pods", "--all-namespaces", f"--as={service_account}")
    assert can.stdout.strip() == "yes"


def test_c_a_cpu_server_starts_on_the_real_node_and_answers_through_the_proxy(
    stack: realnode.Stack, images: realnode.Images
) -> None:
    alice: HubUser = state["alice"]
    start = time.monotonic()
    alice.start(realnode.profile_slug(state["plan"], gpu=False))
    alice.wait_started()
    print(f"[node] first server start (image pulled by the pre-puller or now): {time.monotonic() - start:.1f} s")
    pod = user_pod("alice")
    assert pod["spec"]["nodeName"] == "e2e-real-node"
    assert pod["spec"]["containers"][0]["image"] == images.user["jupyter-ml-cpu"]
    r = alice.api("GET", "/user/alice/api")
    assert r.status_code == 200 and "version" in r.json(), r.text[:300]


def test_d_a_saved_notebook_survives_a_stop_and_start_byte_for_byte() -> None:
    alice: HubUser = state["alice"]
    content = notebook_bytes(time.time())
    r = alice.api(
        "PUT",
        f"/user/alice/api/contents/{NOTEBOOK_PATH}",
        json={"type": "file", "format": "text", "content": content},
    )
    assert r.status_code in (200, 201), r.text[:300]
    on_volume = realnode.volumes_dir() / "e2e-notebooks" / "alice" / "persist.ipynb"
    assert on_volume.read_text() == content  # on the claim's volume, in the user's own directory
    alice.stop()
    alice.wait_stopped()
    start = time.monotonic()
    alice.start(realnode.profile_slug(state["plan"], gpu=False))
    alice.wait_started()
    print(f"[node] server start with the image present: {time.monotonic() - start:.1f} s")
    r = alice.api("GET", f"/user/alice/api/contents/{NOTEBOOK_PATH}", params={"type": "file", "format": "text"})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["content"] == content
    state["content"] = content


def test_e_another_user_cannot_reach_it(stack: realnode.Stack) -> None:
    bob = HubUser(state["base"], "bob")
    bob.login(stack.shared_password)
    r = bob.api("GET", f"/user/alice/api/contents/{NOTEBOOK_PATH}", allow_redirects=False)
    assert r.status_code in (302, 403, 404), (r.status_code, r.text[:300])
    assert state["content"] not in r.text
    # without any credentials, and with bob's browser session, the same
    assert bob.session.get(
        f"{state['base']}/user/alice/api/contents/{NOTEBOOK_PATH}", allow_redirects=False, timeout=30
    ).status_code in (302, 403, 404)
    assert bob.api("GET", "/hub/api/users/alice").status_code in (403, 404)  # 404: JupyterHub 5 hides who exists
    state["bob"] = bob


def test_f_a_gpu_profile_lands_on_the_simulated_gpu_node() -> None:
    bob: HubUser = state["bob"]
    bob.start(realnode.profile_slug(state["plan"], gpu=True))
    pod = wait(
        "bob's GPU server pod to be scheduled", lambda: _scheduled("bob"), 120, selector="hub.jupyter.org/username=bob"
    )
    assert pod["spec"]["nodeName"] == "gpu-4090"
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits.get("nvidia.com/gpu") == "1", limits
    bob.stop()
    bob.wait_stopped()


def _scheduled(name: str) -> dict[str, Any] | None:
    items = kubectl_json("get", "pods", "-l", f"hub.jupyter.org/username={name}")["items"]
    return items[0] if items and items[0]["spec"].get("nodeName") else None


def test_g_a_changed_value_restarts_the_hub_and_the_running_server_keeps_working(stack: realnode.Stack) -> None:
    alice: HubUser = state["alice"]
    before = realnode.hub_pod()
    assert before is not None
    stack.project.set_config(STACK, "culling", {**stack.config.get("culling", {}), "timeoutSeconds": 3000})
    result = stack.project.pulumi("up", "--stack", STACK, "--yes", timeout=realnode.UP_TIMEOUT)
    print(f"[node] pulumi up with a changed value: {result.seconds:.1f} s")
    after = realnode.wait_new_hub(before)
    assert after["spec"]["nodeName"] == "e2e-real-node"
    assert alice.server_answers()
    server = wait("the new hub to report alice's server ready", lambda: (s := alice.server()) and s.get("ready"), 60)
    assert server
    r = alice.api("GET", f"/user/alice/api/contents/{NOTEBOOK_PATH}", params={"type": "file", "format": "text"})
    assert r.status_code == 200 and r.json()["content"] == state["content"]


def test_h_destroy_leaves_the_notebook_on_the_volume(stack: realnode.Stack) -> None:
    """`destroy --exclude-protected` removes the hub and keeps the notebooks' claim (README, "Destroy")."""
    stack.project.pulumi("destroy", "--stack", STACK, "--yes", "--exclude-protected", timeout=realnode.UP_TIMEOUT)
    wait("the hub pod to go", lambda: not kubectl_json("get", "pods", "-l", "component=hub")["items"], 120)
    claims = [c["metadata"]["name"] for c in kubectl_json("get", "persistentvolumeclaims")["items"]]
    assert CLAIM_NAME in claims, claims
    on_volume = realnode.volumes_dir() / "e2e-notebooks" / "alice" / "persist.ipynb"
    assert on_volume.read_text() == state["content"]
