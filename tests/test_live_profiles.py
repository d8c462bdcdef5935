"""The hub-side spawn-time refresh, run as the hub runs it: the extraConfig text, executed."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any
from unittest import mock

import pytest

from components.core.config_load import parse_config
from components.core.nodes import parse_nodes
from components.core.profile_options import ANY_NODE
from components.core.values import build_values
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS
from tests.hubcode import exec_hub_text
from tests.spawner import make_spawner, pod_for


def deployed_values(**patch: Any) -> dict[str, Any]:
    cfg = parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}, **patch})
    return build_values(cfg, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)


def hub_namespace(values: dict[str, Any]) -> dict[str, Any]:
    """Execute hub.extraConfig the way z2jh's jupyterhub_config.py does, with c.KubeSpawner preset."""
    from traitlets.config import Config

    c = Config()  # what jupyterhub_config.py's `c` is
    c.KubeSpawner.profile_list = copy.deepcopy(values["singleuser"]["profileList"])
    ns: dict[str, Any] = {"c": c, "__name__": "jupyterhub_config"}
    exec_hub_text(values["hub"]["extraConfig"]["20-live-profiles"], ns)
    ns["callable"] = c.KubeSpawner.profile_list
    return ns


def gpu_pod(node: str, gpus: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "spec": {
            "nodeName": node,
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
            "initContainers": [{"resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}}],
        },
        "status": {"phase": phase},
    }


def spawner_for(values: dict[str, Any], groups: list[str] | None = None) -> Any:
    s = make_spawner(values)
    s.user.groups = [mock.Mock(**{"name": g}) for g in groups or []]
    for g, name in zip(s.user.groups, groups or [], strict=True):
        g.name = name
    return s


def call(profile_list: Any, values: dict[str, Any], groups: list[str] | None = None, log: Any = None) -> Any:
    """Call the profile_list callable with a real KubeSpawner, inside an event loop as the hub does."""

    async def go() -> Any:
        spawner = spawner_for(values, groups)
        if log is not None:
            spawner.log = log
        return await profile_list(spawner)

    return asyncio.run(go())


def test_free_and_total_per_node_and_full_nodes_hidden() -> None:
    values = deployed_values()
    ns = hub_namespace(values)
    nodes = copy.deepcopy(SCENARIOS["mixed"]["items"])
    pods = [gpu_pod("gpu-node-2", 2), gpu_pod("gpu-node-3", 1), gpu_pod("gpu-node-3", 5, phase="Succeeded")]

    async def fetch() -> tuple[list[Any], list[Any]]:
        return nodes, pods

    usage = ns["gpu_usage"](nodes, pods)
    assert usage["gpu-node-2"]["resources"]["nvidia.com/gpu"] == [0, 2]
    assert usage["gpu-node-3"]["resources"]["nvidia.com/gpu"] == [1, 2]
    profile_list = ns["make_profile_list"](values["singleuser"]["profileList"], fetch=fetch)
    profiles = call(profile_list, values)
    rtx = next(p for p in profiles if "4090" in p["slug"])
    choices = rtx["profile_options"]["node"]["choices"]
    assert "gpu-node-2" not in choices, "full node hidden"
    assert choices["gpu-node-3"]["display_name"].endswith("- 1/2 free")
    assert choices[ANY_NODE]["display_name"].endswith("- 1 free")
    auto = next(p for p in profiles if p["slug"] == "gpu")
    assert auto["display_name"].endswith("2 GPU(s) free now")  # gpu-node-1 (1) + gpu-node-3 (1)


def test_notready_node_hidden_and_class_dropped_when_empty() -> None:
    values = deployed_values()
    ns = hub_namespace(values)
    nodes = copy.deepcopy(SCENARIOS["mixed"]["items"])
    for n in nodes:
        if n["metadata"]["name"] == "gpu-node-1":
            n["status"]["conditions"][-1]["status"] = "False"

    async def fetch() -> tuple[list[Any], list[Any]]:
        return nodes, []

    profiles = call(ns["make_profile_list"](values["singleuser"]["profileList"], fetch=fetch), values)
    assert not any("3090" in p["slug"] for p in profiles)
    assert any("4090" in p["slug"] for p in profiles)


def test_api_failure_falls_back_to_deploy_time_profiles(caplog: pytest.LogCaptureFixture) -> None:
    values = deployed_values()
    ns = hub_namespace(values)

    async def broken() -> Any:
        raise RuntimeError("403 Forbidden: nodes is forbidden")

    log = logging.getLogger("test-hub")
    with caplog.at_level(logging.WARNING, logger="test-hub"):
        profiles = call(ns["make_profile_list"](values["singleuser"]["profileList"], fetch=broken), values, log=log)
    assert profiles == values["singleuser"]["profileList"]
    assert "403 Forbidden" in caplog.text and "deploy-time profiles" in caplog.text

    async def slow() -> Any:
        await asyncio.sleep(60)

    ns["API_TIMEOUT_SECONDS"] = 0.05
    profiles = call(ns["make_profile_list"](values["singleuser"]["profileList"], fetch=slow), values, log=log)
    assert profiles == values["singleuser"]["profileList"]


def test_gpu_profiles_only_for_configured_groups() -> None:
    values = deployed_values(profiles={"gpuGroups": ["gpu-users"], "liveAvailability": False})
    ns = hub_namespace(values)
    profile_list = ns["callable"]
    plain = call(profile_list, values, ["students"])
    assert [p["slug"] for p in plain] == ["cpu", "agent-dev"]
    member = call(profile_list, values, ["gpu-users"])
    assert len(member) == len(values["singleuser"]["profileList"])


def test_kubespawner_spawns_from_the_callable() -> None:
    values = deployed_values()
    ns = hub_namespace(values)

    async def fetch() -> tuple[list[Any], list[Any]]:
        return SCENARIOS["mixed"]["items"], [gpu_pod("gpu-node-2", 1)]

    slug = next(p["slug"] for p in values["singleuser"]["profileList"] if "4090" in p["slug"])

    async def go() -> dict[str, Any]:
        spawner = spawner_for(values)
        spawner.profile_list = ns["make_profile_list"](values["singleuser"]["profileList"], fetch=fetch)
        return await pod_for(spawner, {"profile": slug, "node": "gpu-node-2", "gpus": "1"})

    pod = asyncio.run(go())
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "gpu-node-2"}
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_disabled_means_no_extra_config() -> None:
    values = deployed_values(profiles={"liveAvailability": False})
    assert "20-live-profiles" not in values["hub"]["extraConfig"]


def test_auto_select_counts_only_gpus_on_nodes_with_a_suitable_driver() -> None:
    """The drivers fixture: 580, 570, 550, 470, unlabelled and old-GFD nodes with 1-2 GPUs each.
    Without the CUDA 12 images only gpu-580, gpu-nolabel and gpu-old-gfd (1 GPU each) can take
    an auto-select pod: 3 free, not the 8 GPUs of all Ready nodes."""
    cfg = parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}})
    values = build_values(cfg, parse_nodes(SCENARIOS["drivers"]), GIVEN_REFS)
    ns = hub_namespace(values)
    nodes = copy.deepcopy(SCENARIOS["drivers"]["items"])

    async def fetch() -> tuple[list[Any], list[Any]]:
        return nodes, []

    profiles = call(ns["make_profile_list"](values["singleuser"]["profileList"], fetch=fetch), values)
    auto = next(p for p in profiles if p["slug"] == "gpu")
    assert auto["display_name"].endswith(" 3 GPU(s) free now"), auto["display_name"]
    assert ns["affinity_admits"]([], {}) and not ns["affinity_admits"]([{"matchExpressions": []}], {})


