"""The GPU availability service (issue 25: the hub no longer reads every pod of the cluster).

Its objects: a pod that meets Pod Security "restricted", its own ServiceAccount and a ClusterRole of list and
watch on nodes and pods only, a NetworkPolicy that admits only the hub. Its HTTP side, served by tornado as in the
pod, and the hub's poller (live_profiles.RemoteUsage) over real HTTP: totals arrive, an unchanged generation
costs a 304 and no recomputation of the form, a change arrives, a service that stops answering makes the hub
fall back to the deploy-time list. The watch itself runs against a real API server in
tests/e2e/test_availability_cache.py."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import pytest

from components import shipped
from components.core import availability_spec as spec
from components.core.values import CORE_POD_AFFINITY
from tests.hubcode import COMPONENTS, exec_hub_text
from tests.pss import restricted_violations

LIVE = exec_hub_text(shipped.text("live_profiles.py"), {})
SERVICE = exec_hub_text(shipped.text("availability_service.py"), {"__name__": "availability_service"})
IMAGE = "harbor.lab.example/mirror/k8s-hub:4.4.0"


def _objects() -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in spec.availability_objects("jhub", IMAGE, ["harbor-pull"], CORE_POD_AFFINITY)}


def test_the_service_pod_is_restricted_and_runs_the_shipped_files() -> None:
    objects = _objects()
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["imagePullSecrets"] == [{"name": "harbor-pull"}]
    assert pod["containers"][0]["image"] == IMAGE
    assert objects["ConfigMap"]["data"] == {
        "availability_service.py": (COMPONENTS / "shipped" / "availability_service.py").read_text(),
        "live_profiles.py": (COMPONENTS / "shipped" / "live_profiles.py").read_text(),
    }
    command = pod["containers"][0]["command"]
    assert command[1] == f"{spec.MOUNT_DIR}/availability_service.py"


def test_only_its_own_account_may_list_and_watch_nodes_and_pods() -> None:
    objects = _objects()
    assert objects["ClusterRole"]["rules"] == [
        {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list", "watch"]}
    ]
    assert objects["ClusterRoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "gpu-availability", "namespace": "jhub"}
    ]
    assert objects["ClusterRole"]["metadata"]["name"] == "gpu-jupyterhub-jhub-availability-reader"
    assert objects["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == "gpu-availability"


def test_only_the_hub_pod_reaches_it() -> None:
    policy = _objects()["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {"app": "jupyterhub", "component": "hub"}}}],
            "ports": [{"port": 8181}],
        }
    ]


def test_changed_sources_roll_the_pod() -> None:
    a = spec.deployment("jhub", IMAGE, [], {}, "aaaa")
    b = spec.deployment("jhub", IMAGE, [], {}, "bbbb")
    assert a["spec"]["template"]["metadata"] != b["spec"]["template"]["metadata"]


# ---- the HTTP side and the hub's poller, over real HTTP ----


class FakeCache:
    """What the service reads from live_profiles.ClusterCache."""

    def __init__(self) -> None:
        self.synced = {"nodes": False, "pods": False}
        self.generation = 0
        self.nodes: dict[str, Any] = {}
        self.usage_calls = 0

    def usage(self) -> dict[str, Any]:
        self.usage_calls += 1
        return self.nodes

    def holder_list(self) -> list[dict[str, Any]]:
        return [{"node": n, "user": "alice", "server": "", "gpus": {"nvidia.com/gpu": 1}} for n in self.nodes]

    def set(self, free: int) -> None:
        self.synced = {"nodes": True, "pods": True}
        self.nodes = {
            "gpu-1": {
                "ready": True,
                "resources": {"nvidia.com/gpu": [free, 2]},
                "labels": {"kubernetes.io/hostname": "gpu-1"},
                "taints": [],
                "cpu": [8000, 8000],
                "memory": [2**35, 2**35],
            }
        }
        self.generation += 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.logger = logging.getLogger("test-remote")

    def warning(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)

    info = warning


def test_the_hub_polls_totals_and_a_304_costs_nothing() -> None:
    async def scenario() -> None:
        cache = FakeCache()
        port = _free_port()
        server = SERVICE["make_app"](cache).listen(port, address="127.0.0.1")
        url = f"http://127.0.0.1:{port}/usage"
        remote = LIVE["RemoteUsage"](url, every=0.05)
        log = Log()
        try:
            await remote.poll_once(log)  # 503: the watch is not synced
            assert remote.synced == {"service": False} and "did not answer" in log.lines[0]
            cache.set(free=1)
            assert await remote.refresh() is True
            assert remote.usage()["gpu-1"]["resources"]["nvidia.com/gpu"] == [1, 2]
            generation, calls = remote.generation, cache.usage_calls
            assert await remote.refresh() is False, "same generation: 304"
            assert (remote.generation, cache.usage_calls) == (generation, calls)
            cache.set(free=0)
            assert await remote.refresh() is True
            assert remote.usage()["gpu-1"]["resources"]["nvidia.com/gpu"] == [0, 2]
            health = await LIVE["_http_get"](f"http://127.0.0.1:{port}/healthz", None)
            assert health[0] == 200 and json.loads(health[2]) == {"synced": True}
            holders = await LIVE["_http_get"](f"http://127.0.0.1:{port}/holders", None)
            assert holders[0] == 200 and json.loads(holders[2])["holders"][0]["user"] == "alice"
            again = await LIVE["_http_get"](f"http://127.0.0.1:{port}/holders", holders[1])
            assert again[0] == 304, "the overview's polls cost nothing while nothing changes"
        finally:
            server.stop()
        # the service is gone: after a few failed polls the hub stops trusting the old totals
        for _ in range(remote.STALE_AFTER_FAILURES):
            await remote.poll_once(log)
        assert remote.synced == {"service": False}

    asyncio.run(scenario())


@pytest.mark.parametrize("body", [b"[]", b'{"nodes": []}', b"not json"])
def test_a_bad_answer_never_becomes_totals(body: bytes) -> None:
    async def get(url: str, etag: str | None) -> tuple[int, str, bytes]:
        return 200, '"1"', body

    remote = LIVE["RemoteUsage"]("http://x/usage", get=get)
    log = Log()
    asyncio.run(remote.poll_once(log))
    assert remote.synced == {"service": False} and remote.usage() == {}
    assert log.lines


def test_the_form_is_computed_once_per_change_of_the_totals() -> None:
    """Form loads between two changes get the list computed once (KubeSpawner copies it before use)."""
    from types import SimpleNamespace

    ns = LIVE
    cache = FakeCache()
    calls = []

    async def get(url: str, etag: str | None) -> tuple[int, str | None, bytes]:
        calls.append(etag)
        if etag == f'"{cache.generation}"':
            return 304, etag, b""
        return 200, f'"{cache.generation}"', json.dumps({"nodes": cache.nodes}).encode()

    remote = ns["RemoteUsage"]("http://x/usage", get=get)
    remote.task = "started"  # the test polls by hand
    static = [
        {
            "display_name": "GPU",
            "slug": "gpu",
            "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}},
        }
    ]
    profile_list = ns["make_profile_list"](static, cache=remote)
    spawner = SimpleNamespace(log=Log(), user=SimpleNamespace(groups=[]))

    async def scenario() -> list[Any]:
        cache.set(free=2)
        await remote.poll_once(Log())
        first = await profile_list(spawner)
        await remote.poll_once(Log())  # 304
        second = await profile_list(spawner)
        cache.set(free=1)
        await remote.poll_once(Log())
        third = await profile_list(spawner)
        return [first, second, third]

    first, second, third = asyncio.run(scenario())
    assert first is second, "no change of the totals: the same list"
    assert third is not first
    assert first[0]["display_name"] == "GPU - 2 GPU(s) free now"
    assert third[0]["display_name"] == "GPU - 1 GPU(s) free now"


def test_the_charts_hub_policy_lets_the_hub_reach_the_service() -> None:
    """The chart renders our egress rule into the hub's NetworkPolicy (with hubPrivateEgress off too, where the
    chart's own rules would not reach a pod address)."""
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk is built for x86_64 Linux only")
    from pathlib import Path

    import yaml

    from components.core.config_load import parse_config
    from components.core.nodes import parse_nodes
    from components.core.values import build_values
    from tests.conftest import BASE_CONFIG, GIVEN_REFS
    from tests.fixtures.nodefactory import SCENARIOS
    from tests.test_chart_render import CHART_DIR

    assert CHART_DIR, "the published chart is in ../shared/z2jh/chart/jupyterhub"
    raw = {**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}, "network": {"hubPrivateEgress": False}}
    values = build_values(parse_config(raw), parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)
    rendered = helm.Chart.load(Path(CHART_DIR)).render(values, name="jupyterhub", namespace="jhub", is_install=True)
    objects = [d for p, t in rendered.items() if p.endswith(".yaml") for d in yaml.safe_load_all(t) if d]
    [hub] = [o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "hub"]
    assert spec.hub_egress_rule() in hub["spec"]["egress"]
