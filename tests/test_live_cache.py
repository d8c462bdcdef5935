"""The hub-side availability code piece by piece: request arithmetic, the cache's bookkeeping, its watch loop
against a fake API client, and which sizes a node has room for (mutation testing, scripts/mutation.sh, found
the watch loop untested outside e2e, and taints, init containers and the size boundaries unasserted).

The code runs as the hub runs it: components/shipped/live_profiles.py's text, executed (tests/hubcode.py)."""

from __future__ import annotations

import asyncio
import copy
import logging
import sys
import types
from typing import Any
from unittest import mock

import pytest

from tests.hubcode import COMPONENTS, exec_hub_text

NS = exec_hub_text((COMPONENTS / "shipped" / "live_profiles.py").read_text(), {})
GIB = 1024**3


@pytest.fixture(autouse=True)
def _fresh_regex_cache() -> None:
    """Each test compiles its own patterns (the namespace is shared, and so would be its regex cache)."""
    NS["_REGEX_CACHE"].clear()


def test_patterns_are_compiled_once_and_an_empty_one_accepts_any_name() -> None:
    compiled = NS["_compiled"]
    assert compiled("^(?:a|b)$") is compiled("^(?:a|b)$")
    assert compiled("^(?:a|b)$").match("b") and compiled("^(?:a|b)$").match("c") is None
    assert compiled("").match("any-node")


def test_requests_as_the_scheduler_counts_them() -> None:
    pod = {
        "spec": {
            "containers": [
                {
                    "resources": {
                        "limits": {"nvidia.com/gpu": "2", "cpu": "2", "memory": "1Gi"},
                        "requests": {"cpu": "500m", "memory": "512Mi"},
                    }
                },
                {
                    "resources": {
                        "requests": {
                            "cpu": "1",
                            "nvidia.com/gpu": "1",
                            "nvidia.com/mig-1g.10gb": "1",
                            "x.com/fpga": "1",
                        }
                    }
                },
                {},
            ],
            "initContainers": [
                {"resources": {"limits": {"nvidia.com/gpu": "2", "cpu": "4", "memory": "256Mi"}}},
                {"resources": {"requests": {"nvidia.com/gpu": "1", "nvidia.com/gpu.shared": "0"}}},
            ],
        }
    }
    assert NS["_pod_requests"](pod) == {"nvidia.com/gpu": 3, "nvidia.com/mig-1g.10gb": 1, "nvidia.com/gpu.shared": 0}
    # containers add up (a request wins over its limit), an init container counts alone: max of the two
    assert NS["_cpu_memory_requests"](pod) == (4000, 512 * 1024**2)
    small_init = {"spec": {"containers": pod["spec"]["containers"], "initContainers": [{"resources": {}}]}}
    assert NS["_cpu_memory_requests"](small_init) == (1500, 512 * 1024**2)
    assert NS["_cpu_memory_requests"]({"spec": {}}) == (0, 0)
    assert NS["_pod_requests"]({}) == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1G", GIB), ("512M", 512 * 1024**2), ("1.5K", 1536), ("2T", 2 * 1024**4), ("7", 7), ("lots", 0), ("1Gi", 0)],
)
def test_kubespawner_byte_specifications(text: str, expected: int) -> None:
    assert NS["_spawner_bytes"](text) == expected


def pod(uid: str | None, node: str | None, gpus: int, phase: str = "Running", name: str = "p") -> dict[str, Any]:
    meta = {"name": name, "namespace": "users", **({"uid": uid} if uid else {})}
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"cpu": "1", "memory": "1Gi"}}
    return {
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"resources": resources}]},
        "status": {"phase": phase},
    }


