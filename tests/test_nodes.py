"""Node parsing: typed facts from real-looking documents, determinism, and no crash on bad data."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.cli.plan import render_table, render_values
from components.core.config_load import parse_config
from components.core.nodes import NodeDataError, parse_nodes, parse_quantity
from components.core.profiles import build_profiles
from components.core.values import build_values, values_from_plan
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS, node, node_list

CFG = parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}})


def render(document: Any) -> str:
    plan = build_profiles(CFG, parse_nodes(document), GIVEN_REFS)
    return render_values(values_from_plan(CFG, plan, GIVEN_REFS)) + render_table(CFG, plan)


def test_gpu_facts() -> None:
    inv = {n.name: n for n in parse_nodes(SCENARIOS["mixed"]).nodes}
    gpu = inv["gpu-node-2"].gpu
    assert gpu is not None
    assert (gpu.allocatable, gpu.count, gpu.product, gpu.memory_mib) == (2, 2, "NVIDIA-GeForce-RTX-4090", 24564)
    assert inv["cp-1"].control_plane and inv["cp-1"].gpu is None
    assert [n.name for n in parse_nodes(SCENARIOS["mixed"]).nodes] == sorted(inv)

    mig = parse_nodes(SCENARIOS["mig"]).nodes[0].gpu
    assert mig is not None and mig.allocatable == 0
    assert mig.mig_resources == (("nvidia.com/mig-1g.10gb", 4), ("nvidia.com/mig-3g.40gb", 1))
    ts = parse_nodes(SCENARIOS["timesliced"]).nodes[0].gpu
    assert ts is not None and ts.shared and ts.allocatable == 4 and ts.max_per_user == 1
    plain = parse_nodes(SCENARIOS["unlabelled"]).nodes[0].gpu
    assert plain is not None and plain.product is None and plain.count == 2, "allocatable without labels counts"
    states = {n.name: (n.ready, n.schedulable) for n in parse_nodes(SCENARIOS["unavailable"]).nodes}
    assert states["gpu-down"] == (False, True) and states["gpu-cordoned"] == (True, False)


def test_quantities() -> None:
    assert parse_quantity("131830540Ki") == 131830540 * 1024
    assert parse_quantity("3500m", millis=True) == 3500
    assert parse_quantity("2", millis=True) == 2000
    with pytest.raises(ValueError):
        parse_quantity("lots")


def node_lines(table: str) -> dict[str, str]:
    lines = table.split("Nodes:\n", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    return {line.split()[0]: line for line in lines if not line.startswith(" ")}


def test_table_lists_every_gpu_node_with_product_memory_and_count() -> None:
    plan = build_profiles(CFG, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)
    nodes = node_lines(render_table(CFG, plan))
    assert "1 x NVIDIA GeForce RTX 3090, 24 GiB  yes" in nodes["gpu-node-1"]
    assert "2 x NVIDIA GeForce RTX 4090, 24 GiB  yes" in nodes["gpu-node-2"]
    assert nodes["gpu-node-2"].count("gpu-node-2") == 1, "the GPUS column does not repeat the node name"
    down = render_table(CFG, build_profiles(CFG, parse_nodes(SCENARIOS["unavailable"]), GIVEN_REFS))
    assert "NotReady" in node_lines(down)["gpu-down"] and "cordoned (unschedulable)" in node_lines(down)["gpu-cordoned"]
    none = render_table(CFG, build_profiles(CFG, parse_nodes(SCENARIOS["nogpu"]), GIVEN_REFS))
    assert "no GPU profiles" in none


def test_table_says_where_cpu_profiles_run_and_marks_the_control_plane() -> None:
    nodes = node_lines(render_table(CFG, build_profiles(CFG, parse_nodes(SCENARIOS["homelab"]), GIVEN_REFS)))
    assert nodes["cpu-1"].split()[1:] == ["-", "-", "-", "CPU", "profiles"]
    assert nodes["cp-1"].split()[1] == "control-plane"
    assert "no user pods" in render_table(CFG, build_profiles(CFG, parse_nodes(SCENARIOS["homelab"]), GIVEN_REFS))
    assert nodes["gpu-ws-off"].split()[-2:] == ["no", "NotReady"]
    assert nodes["gpu-4090"].split()[-5:] == ["yes", "GPU", "choices", "(driver", "580.95.05)"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_table_fits_120_columns_and_wide_shows_everything(scenario: str) -> None:
    plan = build_profiles(CFG, parse_nodes(SCENARIOS[scenario]), GIVEN_REFS)
    table = render_table(CFG, plan)
    assert max(len(line) for line in table.splitlines()) <= 120
    assert "CPU and MEMORY: per server, guarantee-limit where they differ" in table
    wide = render_table(CFG, plan, wide=True)
    for p in plan.profiles:
        assert p["display_name"] in wide and p["slug"] in wide
        image = p["kubespawner_override"].get("image")
        assert image is None or image in wide, "full image references"
    if any("node" in p.get("profile_options", {}) for p in plan.profiles):
        assert "node (any, or " in table, "the node choice says it includes any node"


@pytest.mark.parametrize("bad", ["", "{", "[]", '{"items": {}}', '{"kind": "NodeList"}', "null", b"\xff\xfe"])
def test_unusable_documents_are_clear_errors(bad: Any) -> None:
    with pytest.raises(NodeDataError):
        parse_nodes(bad)


@pytest.mark.no_mutation  # slow: faster tests cover the same code (scripts/mutation.sh)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SCENARIOS)), st.integers(0, 2**32))
def test_order_of_nodes_and_labels_never_changes_output(scenario: str, seed: int) -> None:
    rnd = random.Random(seed)
    doc = copy.deepcopy(SCENARIOS[scenario])
    expected = render(doc)
    # the values as the release gets them, in their own key order (a sorted rendering would hide a
    # node list that follows the API's order)
    expected_values = json.dumps(build_values(CFG, parse_nodes(doc), GIVEN_REFS))
    rnd.shuffle(doc["items"])
    for item in doc["items"]:
        for key in ("labels", "annotations"):
            pairs = list(item["metadata"].get(key, {}).items())
            rnd.shuffle(pairs)
            item["metadata"][key] = dict(pairs)
        alloc = list(item["status"]["allocatable"].items())
        rnd.shuffle(alloc)
        item["status"]["allocatable"] = dict(alloc)
        rnd.shuffle(item["status"]["conditions"])
    assert render(json.dumps(doc)) == expected
    assert json.dumps(build_values(CFG, parse_nodes(json.dumps(doc)), GIVEN_REFS)) == expected_values


@pytest.mark.parametrize("first", [0, 1])
def test_duplicate_node_names_keep_one_entry_whatever_the_order(first: int) -> None:
    """The rule (nodes.py): one entry per name, the same one in any API order, the other reported."""
    ready = node("gpu-x", gpus=2)
    down = node("gpu-x", gpus=1, ready=False)
    items = [ready, down] if first == 0 else [down, ready]
    inv = parse_nodes(node_list(*items))
    assert len(inv.nodes) == 1
    [dropped] = inv.skipped
    assert dropped.name == "gpu-x" and dropped.reason == "duplicate node name; one entry kept"
    other = parse_nodes(node_list(*reversed(items)))
    assert other.nodes == inv.nodes and other.skipped == inv.skipped


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _mutate(base: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    target = doc
    for key in path[:-1]:
        target = target.setdefault(key, {}) if isinstance(target, dict) else target
    if isinstance(target, dict):
        target[path[-1]] = value
    return doc


_PATHS = [
    ["metadata"],
    ["metadata", "name"],
    ["metadata", "labels"],
    ["metadata", "labels", "nvidia.com/gpu.count"],
    ["metadata", "labels", "nvidia.com/gpu.memory"],
    ["metadata", "labels", "nvidia.com/gpu.replicas"],
    ["spec"],
    ["spec", "taints"],
    ["spec", "unschedulable"],
    ["status"],
    ["status", "allocatable"],
    ["status", "allocatable", "nvidia.com/gpu"],
    ["status", "allocatable", "nvidia.com/mig-1g.10gb"],
    ["status", "conditions"],
    ["status", "allocatable", "memory"],
]


@pytest.mark.no_mutation  # slow: faster tests cover the same code (scripts/mutation.sh)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_PATHS), _json, st.lists(_json, max_size=3))
def test_malformed_nodes_never_crash(path: list[str], value: Any, junk: list[Any]) -> None:
    good = SCENARIOS["mixed"]["items"][3]
    doc = {"items": [_mutate(good, path, value), *junk, SCENARIOS["mixed"]["items"][1]]}
    inventory = parse_nodes(doc)  # must not raise: bad nodes are skipped with a reason
    names = {n.name for n in inventory.nodes}
    assert "cpu-1" in names
    assert len(inventory.nodes) + len(inventory.skipped) == len(doc["items"]), "every entry is kept or explained"
    for skipped in inventory.skipped:
        assert skipped.reason
    render(doc)  # and profiles, values and table still build


def test_fixture_files_match_their_generator() -> None:
    """The JSON node lists the plan tests and the README use are what nodefactory.py generates."""
    folder = Path(__file__).parent / "fixtures" / "nodes"
    assert sorted(p.stem for p in folder.glob("*.json")) == sorted(SCENARIOS)
    for name, document in SCENARIOS.items():
        assert json.loads((folder / f"{name}.json").read_text()) == document, name


@pytest.mark.no_mutation  # mutmut's copy of live_profiles.py carries trampolines YAML cannot show as a block
def test_values_show_multiline_strings_as_yaml_blocks() -> None:
    values = values_from_plan(CFG, build_profiles(CFG, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS), GIVEN_REFS)
    text = render_values(values)
    assert "20-live-profiles: |" in text, "the hub-side code reads as code"
    assert "\\n" not in text.split("20-live-profiles: |", 1)[1].split("\n    ", 2)[1]
    assert yaml.safe_load(text) == values


def test_equal_tolerations_match_key_value_and_effect() -> None:
    from components.core.nodes import blocking_taints

    [n] = parse_nodes(
        node_list(node("g", gpus=1, taints=[{"key": "dedicated", "value": "ml-team", "effect": "NoSchedule"}]))
    ).nodes
    equal = {"key": "dedicated", "operator": "Equal", "value": "ml-team", "effect": "NoSchedule"}
    assert blocking_taints(n, [equal]) == []
    assert blocking_taints(n, [{**equal, "value": "other-team"}]) == ["dedicated=ml-team:NoSchedule"]
    assert blocking_taints(n, [{**equal, "effect": "NoExecute"}]) == ["dedicated=ml-team:NoSchedule"]
    assert blocking_taints(n, [{"key": "dedicated", "value": "ml-team"}]) == [], "Equal is the default operator"
    assert blocking_taints(n, [{"operator": "Exists"}]) == [], "Exists without a key tolerates everything"


def test_condition_taints_on_a_ready_node_do_not_exclude_it() -> None:
    """node.kubernetes.io/* taints come and go with conditions (memory pressure, ...); NotReady and cordoned
    are reported as such. A transient condition does not take a Ready node out of the profiles."""
    from components.core.nodes import blocking_taints

    doc = node_list(node("g", gpus=1, taints=[{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]))
    [n] = parse_nodes(doc).nodes
    assert n.ready and blocking_taints(n, []) == []
    plan = build_profiles(CFG, parse_nodes(doc), GIVEN_REFS)
    assert plan.gpu_nodes == ["g"]