def test_a_class_too_large_to_list_counts_free_gpus_on_its_nodes() -> None:
    from tests.fixtures.nodefactory import node, node_list

    doc = node_list(*(node(f"h-{i:03d}", gpus=2, product="NVIDIA-H100-80GB-HBM3", memory_mib=81559) for i in range(60)))
    cfg = parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}})
    values = build_values(cfg, parse_nodes(doc), GIVEN_REFS)
    ns = hub_namespace(values)
    nodes = copy.deepcopy(doc["items"])
    busy = [gpu_pod(f"h-{i:03d}", 2) for i in range(59)]

    async def fetch() -> tuple[list[Any], list[Any]]:
        return nodes, busy

    profiles = call(ns["make_profile_list"](values["singleuser"]["profileList"], fetch=fetch), values)
    h100 = next(p for p in profiles if "h100" in p["slug"])
    assert h100["profile_options"]["node"]["choices"][ANY_NODE]["display_name"] == "Any of 60 node(s) - 2 free"
    busy.append(gpu_pod("h-059", 2))
    profiles = call(ns["make_profile_list"](values["singleuser"]["profileList"], fetch=fetch), values)
    assert not any("h100" in p["slug"] for p in profiles), "every GPU of the class taken: the profile is hidden"


def test_availability_never_changes_the_deploy_time_list() -> None:
    """apply_availability copies only what it edits: the static list must come out as it went in."""
    values = deployed_values()
    ns = hub_namespace(values)
    profiles = values["singleuser"]["profileList"]
    before = copy.deepcopy(profiles)
    nodes = copy.deepcopy(SCENARIOS["mixed"]["items"])
    usage = ns["gpu_usage"](nodes, [gpu_pod("gpu-node-2", 2)])
    first = ns["apply_availability"](profiles, usage, [], [])
    second = ns["apply_availability"](profiles, usage, [], [])
    assert profiles == before
    assert first == second