def node(name: str, gpus: int = 4, ready: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": extra,
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "8", "memory": "32Gi"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_the_cache_counts_each_pod_once_by_uid_or_name() -> None:
    cache = NS["ClusterCache"]()
    cache.node_event("ADDED", node("n1"))
    assert cache.generation == 1
    # a pod re-created under the same name while the old one still holds its GPUs: two pods (two uids)
    cache.pod_event("ADDED", pod("u1", "n1", 1))
    cache.pod_event("ADDED", pod("u2", "n1", 2))
    # pods without a uid are told apart by namespace and name
    cache.pod_event("ADDED", pod(None, "n1", 1, name="a"))
    cache.pod_event("ADDED", {**pod(None, "n1", 0, name="a"), "metadata": {"name": "a", "namespace": "other"}})
    cache.pod_event("ADDED", pod(None, "n1", 0, name="b"))
    usage = cache.usage()["n1"]
    assert usage["resources"] == {"nvidia.com/gpu": [0, 4]}
    assert usage["cpu"] == [3000, 8000] and usage["memory"] == [27 * GIB, 32 * GIB]
    cache.pod_event("DELETED", pod(None, "n1", 1, name="a"))
    cache.pod_event("MODIFIED", pod("u2", "n1", 2, phase="Failed"))
    cache.pod_event("MODIFIED", pod("u1", "n1", 1, phase="Succeeded"))
    usage = cache.usage()["n1"]
    assert usage["resources"] == {"nvidia.com/gpu": [4, 4]}
    assert usage["cpu"] == [6000, 8000] and usage["memory"] == [30 * GIB, 32 * GIB], "the other namespace's pod, b"
    assert cache.generation == 9, "one generation per event"
    cache.node_event("ADDED", {"metadata": {}})
    assert cache.generation == 9, "a node without a name is no event"


def test_node_events_add_replace_and_delete() -> None:
    cache = NS["ClusterCache"]()
    assert cache.synced == {"nodes": False, "pods": False}, "nothing is synced before the first lists"
    cache.node_event("ADDED", node("n1"))
    cache.node_event("MODIFIED", node("n1", gpus=2))
    cache.node_event("ADDED", node("n2"))
    assert cache.generation == 3
    assert {k: v["gpus"] for k, v in cache.nodes.items()} == {"n1": {"nvidia.com/gpu": 2}, "n2": {"nvidia.com/gpu": 4}}
    cache.node_event("DELETED", node("n1"))
    cache.node_event("DELETED", node("never-seen"))
    assert list(cache.nodes) == ["n2"] and cache.generation == 5


def test_a_complete_new_list_replaces_one_kind_and_the_old_totals_serve_until_then() -> None:
    cache = NS["ClusterCache"]()
    cache.node_event("ADDED", node("n1"))
    cache.pod_event("ADDED", pod("u1", "n1", 1))
    cache.synced = {"nodes": True, "pods": True}
    fresh = NS["ClusterCache"]()
    fresh.pod_event("ADDED", pod("u2", "n1", 3))
    assert cache.usage()["n1"]["resources"]["nvidia.com/gpu"] == [3, 4], "still the old list's totals"
    generation = cache.generation
    cache.take_list("pods", fresh)
    assert list(cache.pods) == ["u2"] and cache.usage()["n1"]["resources"]["nvidia.com/gpu"] == [1, 4]
    assert list(cache.nodes) == ["n1"] and cache.generation == generation + 1
    nodes = NS["ClusterCache"]()
    nodes.node_event("ADDED", node("n2"))
    cache.take_list("nodes", nodes)
    assert list(cache.nodes) == ["n2"] and list(cache.pods) == ["u2"] and cache.synced == {"nodes": True, "pods": True}


def test_the_cache_starts_one_watch_per_kind_once() -> None:
    cache = NS["ClusterCache"]()
    started: list[tuple[str, Any]] = []

    async def fake_watch(kind: str, log: Any) -> str:
        started.append((kind, log))
        return kind

    cache._watch = fake_watch
    log = logging.getLogger("test-start")

    async def go() -> Any:
        task = cache.start(log)
        assert cache.start(log) is task
        return await task

    assert asyncio.run(go()) == ["nodes", "pods"]
    assert started == [("nodes", log), ("pods", log)]


class _Stop(BaseException):
    """Ends the watch loop in a test (the loop itself catches Exception and lists again)."""


class FakeApi:
    """kubernetes_asyncio as the watch loop uses it: list, then a watch stream from that list's version."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script  # per list call: an exception to raise, or (items, version, events)
        self.calls: list[tuple[str, Any]] = []
        self.incluster = 0
        self.module = types.ModuleType("kubernetes_asyncio")
        self.module.client = types.SimpleNamespace(ApiClient=self._api_client, CoreV1Api=self._core)  # type: ignore[attr-defined]
        self.module.config = types.SimpleNamespace(load_incluster_config=self._incluster)  # type: ignore[attr-defined]
        self.module.watch = types.SimpleNamespace(Watch=lambda: self)  # type: ignore[attr-defined]
        self.events: list[dict[str, Any]] = []

    def _incluster(self) -> None:
        self.incluster += 1

    def _api_client(self) -> Any:
        api = self

        class Client:
            async def __aenter__(self) -> Any:
                return self

            async def __aexit__(self, *args: Any) -> None:
                api.calls.append(("closed", None))

        return Client()

    def _core(self, api: Any) -> Any:
        assert api is not None and hasattr(api, "__aexit__"), "the API object is built on the open client"
        return types.SimpleNamespace(list_node=self._lister("nodes"), list_pod_for_all_namespaces=self._lister("pods"))

    def _lister(self, kind: str) -> Any:
        async def method(**kwargs: Any) -> Any:
            self.calls.append((f"list {kind}", kwargs))
            if not self.script:
                raise _Stop
            step = self.script.pop(0)
            if isinstance(step, BaseException):
                raise step
            items, version, self.events = step
            body = {"items": items, "metadata": {"resourceVersion": version}}

            class Response:
                async def read(self) -> bytes:
                    import json

                    return json.dumps(body).encode()

            return Response()

        method.kind = kind  # type: ignore[attr-defined]
        return method

    def stream(self, method: Any, **kwargs: Any) -> Any:
        self.calls.append((f"watch {method.kind}", kwargs))
        events = self.events

        async def gen() -> Any:
            for e in events:
                yield e

        return gen()


def run_watch(cache: Any, kind: str, api: FakeApi, log: Any) -> list[float]:
    sleeps: list[float] = []

    async def no_sleep(delay: float) -> None:
        sleeps.append(delay)
        if len(sleeps) > 50:  # a loop that never lists again
            raise _Stop

    async def go() -> None:
        with mock.patch.dict(sys.modules, {"kubernetes_asyncio": api.module}), mock.patch("asyncio.sleep", no_sleep):
            await cache._watch(kind, log)

    with pytest.raises(_Stop):
        asyncio.run(go())
    return sleeps


def test_the_watch_lists_then_follows_events_from_that_version(caplog: pytest.LogCaptureFixture) -> None:
    loads: list[str] = []

    async def load() -> None:
        loads.append("kubeconfig")

    cache = NS["ClusterCache"](load_config=load)
    n2 = node("n2", gpus=2)
    api = FakeApi(
        [
            (
                [node("n1"), node("gone")],
                "41",
                [{"type": "ADDED", "raw_object": n2}, {"type": "DELETED", "raw_object": node("gone")}],
            ),
            ([node("n3")], "57", [{"type": "MODIFIED", "raw_object": node("n3", gpus=8)}, {"type": "BOOKMARK"}]),
        ]
    )
    log = logging.getLogger("test-watch")
    with caplog.at_level(logging.WARNING, logger="test-watch"):
        sleeps = run_watch(cache, "nodes", api, log)
    assert api.calls[:3] == [
        ("list nodes", {"_preload_content": False, "limit": 500}),
        ("watch nodes", {"resource_version": "41", "timeout_seconds": 300}),
        ("closed", None),
    ]
    assert api.calls[4] == ("watch nodes", {"resource_version": "57", "timeout_seconds": 300})
    assert loads == ["kubeconfig"] * 3 and api.incluster == 0
    # the second list replaced the first one's nodes; its watch's events applied on top
    assert {k: v["gpus"] for k, v in cache.nodes.items()} == {"n3": {"nvidia.com/gpu": 8}}
    assert cache.synced == {"nodes": True, "pods": False}
    assert sleeps == [], "a watch that ends lists again at once"
    assert "GPU availability: nodes watch ended (_Stop()); listing again" not in caplog.text


def test_the_watch_lists_pods_and_backs_off_while_the_api_fails(caplog: pytest.LogCaptureFixture) -> None:
    cache = NS["ClusterCache"]()
    cache.node_event("ADDED", node("n1"))
    api = FakeApi(
        [
            RuntimeError("410 Gone"),
            RuntimeError("connection refused"),
            RuntimeError("again"),
            (
                [pod("u1", "n1", 1), pod("u3", "n1", 1)],
                "7",
                [
                    {"type": "ADDED", "raw_object": pod("u2", "n1", 2)},
                    {"type": "DELETED", "raw_object": pod("u1", "n1", 1)},
                ],
            ),
            *[RuntimeError(f"down {i}") for i in range(8)],
        ]
    )
    log = logging.getLogger("test-backoff")
    with caplog.at_level(logging.WARNING, logger="test-backoff"):
        sleeps = run_watch(cache, "pods", api, log)
    assert api.incluster == 13, "in the hub: the pod's service account, before every list"
    assert api.calls[0] == ("list pods", {"_preload_content": False, "limit": 500})
    assert ("watch pods", {"resource_version": "7", "timeout_seconds": 300}) in api.calls
    # doubling from 1 s, back to 1 s after a good list, never above 60 s
    assert sleeps == [1.0, 2.0, 4.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert caplog.records[0].getMessage() == (
        "GPU availability: pods watch ended (RuntimeError('410 Gone')); listing again"
    )
    assert cache.usage()["n1"]["resources"] == {"nvidia.com/gpu": [1, 4]}, "u2 and u3 hold GPUs, u1 was deleted"
    assert cache.synced["pods"] is True


def test_tolerations_as_the_scheduler_matches_them() -> None:
    tolerated = NS["_tolerated"]
    gpu = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    assert not tolerated(gpu, None) and not tolerated(gpu, [])
    assert tolerated(gpu, [{"operator": "Exists"}]), "Exists without a key tolerates everything"
    assert tolerated(gpu, [{"key": "nvidia.com/gpu", "operator": "Exists"}])
    assert not tolerated(gpu, [{"key": "other", "operator": "Exists"}])
    assert tolerated(gpu, [{"key": "nvidia.com/gpu", "value": "present"}]), "Equal is the default operator"
    assert tolerated(gpu, [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}])
    assert not tolerated(gpu, [{"key": "nvidia.com/gpu", "value": "absent"}])
    assert not tolerated(gpu, [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}])
    # a toleration for another effect does not end the search
    assert tolerated(
        gpu, [{"operator": "Exists", "effect": "NoExecute"}, {"key": "nvidia.com/gpu", "value": "present"}]
    )
    bare = {"key": "dedicated", "effect": "NoExecute"}
    assert tolerated(bare, [{"key": "dedicated", "value": ""}]) and tolerated(bare, [{"key": "dedicated"}])
    assert tolerated({**bare, "value": None}, [{"key": "dedicated", "value": None}])
    assert not tolerated(bare, [{"key": "dedicated", "value": "x"}])


def usage_entry(cpu: int, memory: int, *, ready: bool = True, taints: Any = (), labels: Any = None) -> dict[str, Any]:
    return {
        "ready": ready,
        "resources": {},
        "labels": labels or {"zone": "a"},
        "taints": list(taints),
        "cpu": [cpu, 16000],
        "memory": [memory, 64 * GIB],
    }


def test_a_node_admits_a_pod_when_ready_affine_and_every_hard_taint_tolerated() -> None:
    admits = NS["_admits"]
    assert admits(usage_entry(0, 0), {}), "admission is not about room"
    assert not admits(usage_entry(8000, 8 * GIB, ready=False), {})
    zone_b = {"node_affinity_required": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}
    assert not admits(usage_entry(8000, 8 * GIB), zone_b)
    assert admits(usage_entry(8000, 8 * GIB, labels={"zone": "b"}), zone_b)
    for effect in ("NoSchedule", "NoExecute"):
        taint = {"key": "gpu", "effect": effect}
        assert not admits(usage_entry(8000, 8 * GIB, taints=[taint]), {}), effect
        assert admits(usage_entry(8000, 8 * GIB, taints=[taint]), {"tolerations": [{"key": "gpu"}]}), effect
        other = {"key": "spot", "effect": effect}
        assert not admits(usage_entry(8000, 8 * GIB, taints=[taint, other]), {"tolerations": [{"key": "gpu"}]})
    soft = {"key": "gpu", "effect": "PreferNoSchedule"}
    assert admits(usage_entry(8000, 8 * GIB, taints=[soft]), {})


def test_a_size_needs_its_cpu_and_memory_free_on_one_node_exactly_enough_is_enough() -> None:
    def shown(cpu: int, memory: int) -> list[str]:
        return sorted(filtered(sized_profile(), {"n1": usage_entry(cpu, memory)}))

    assert shown(2000, 4 * GIB) == ["m", "s"]
    assert shown(1999, 4 * GIB) == ["s"]
    assert shown(2000, 4 * GIB - 1) == ["s"]


def test_free_and_total_gpus_of_a_node_count_only_the_resources_it_has() -> None:
    info = {"resources": {"nvidia.com/gpu": [1, 4], "nvidia.com/mig-1g.10gb": [2, 7]}}
    free_total = NS["_free_total"]
    assert free_total(info, {"nvidia.com/gpu"}) == (1, 4)
    assert free_total(info, {"nvidia.com/gpu", "nvidia.com/mig-1g.10gb"}) == (3, 11)
    assert free_total(info, {"nvidia.com/gpu.shared"}) == (0, 0)


def sized_profile(**override: Any) -> dict[str, Any]:
    def size(cpu: float, mem: str, default: bool = False) -> dict[str, Any]:
        choice: dict[str, Any] = {
            "display_name": f"{cpu} CPU",
            "kubespawner_override": {"cpu_guarantee": cpu, "mem_guarantee": mem},
        }
        return {**choice, "default": True} if default else choice

    return {
        "display_name": "CPU",
        "kubespawner_override": override,
        "profile_options": {
            "size": {
                "display_name": "Size",
                "choices": {"s": size(0.5, "1G", default=True), "m": size(2, "4G"), "l": size(4.5, "8G")},
            }
        },
    }


def filtered(profile: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    profile = copy.deepcopy(profile)
    NS["_filter_sizes"](profile, usage)
    return {
        k: (c["display_name"], c.get("default", False))
        for k, c in profile["profile_options"]["size"]["choices"].items()
    }


def test_sizes_shown_are_those_some_usable_node_has_room_for_now() -> None:
    usage = {"n1": usage_entry(2000, 4 * GIB), "n2": usage_entry(4500, 2 * GIB)}
    assert filtered(sized_profile(), usage) == {"s": ("0.5 CPU", True), "m": ("2 CPU", False)}
    # n2 alone has the CPU for l, not the memory; CPU and memory must fit on one node
    assert filtered(sized_profile(), {"n2": usage_entry(4500, 8 * GIB)}) == {
        "s": ("0.5 CPU", True),
        "m": ("2 CPU", False),
        "l": ("4.5 CPU", False),
    }
    # only nodes the profile's pods may use count: a tainted node's room is not the profile's
    tainted = {"n1": usage_entry(16000, 64 * GIB, taints=[{"key": "gpu", "effect": "NoSchedule"}])}
    assert filtered(sized_profile(), tainted) == {"s": ("0.5 CPU - no node has room now", True)}
    assert filtered(sized_profile(tolerations=[{"key": "gpu", "operator": "Exists"}]), tainted) == {
        "s": ("0.5 CPU", True),
        "m": ("2 CPU", False),
        "l": ("4.5 CPU", False),
    }


def test_room_is_free_cpu_and_memory_not_the_nodes_total() -> None:
    assert filtered(sized_profile(), {"n1": usage_entry(1000, 64 * GIB)}) == {"s": ("0.5 CPU", True)}
    profile = sized_profile()
    choices = profile["profile_options"]["size"]["choices"]
    del choices["s"]["kubespawner_override"]["cpu_guarantee"]  # memory only: fits a node without free CPU
    assert filtered(profile, {"n1": usage_entry(0, 2 * GIB)}) == {"s": ("0.5 CPU", True)}
    del choices["s"]["kubespawner_override"]["mem_guarantee"]
    assert filtered(profile, {"n1": usage_entry(0, 0)}) == {"s": ("0.5 CPU", True)}


def test_a_default_size_that_fits_stays_the_only_default() -> None:
    profile = sized_profile()
    choices = profile["profile_options"]["size"]["choices"]
    choices["s"]["kubespawner_override"]["mem_guarantee"] = "16G"
    del choices["s"]["default"]
    choices["l"]["default"] = True
    assert filtered(profile, {"n1": usage_entry(8000, 9 * GIB)}) == {"m": ("2 CPU", False), "l": ("4.5 CPU", True)}


def test_when_the_default_size_has_no_room_the_first_left_is_the_default() -> None:
    profile = sized_profile()
    choices = profile["profile_options"]["size"]["choices"]
    choices["s"]["kubespawner_override"]["mem_guarantee"] = "16G"
    assert filtered(profile, {"n1": usage_entry(8000, 8 * GIB)}) == {"m": ("2 CPU", True), "l": ("4.5 CPU", False)}
    untouched = {"display_name": "GPU", "kubespawner_override": {}}
    NS["_filter_sizes"](untouched, {"n1": usage_entry(0, 0)})
    assert untouched == {"display_name": "GPU", "kubespawner_override": {}}


@pytest.mark.parametrize(
    ("text", "millis", "expected"),
    [
        ("1500m", True, 1500),
        ("1500m", False, 1),
        ("2000m", False, 2),
        ("2", True, 2000),
        ("0.5", True, 500),
        ("1Gi", False, GIB),
        ("1.5k", False, 1500),
        ("2M", False, 2 * 10**6),
        ("1Ei", False, 1024**6),
        (" 3 ", False, 3),
        ("lots", False, 0),
        ("1X", False, 0),
        ("", True, 0),
    ],
)
def test_quantities_on_the_hub_never_fail(text: str, millis: bool, expected: int) -> None:
    assert NS["_quantity"](text, millis=millis) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("4", 4), ("2k", 2000), ("1Ki", 1024), ("3x", 3), ("bad", 0), ("-1", 0), ("1.5", 0)]
)
def test_extended_resource_counts_tolerate_a_unit(text: str, expected: int) -> None:
    assert NS["_count"](text) == expected


def test_a_node_entry_and_its_usage() -> None:
    entry = NS["_node_entry"](
        node("n1", gpus=2, unschedulable=True, taints=[{"key": "gpu", "effect": "NoSchedule"}])
        | {"status": {"allocatable": {"nvidia.com/gpu": "2", "nvidia.com/mig-1g.10gb": "3", "example.com/x": "1"}}}
    )
    assert entry == {
        "ready": False,  # no Ready condition, and cordoned
        "gpus": {"nvidia.com/gpu": 2, "nvidia.com/mig-1g.10gb": 3},
        "labels": {"kubernetes.io/hostname": "n1"},
        "taints": [{"key": "gpu", "effect": "NoSchedule"}],
        "cpu": 0,
        "memory": 0,
    }
    assert NS["_node_entry"](node("n2"))["ready"] is True
    assert NS["_node_entry"](node("n2", unschedulable=True))["ready"] is False
    cache = NS["ClusterCache"]()
    cache.node_event("ADDED", node("n1", gpus=1, taints=[{"key": "t", "effect": "NoExecute"}]))
    hog = pod("u1", "n1", 3)
    hog["spec"]["containers"][0]["resources"]["requests"] = {"cpu": "9", "memory": "40Gi"}
    cache.pod_event("ADDED", hog)
    assert cache.usage() == {
        "n1": {
            "ready": True,
            "resources": {"nvidia.com/gpu": [0, 1]},  # never below 0
            "labels": {"kubernetes.io/hostname": "n1"},
            "taints": [{"key": "t", "effect": "NoExecute"}],
            "cpu": [0, 8000],
            "memory": [0, 32 * GIB],
        }
    }


@pytest.mark.parametrize(
    ("op", "values", "labels", "holds"),
    [
        ("In", ["a", "b"], {"k": "b"}, True),
        ("In", ["a"], {"k": "b"}, False),
        ("In", ["a"], {}, False),
        ("NotIn", ["a"], {}, True),
        ("NotIn", ["a"], {"k": "a"}, False),
        ("NotIn", ["a"], {"k": "b"}, True),
        ("Exists", [], {"k": ""}, True),
        ("Exists", [], {}, False),
        ("DoesNotExist", [], {}, True),
        ("DoesNotExist", [], {"k": "x"}, False),
        ("Gt", ["1"], {"k": "2"}, True),
        ("Gt", ["2"], {"k": "2"}, False),
        ("Lt", ["3"], {"k": "2"}, True),
        ("Lt", ["2"], {"k": "2"}, False),
        ("Gt", ["-5"], {"k": "-4"}, True),
        ("Gt", ["1"], {"k": "two"}, False),
        ("Gt", ["1", "2"], {"k": "3"}, False),
        ("Gt", ["1"], {}, False),
        ("Near", ["a"], {"k": "a"}, False),
    ],
)
def test_node_affinity_expressions_as_the_scheduler_reads_them(
    op: str, values: list[str], labels: dict[str, str], holds: bool
) -> None:
    assert NS["_expression_holds"]({"key": "k", "operator": op, "values": values}, labels) is holds


def test_affinity_terms_are_ored_and_their_expressions_anded() -> None:
    admits = NS["affinity_admits"]
    a = {"key": "a", "operator": "Exists"}
    b = {"key": "b", "operator": "Exists"}
    assert admits(None, {}) and admits([], {})
    assert admits([{"matchExpressions": [a, b]}], {"a": "", "b": ""})
    assert not admits([{"matchExpressions": [a, b]}], {"a": ""})
    assert admits([{"matchExpressions": [b]}, {"matchExpressions": [a]}], {"a": ""})
    assert not admits([{"matchExpressions": []}], {"a": ""}), "an empty term admits nothing"


def node_choice(name: str | None, default: bool = False) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "display_name": name or "Any node",
        "kubespawner_override": {"node_selector": {"kubernetes.io/hostname": name}},
    }
    return {**choice, "default": True} if default else choice


def gpu_usage_of(free: dict[str, tuple[int, int]], ready: tuple[str, ...] = (), labels: Any = None) -> dict[str, Any]:
    return {
        name: {
            "ready": not ready or name in ready,
            "resources": {"nvidia.com/gpu": [f, t]},
            "labels": (labels or {}).get(name, {}),
            "taints": [],
            "cpu": [0, 0],
            "memory": [0, 0],
        }
        for name, (f, t) in free.items()
    }


def test_node_choices_show_free_gpus_and_full_or_down_nodes_go() -> None:
    option = {
        "display_name": "Node",
        "choices": {
            "*": node_choice(None, default=False),
            "n1": node_choice("n1", default=True),
            "n2": node_choice("n2"),
            "n3": node_choice("n3"),
            "n4": node_choice("n4"),
        },
    }
    usage = gpu_usage_of({"n1": (0, 2), "n2": (1, 2), "n3": (2, 2), "n4": (4, 4)}, ready=("n1", "n2", "n3"))
    usage["n3"]["resources"]["nvidia.com/mig-1g.10gb"] = [3, 7]
    assert NS["_annotate_nodes"](option, usage, {"nvidia.com/gpu", "nvidia.com/mig-1g.10gb"})
    assert {k: (c["display_name"], c.get("default", False)) for k, c in option["choices"].items()} == {
        "*": ("Any node - 6 free", True),  # the default (n1) is full: the first choice left is
        "n2": ("n2 - 1/2 free", False),
        "n3": ("n3 - 5/9 free", False),
    }
    middle = {"choices": {"n1": node_choice("n1"), "n2": node_choice("n2"), "n3": node_choice("n3", default=True)}}
    assert NS["_annotate_nodes"](middle, usage, {"nvidia.com/gpu"})
    assert {k: c.get("default", False) for k, c in middle["choices"].items()} == {"n2": False, "n3": True}
    unknown = {"choices": {"n9": node_choice("n9", default=True), "n2": node_choice("n2")}}
    assert NS["_annotate_nodes"](unknown, usage, {"nvidia.com/gpu"})
    assert {k: c.get("default", False) for k, c in unknown["choices"].items()} == {"n2": True}
    gone = {"choices": {"*": node_choice(None, True), "n1": node_choice("n1")}}
    assert not NS["_annotate_nodes"](gone, usage, {"nvidia.com/gpu"}), "no node with a free GPU: no class"


def test_a_class_too_large_to_list_counts_the_nodes_its_name_field_and_affinity_admit() -> None:
    def option() -> dict[str, Any]:
        return {
            "choices": {"*": node_choice(None, True)},
            "unlisted_choice": {"enabled": True, "validation_regex": r"^(?:h-1|h-2|h-3)(?![\s\S])"},
        }

    usage = gpu_usage_of(
        {"h-1": (1, 8), "h-2": (2, 8), "h-3": (4, 8), "h-10": (8, 8), "x": (8, 8)},
        ready=("h-1", "h-2", "h-10", "x"),
        labels={"h-1": {"gpu": "h100"}, "h-2": {"gpu": "a100"}},
    )
    terms = [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100"]}]}]
    opt = option()
    assert NS["_annotate_nodes"](opt, usage, {"nvidia.com/gpu"}, terms)
    assert opt["choices"]["*"]["display_name"] == "Any node - 1 free", "h-1 only: h-2 not admitted, h-3 down"
    opt = option()
    assert NS["_annotate_nodes"](opt, usage, {"nvidia.com/gpu"})
    assert opt["choices"]["*"]["display_name"] == "Any node - 3 free"
    usage["h-1"]["resources"]["nvidia.com/gpu"] = [0, 8]
    assert not NS["_annotate_nodes"](option(), usage, {"nvidia.com/gpu"}, terms)
    usage["h-2"]["resources"] = {"nvidia.com/mig-1g.10gb": [7, 7]}  # no whole GPUs: counts nothing
    assert not NS["_annotate_nodes"](option(), usage, {"nvidia.com/gpu"}), "h-1 full, h-2 has none, h-3 down"
    no_regex = {"choices": {"*": node_choice(None, True)}, "unlisted_choice": {"enabled": True}}
    assert NS["_annotate_nodes"](no_regex, usage, {"nvidia.com/gpu"})
    assert no_regex["choices"]["*"]["display_name"] == "Any node - 16 free", "every ready node: h-10 and x"
    no_field = {"choices": {"*": node_choice(None, True)}, "unlisted_choice": {"enabled": False}}
    assert not NS["_annotate_nodes"](no_field, usage, {"nvidia.com/gpu"})
    assert NS["_compiled"]("") is NS["_compiled"]("") and NS["_compiled"]("").match("anything")


def profile(slug: str, gpus: bool, default: bool = False, **options: Any) -> dict[str, Any]:
    ov: dict[str, Any] = {"extra_resource_limits": {"nvidia.com/gpu": "1" if gpus else None}}
    out: dict[str, Any] = {"display_name": slug, "slug": slug, "kubespawner_override": ov}
    if default:
        out["default"] = True
    if options:
        out["profile_options"] = options
    return out


def test_availability_names_free_gpus_drops_empty_classes_and_keeps_a_default() -> None:
    h100 = [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100"]}]}]
    auto = profile("gpu", True)
    auto["kubespawner_override"]["node_affinity_required"] = h100
    full_class = profile("a100", True, default=True, node={"choices": {"n2": node_choice("n2", True)}})
    sized = profile(
        "cpu",
        False,
        size={"choices": {"s": {"display_name": "S", "default": True, "kubespawner_override": {"cpu_guarantee": 99}}}},
        node={"choices": {"n1": node_choice("n1", True)}},
    )
    profiles = [full_class, auto, sized]
    before = copy.deepcopy(profiles)
    usage = gpu_usage_of({"n1": (2, 2), "n2": (0, 1), "n3": (3, 4), "n4": (5, 8)}, ready=("n1", "n2", "n3"))
    for name in ("n1", "n4"):
        usage[name]["labels"] = {"gpu": "h100"}
    out = NS["apply_availability"](profiles, usage, ["users"], [])
    assert profiles == before, "the deploy-time list is never changed"
    assert [(p["slug"], p["display_name"], p.get("default", False)) for p in out] == [
        ("gpu", "gpu - 2 GPU(s) free now", True),  # n1 only: n3 is no H100, n4 is down
        ("cpu", "cpu", False),
    ]
    assert out[1]["profile_options"]["size"]["choices"]["s"]["display_name"] == "S - no node has room now"
    assert NS["apply_availability"]([full_class], usage, [], []) == []
    assert NS["apply_availability"]([auto, sized], None, ["students"], ["gpu-users"]) == [{**sized, "default": True}], (
        "GPU profiles only for the GPU groups; without usage nothing else changes"
    )


def test_the_callable_serves_the_deploy_time_list_when_the_api_is_slow_or_failing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    static = [profile("cpu", False, default=True), profile("g", True, node={"choices": {"n1": node_choice("n1")}})]
    usage_nodes = [node("n1", gpus=2)]

    async def slow() -> Any:
        await asyncio.sleep(1)
        return usage_nodes, []

    async def broken() -> Any:
        raise RuntimeError("403 Forbidden")

    user = types.SimpleNamespace(name="alice")  # no groups attribute: no groups
    spawner = types.SimpleNamespace(user=user, log=logging.getLogger("test-callable"))
    timeout = NS["API_TIMEOUT_SECONDS"]
    NS["API_TIMEOUT_SECONDS"] = 0.05
    try:
        with caplog.at_level(logging.INFO, logger="test-callable"):
            assert asyncio.run(NS["make_profile_list"](static, fetch=slow)(spawner)) == static
            assert asyncio.run(NS["make_profile_list"](static, fetch=broken)(spawner)) == static
    finally:
        NS["API_TIMEOUT_SECONDS"] = timeout
    assert [r.getMessage() for r in caplog.records] == [
        "GPU availability unavailable, using deploy-time profiles: TimeoutError()",
        "GPU availability unavailable, using deploy-time profiles: RuntimeError('403 Forbidden')",
    ]


def test_the_callable_starts_the_watch_with_the_spawners_log(caplog: pytest.LogCaptureFixture) -> None:
    static = [profile("cpu", False, default=True)]
    cache = NS["ClusterCache"]()
    started: list[Any] = []

    async def fake_watch(kind: str, log: Any) -> None:
        started.append((kind, log))

    cache._watch = fake_watch
    log = logging.getLogger("test-watch-log")
    spawner = types.SimpleNamespace(user=types.SimpleNamespace(groups=[]), log=log)

    async def go() -> Any:
        result = await NS["make_profile_list"](static, cache=cache)(spawner)
        await cache.task
        return result

    with caplog.at_level(logging.INFO, logger="test-watch-log"):
        assert asyncio.run(go()) == static
    assert started == [("nodes", log), ("pods", log)]
    assert [r.getMessage() for r in caplog.records] == [
        "GPU availability: no per-node totals yet; deploy-time profiles"
    ]
    assert NS["make_profile_list"](static, live_availability=False).cache is None


def test_a_large_class_counts_only_nodes_its_affinity_admits_and_keeps_its_default() -> None:
    h100 = [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100"]}]}]
    field = {"enabled": True, "validation_regex": r"^(?:h-1|h-2)(?![\s\S])"}
    big = profile(
        "h100", True, default=True, node={"choices": {"*": node_choice(None, True)}, "unlisted_choice": field}
    )
    big["kubespawner_override"]["node_affinity_required"] = h100
    cpu = profile("cpu", False)
    labels = {"h-1": {"gpu": "h100"}, "h-2": {"gpu": "a100"}}
    full = gpu_usage_of({"h-1": (0, 8), "h-2": (3, 8)}, labels=labels)
    assert [(p["slug"], p.get("default", False)) for p in NS["apply_availability"]([cpu, big], full, [], [])] == [
        ("cpu", True)
    ], "h-2's free GPUs are not the class's: its affinity wants an H100"
    free = gpu_usage_of({"h-1": (2, 8), "h-2": (3, 8)}, labels=labels)
    out = NS["apply_availability"]([cpu, big], free, [], [])
    assert [(p["slug"], p.get("default", False)) for p in out] == [("cpu", False), ("h100", True)]
    assert out[1]["profile_options"]["node"]["choices"]["*"]["display_name"] == "Any node - 2 free"


def test_the_initial_list_is_taken_in_page_by_page() -> None:
    """A 150,000-pod list arrives in pages of LIST_PAGE; each page goes into the cache before the next is asked
    for, with the continue token, and the watch starts from the list's resourceVersion."""
    import asyncio
    import json

    pages = {
        None: {"items": [pod("u1", "n1", 1)], "metadata": {"continue": "t1", "resourceVersion": "9"}},
        "t1": {"items": [pod("u2", "n1", 2)], "metadata": {"continue": "t2", "resourceVersion": "9"}},
        "t2": {"items": [pod("u3", "n1", 0)], "metadata": {"resourceVersion": "9"}},
    }
    asked: list[tuple[Any, int]] = []
    cache = NS["ClusterCache"]()
    cache.node_event("ADDED", node("n1"))

    async def method(_preload_content: bool, limit: int, _continue: str | None = None) -> Any:
        asked.append((_continue, len(cache.pods)))
        body = json.dumps(pages[_continue]).encode()
        return types.SimpleNamespace(read=lambda: asyncio.sleep(0, body))

    version = asyncio.run(cache._list_pages(method, cache.pod_event))
    assert version == "9"
    assert asked == [(None, 0), ("t1", 1), ("t2", 2)], "each page in the cache before the next request"
    assert cache.usage()["n1"]["resources"]["nvidia.com/gpu"] == [1, 4]
