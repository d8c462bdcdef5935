"""Server sizes from node capacity: pure functions, the profiles they produce, the pods KubeSpawner makes
from every size, where the scheduler (tests/scheduling.py) could put them, and the spawn-time filter."""

from __future__ import annotations

import asyncio
import copy
import itertools
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from components.cli.plan import render_table
from components.core.config import ConfigError
from components.core.config_load import parse_config
from components.core.nodes import parse_nodes
from components.core.profile_options import ANY_NODE
from components.core.profiles import build_profiles
from components.core.sizing import Budget, Size, fraction_sizes, gpu_size, memory_spec, nice_floor
from components.core.values import build_values
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS, many, node, node_list
from tests.scheduling import nodes_for, why_not
from tests.spawner import make_spawner, pods

GIB = 1024**3


def config(**sizing: Any) -> Any:
    # every offered size becomes a pod: the per-user GPU quota (tests/test_gpu_quota.py) is off
    profiles: dict[str, Any] = {"maxGpusPerUser": 0, **({"sizing": sizing} if sizing else {})}
    return parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}, "profiles": profiles})


def profile_list(doc: dict[str, Any], **sizing: Any) -> list[dict[str, Any]]:
    return build_values(config(**sizing), parse_nodes(doc), GIVEN_REFS)["singleuser"]["profileList"]


# ---- pure functions ----


def test_nice_units_round_down() -> None:
    assert [nice_floor(x) for x in (0.2, 0.3, 0.99, 1.4, 1.5, 2.9, 5.9, 7.5, 30.35)] == [
        None,
        0.25,
        0.5,
        1.0,
        1.5,
        2.0,
        4.0,
        6.0,
        24.0,
    ]
    assert memory_spec(16) == "16G" and memory_spec(1.5) == "1536M"


budgets_st = st.lists(
    st.builds(
        Budget,
        name=st.text("abcdef", min_size=1, max_size=4),
        cpu=st.floats(0.25, 256),
        memory_gib=st.floats(1, 2048),
    ),
    min_size=1,
    max_size=12,
)


@given(
    budgets=budgets_st,
    fractions=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=6),
    max_share=st.floats(0.05, 1.0),
)
# found by Hypothesis: a budget a hair under a unit must not round up to it
@example(budgets=[Budget("a", 1.0, 1.9999999999999716)], fractions=[1.0], max_share=1.0)
def test_cpu_sizes_are_monotonic_and_fit_a_node(
    budgets: list[Budget], fractions: list[float], max_share: float
) -> None:
    sizes, _why = fraction_sizes(budgets, fractions, max_share)
    assert sizes == sorted(set(sizes))
    for a, b in itertools.pairwise(sizes):
        assert a.cpu <= b.cpu and a.memory_gib <= b.memory_gib, "a bigger size never has less of anything"
    biggest_cpu = max(b.cpu for b in budgets)
    biggest_mem = max(b.memory_gib for b in budgets)
    for s in sizes:
        assert any(s.cpu <= b.cpu and s.memory_gib <= b.memory_gib for b in budgets)
        assert s.cpu <= max_share * biggest_cpu + 1e-9 and s.memory_gib <= max_share * biggest_mem + 1e-9
        assert s.cpu >= 0.25 and s.memory_gib >= 1