def _pod(uid: str, node: str | None, gpus: int, phase: str = "Running", cpu: str = "500m") -> dict[str, Any]:
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    return {
        "metadata": {"uid": uid, "namespace": "x", "name": uid},
        "spec": {
            "nodeName": node,
            "containers": [{"resources": {"requests": {"cpu": cpu, **limits}, "limits": limits}}],
        },
        "status": {"phase": phase},
    }


def test_the_cache_keeps_totals_right_through_any_sequence_of_events() -> None:
    """Incremental totals after adds, moves, phase changes and deletes equal a fresh count of the end state."""
    import random

    ns = hub_namespace(deployed_values())
    nodes = copy.deepcopy(SCENARIOS["mixed"]["items"])
    names = [n["metadata"]["name"] for n in nodes]
    for seed in range(20):
        rnd = random.Random(seed)
        cache = ns["ClusterCache"]()
        for n in nodes:
            cache.node_event("ADDED", n)
        live: dict[str, dict[str, Any]] = {}
        for _step in range(200):
            uid = f"p{rnd.randrange(30)}"
            if uid in live and rnd.random() < 0.3:
                cache.pod_event("DELETED", live.pop(uid))
                continue
            pod = _pod(
                uid, rnd.choice([*names, None]), rnd.randrange(3), rnd.choice(["Pending", "Running", "Succeeded"])
            )
            cache.pod_event("MODIFIED" if uid in live else "ADDED", pod)
            live[uid] = pod
        assert cache.usage() == ns["gpu_usage"](nodes, list(live.values())), seed


def test_until_the_cache_is_synced_the_deploy_time_list_is_served(caplog: Any) -> None:
    values = deployed_values()
    ns = hub_namespace(values)
    cache = ns["ClusterCache"]()
    cache.task = "started elsewhere"  # no real watch in this test: events are fed by hand
    profile_list = ns["make_profile_list"](values["singleuser"]["profileList"], cache=cache)
    log = logging.getLogger("test-cache")
    with caplog.at_level(logging.INFO, logger="test-cache"):
        profiles = call(profile_list, values, log=log)
    assert "no per-node totals yet" in caplog.text
    assert [p["display_name"] for p in profiles] == [p["display_name"] for p in values["singleuser"]["profileList"]]
    for n in SCENARIOS["mixed"]["items"]:
        cache.node_event("ADDED", n)
    cache.pod_event("ADDED", _pod("a", "gpu-node-2", 2))
    cache.synced = {"nodes": True, "pods": True}
    profiles = call(profile_list, values, log=log)
    rtx = next(p for p in profiles if "4090" in p["slug"])
    assert "gpu-node-2" not in rtx["profile_options"]["node"]["choices"], "full node hidden, from the cache"


def test_the_hub_uses_the_cache_by_default() -> None:
    ns = hub_namespace(deployed_values())
    assert ns["c"].KubeSpawner.profile_list.cache is not None