@given(budgets=budgets_st, gpus_per_node=st.integers(1, 8), boost=st.sampled_from([1.0, 2.0]))
def test_gpu_sizes_grow_with_gpus_and_n_servers_fit_one_node(
    budgets: list[Budget], gpus_per_node: int, boost: float
) -> None:
    pairs = [(b, gpus_per_node) for b in budgets]
    previous: Size | None = None
    for k in range(1, gpus_per_node + 1):
        size = gpu_size(pairs, k, boost)
        if size is None:
            continue
        if previous is not None:
            assert size.cpu >= previous.cpu and size.memory_gib >= previous.memory_gib
        previous = size
        for b, n in pairs:
            # n // k servers of k GPUs each fit the node together (boost 1): no GPU idles for lack of memory
            together = (n // k) if boost == 1.0 else 1
            assert together * size.cpu <= b.cpu + 1e-6 and together * size.memory_gib <= b.memory_gib + 1e-6


# ---- profiles ----


def test_cpu_profiles_offer_sizes_of_the_typical_node() -> None:
    profiles = profile_list(SCENARIOS["mixed"])
    cpu = next(p for p in profiles if p["slug"] == "cpu")
    choices = cpu["profile_options"]["size"]["choices"]
    # nodes of 32 CPU / 125.7 GiB, minus 1 CPU and 2 GiB: 1/16 .. 1/2 of 31 CPU / 123.7 GiB
    assert [c["display_name"] for c in choices.values()] == [
        "1.5 CPU · 6 GiB",
        "3 CPU · 12 GiB",
        "6 CPU · 24 GiB",
        "12 CPU · 48 GiB",
    ]
    assert [k for k, c in choices.items() if c["default"]] == ["1.5cpu-6gib"]
    assert choices["6cpu-24gib"]["kubespawner_override"] == {
        "cpu_guarantee": 6.0,
        "cpu_limit": 6.0,
        "mem_guarantee": "24G",
        "mem_limit": "24G",
    }
    agent = next(p for p in profiles if p["slug"] == "agent-dev")
    assert agent["profile_options"]["size"] == cpu["profile_options"]["size"]


def test_gpu_choices_bring_their_share_of_the_node() -> None:
    profiles = profile_list(SCENARIOS["mixed"])
    rtx4090 = next(p for p in profiles if "4090" in p["slug"])
    gpus = rtx4090["profile_options"]["gpus"]["choices"]
    assert gpus["1"]["display_name"] == "1 GPU · 12 CPU · 48 GiB"
    assert gpus["2"]["display_name"] == "2 GPUs · 24 CPU · 96 GiB"
    assert gpus["2"]["kubespawner_override"]["mem_limit"] == "96G"
    auto = next(p for p in profiles if p["slug"] == "gpu")["kubespawner_override"]
    tuning = next(p for p in profiles if p["slug"] == "fine-tuning")["kubespawner_override"]
    # the 1-GPU node (RTX 3090) gives its whole budget, the 2-GPU nodes half: auto-select fits both
    assert (auto["cpu_limit"], auto["mem_limit"]) == (12.0, "48G")
    assert (tuning["cpu_limit"], tuning["mem_limit"]) == (24.0, "96G"), "fine-tuning: twice the per-GPU share"


def test_guarantee_ratio_and_sizing_off() -> None:
    profiles = profile_list(SCENARIOS["mixed"], guaranteeRatio=0.5)
    cpu = next(p for p in profiles if p["slug"] == "cpu")
    ov = cpu["profile_options"]["size"]["choices"]["3cpu-12gib"]["kubespawner_override"]
    assert ov == {"cpu_guarantee": 1.5, "cpu_limit": 3.0, "mem_guarantee": "6G", "mem_limit": "12G"}
    fixed = profile_list(SCENARIOS["mixed"], enabled=False)
    cpu = next(p for p in fixed if p["slug"] == "cpu")
    assert "size" not in cpu["profile_options"]
    assert (cpu["kubespawner_override"]["cpu_guarantee"], cpu["kubespawner_override"]["mem_limit"]) == (0.5, "8G")
    rtx = next(p for p in fixed if "4090" in p["slug"])
    assert rtx["profile_options"]["gpus"]["choices"]["2"]["kubespawner_override"]["mem_limit"] == "32G"


def test_small_nodes_get_small_sizes_and_the_plan_says_why_one_is_missing() -> None:
    doc = node_list(node("tiny", cpu="4", memory="16Gi"), node("gpu", gpus=1, cpu="8", memory="16Gi"))
    plan = build_profiles(config(), parse_nodes(doc), GIVEN_REFS)
    cpu = next(p for p in plan.profiles if p["slug"] == "cpu")
    labels = [c["display_name"] for c in cpu["profile_options"]["size"]["choices"].values()]
    # the typical node is "tiny" (3 CPU / 14 GiB after the reserve): 1/8, 1/4, 1/2 of it
    assert labels == ["0.25 CPU · 1.5 GiB", "0.5 CPU · 3 GiB", "1.5 CPU · 6 GiB"]
    # 1/16 of it is 0.19 CPU: left out, and the plan says so
    assert any(n.startswith("size 0.0625 of a node left out: below 0.25 CPU or 1 GiB") for n in plan.notes)
    table = render_table(config(), plan)
    assert "size (0.25 CPU · 1.5 GiB to 1.5 CPU · 6 GiB, 3 steps)" in table


def test_nodes_without_capacity_fall_back_to_fixed_sizes() -> None:
    doc = node_list(node("cpu-1"))
    del doc["items"][0]["status"]["allocatable"]["memory"]
    plan = build_profiles(config(), parse_nodes(doc), GIVEN_REFS)
    cpu = next(p for p in plan.profiles if p["slug"] == "cpu")
    assert "size" not in cpu["profile_options"]
    assert cpu["kubespawner_override"]["cpu_limit"] == 2
    assert any("fixed profiles.cpu resources" in n for n in plan.notes)


@pytest.mark.parametrize(
    ("sizing", "key"),
    [
        ({"fractions": [0, 0.5]}, "profiles.sizing.fractions"),
        ({"fractions": []}, "profiles.sizing.fractions"),
        ({"maxShare": 1.5}, "profiles.sizing.maxShare"),
        ({"guaranteeRatio": 0}, "profiles.sizing.guaranteeRatio"),
        ({"reserveCpu": -1}, "profiles.sizing.reserveCpu"),
        ({"reserveMemory": "lots"}, "profiles.sizing.reserveMemory"),
        ({"fractionz": [0.5]}, "profiles.sizing.fractionz"),
    ],
)
def test_bad_sizing_config_names_the_key(sizing: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(**sizing)
    assert key in str(err.value)


# ---- every size of every profile, as KubeSpawner pods, placed by the scheduler model ----


def _size_options(profile: dict[str, Any]) -> list[dict[str, Any]]:
    out = [{"profile": profile["slug"]}]
    for name in ("size", "gpus"):
        for choice in profile.get("profile_options", {}).get(name, {}).get("choices", {}):
            out.append({"profile": profile["slug"], name: choice})
    nodes = [n for n in profile.get("profile_options", {}).get("node", {}).get("choices", {}) if n != ANY_NODE]
    gpus = list(profile.get("profile_options", {}).get("gpus", {}).get("choices", {}))
    for n in nodes[:1] + nodes[-1:]:
        out.append({"profile": profile["slug"], "node": n, "gpus": gpus[-1]} if gpus else {"profile": profile["slug"]})
    return out


@pytest.mark.parametrize(
    "scenario",
    # the large scenarios are left out of mutation testing (scripts/mutation.sh): slow, same code as the others
    ["homelab", "mixed", *(pytest.param(s, marks=pytest.mark.no_mutation) for s in ("large-300", "large-1000"))],
)
def test_every_size_fits_a_node_the_profile_targets(scenario: str) -> None:
    doc = many(1000, gpu_fraction=0.3) if scenario == "large-1000" else SCENARIOS[scenario]
    values = build_values(config(), parse_nodes(doc), GIVEN_REFS)
    options = [o for p in values["singleuser"]["profileList"] for o in _size_options(p)]
    for opts, pod in zip(options, pods(values, options), strict=True):
        fits = nodes_for(pod, doc["items"])
        assert fits, f"{scenario} {opts}: the pod fits no node"
        if opts.get("node"):
            assert fits == [opts["node"]], (
                f"{opts}: {why_not(pod, {n['metadata']['name']: n for n in doc['items']}[opts['node']])}"
            )


def test_scheduler_model_rejects_a_pod_too_big_for_every_node() -> None:
    """The check above must be able to fail: a size above every node's allocatable fits nowhere."""
    values = build_values(config(), parse_nodes(SCENARIOS["homelab"]), GIVEN_REFS)
    [pod] = pods(values, [{"profile": "cpu"}])
    pod = copy.deepcopy(pod)
    pod["spec"]["containers"][0]["resources"]["requests"]["memory"] = str(1024 * GIB)
    assert nodes_for(pod, SCENARIOS["homelab"]["items"]) == []


# ---- spawn time: sizes no node has room for are hidden ----


def test_live_filter_hides_sizes_without_room_now() -> None:
    from tests.test_live_profiles import hub_namespace

    values = build_values(config(), parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)
    ns = hub_namespace(values)
    nodes = copy.deepcopy(SCENARIOS["mixed"]["items"])

    def hog(node_name: str, cpu: str, memory: str) -> dict[str, Any]:
        return {
            "spec": {
                "nodeName": node_name,
                "containers": [{"resources": {"requests": {"cpu": cpu, "memory": memory}}}],
            },
            "status": {"phase": "Running"},
        }

    # every node CPU servers can use keeps less than 24 GiB free: the two largest sizes disappear
    pods_now = [hog(n["metadata"]["name"], "8", "110Gi") for n in nodes]

    async def fetch() -> tuple[list[Any], list[Any]]:
        return nodes, pods_now

    async def go() -> Any:
        return await ns["make_profile_list"](values["singleuser"]["profileList"], fetch=fetch)(make_spawner(values))

    profiles = asyncio.run(go())
    cpu = next(p for p in profiles if p["slug"] == "cpu")
    assert list(cpu["profile_options"]["size"]["choices"]) == ["1.5cpu-6gib", "3cpu-12gib"]

    pods_now = [hog(n["metadata"]["name"], "31", "120Gi") for n in nodes]
    profiles = asyncio.run(go())
    cpu = next(p for p in profiles if p["slug"] == "cpu")
    [only] = cpu["profile_options"]["size"]["choices"].values()
    assert only["display_name"].endswith("no node has room now") and only["default"]
