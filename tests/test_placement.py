"""Pods land only where they can run: platforms, renamed and MPS sharing, unhealthy GPUs, hostile node data.

Every profile and choice of every node fixture becomes a KubeSpawner 7.0.0 pod; the scheduler model of
tests/scheduling.py says where each could land, and every such node must run its image (OS, architecture,
driver) and, for GPU pods, hold the GPUs requested.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cli.plan import render_table
from components.core.config_load import parse_config
from components.core.image_specs import cuda_variants, gpu_images, image_specs, platform_problem, variant_for_driver
from components.core.nodes import SHARED_GPU_RESOURCE, parse_nodes
from components.core.prepull_spec import prepull_daemonsets
from components.core.profile_options import ANY_NODE
from components.core.profiles import build_profiles
from components.core.storage_spec import verification_nodes
from components.core.values import build_values, values_size_warning
from tests.conftest import BASE_CONFIG, GIVEN_REFS, plan_cli
from tests.fixtures.nodefactory import SCENARIOS, many, node, node_list
from tests.scheduling import nodes_for
from tests.spawner import pods

# every offered choice becomes a pod: the per-user GPU quota (tests/test_gpu_quota.py) is off
CFG = parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}, "profiles": {"maxGpusPerUser": 0}})
GPU_IMAGES = {GIVEN_REFS[n] for n in gpu_images(image_specs())}
GPU_KEYS = ("nvidia.com/gpu", SHARED_GPU_RESOURCE)


def _options(profile: dict[str, Any]) -> list[dict[str, Any]]:
    out = [{"profile": profile["slug"]}]
    for name, option in profile.get("profile_options", {}).items():
        choices = list(option.get("choices", {}))
        if name == "node":
            choices = [c for c in choices if c == ANY_NODE] + [c for c in choices if c != ANY_NODE][:3]
        out += [{"profile": profile["slug"], name: c} for c in choices]
    return out


def _labels(doc: dict[str, Any]) -> dict[str, str]:
    return doc["metadata"]["labels"]


def _driver(doc: dict[str, Any]) -> int | None:
    labels = _labels(doc)
    for key in ("nvidia.com/cuda.driver-version.major", "nvidia.com/cuda.driver.major"):
        if key in labels:
            return int(labels[key])
    return None


@pytest.mark.parametrize(
    "scenario",
    # the 300-node scenario is left out of mutation testing (scripts/mutation.sh): slow, and the smaller ones
    # reach the same code
    [pytest.param(s, marks=pytest.mark.no_mutation) if s.startswith("large") else s for s in sorted(SCENARIOS)],
)
def test_every_pod_lands_only_where_its_image_runs(scenario: str) -> None:
    doc = SCENARIOS[scenario]
    inventory = parse_nodes(doc)
    values = build_values(CFG, inventory, GIVEN_REFS)
    readable = {n.name for n in inventory.nodes}
    options = [o for p in values["singleuser"]["profileList"] for o in _options(p)]
    cpu_capable = [
        n
        for n in inventory.nodes
        if n.ready and n.schedulable and platform_problem(n.os, n.arch) is None and not n.taints
    ]
    by_name = {d["metadata"]["name"]: d for d in doc["items"]}
    for opts, pod in zip(options, pods(values, options), strict=True):
        container = pod["spec"]["containers"][0]
        limits = container["resources"].get("limits", {})
        gpu_request = {k: v for k, v in limits.items() if k.startswith("nvidia.com/")}
        fits = nodes_for(pod, doc["items"])
        if gpu_request or cpu_capable:
            assert fits, f"{scenario} {opts}: fits no node"
        for name in fits:
            assert name in readable, f"{scenario} {opts}: could land on {name}, whose data was unreadable"
            labels = _labels(by_name[name])
            assert platform_problem(labels.get("kubernetes.io/os"), labels.get("kubernetes.io/arch")) is None, (
                f"{scenario} {opts}: {container['image']} could land on {name} ({labels.get('kubernetes.io/arch')})"
            )
            if container["image"] in GPU_IMAGES:
                assert variant_for_driver(_driver(by_name[name]), cuda_variants()) is not None
            allocatable = by_name[name]["status"]["allocatable"]
            for resource, count in gpu_request.items():
                assert int(allocatable.get(resource, "0")) >= int(count), f"{opts}: {name} lacks {resource}"


def test_other_platforms_are_left_out_with_a_reason() -> None:
    plan = build_profiles(CFG, parse_nodes(SCENARIOS["platforms"]), GIVEN_REFS)
    rows = {r.name: r for r in plan.nodes}
    assert not rows["gh200"].included
    assert rows["gh200"].reason == "linux/arm64 node: the images are built for linux/amd64 only"
    assert rows["win-1"].reason.startswith("windows/amd64 node") and rows["win-1"].reason.endswith("no user pods")
    assert plan.gpu_nodes == ["gpu-1"]
    tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert verification_nodes(parse_nodes(SCENARIOS["platforms"]), tolerations) == ["cpu-1", "gpu-1"]


def test_prepullers_skip_other_platforms() -> None:
    tol = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    for ds in prepull_daemonsets(GIVEN_REFS, gpu_images(), "jhub", None, tol, None):
        placed = nodes_for(ds["spec"]["template"], SCENARIOS["platforms"]["items"])
        assert "gh200" not in placed and "win-1" not in placed
        assert "gpu-1" in placed


def test_renamed_shared_gpus_are_requested_by_their_name() -> None:
    plan = build_profiles(CFG, parse_nodes(SCENARIOS["sharing"]), GIVEN_REFS)
    t4 = next(p for p in plan.profiles if "tesla-t4" in p["slug"])
    assert t4["display_name"] == "Tesla T4 SHARED, 15 GiB (up to 1 per server, time-sliced)"
    [choice] = t4["profile_options"]["gpus"]["choices"].values()
    assert choice["kubespawner_override"]["extra_resource_limits"] == {SHARED_GPU_RESOURCE: "1"}
    # auto-select asks for nvidia.com/gpu: the renamed-only node is not among its nodes
    auto = next(p for p in plan.profiles if p["slug"] == "gpu")
    values = build_values(CFG, parse_nodes(SCENARIOS["sharing"]), GIVEN_REFS)
    [pod] = pods(values, [{"profile": auto["slug"]}])
    assert "ts-renamed" not in nodes_for(pod, SCENARIOS["sharing"]["items"])


def test_mps_is_named_mps_and_gives_one_replica() -> None:
    plan = build_profiles(CFG, parse_nodes(SCENARIOS["sharing"]), GIVEN_REFS)
    a10 = next(p for p in plan.profiles if "a10" in p["slug"])
    assert a10["display_name"].endswith("(up to 1 per server, MPS)") and a10["slug"].endswith("-mps")
    assert list(a10["profile_options"]["gpus"]["choices"]) == ["1"]
    rows = {r.name: r for r in plan.nodes}
    assert "MPS (4 slots, 1 per user)" in rows["mps-1"].gpus and "time-sliced" not in rows["mps-1"].gpus


def test_unhealthy_gpus_are_reported_as_such() -> None:
    plan = build_profiles(CFG, parse_nodes(SCENARIOS["sharing"]), GIVEN_REFS)
    rows = {r.name: r for r in plan.nodes}
    assert rows["sick-all"].reason == "2 of 2 GPUs unhealthy (the device plugin reports none allocatable)"
    assert rows["sick-all"].gpus == "2 GPU(s), none healthy", "listed in excluded_nodes (rows with GPUs)"
    assert rows["sick-one"].gpus.endswith("1 of 2 unhealthy") and rows["sick-one"].included
    l4 = next(p for p in plan.profiles if "l4" in p["slug"])
    assert list(l4["profile_options"]["gpus"]["choices"]) == ["1"], "only the healthy GPU is offered"


def test_hostile_node_data_skips_the_node_fast() -> None:
    start = time.perf_counter()
    plan = build_profiles(CFG, parse_nodes(SCENARIOS["hostile"]), GIVEN_REFS)
    elapsed = time.perf_counter() - start
    rows = {r.name: r for r in plan.nodes}
    assert rows["gpu-exa"].reason == (
        "unreadable node data: nvidia.com/gpu = '1E' is not a plausible GPU count (more than 1024); no user pods"
    )
    assert "more than 1024" in rows["gpu-100k"].reason
    assert "more than 24 digits" in rows["cpu-huge"].reason
    assert "nvidia.com/gpu.count='two'" in rows["gpu-badlabel"].reason
    assert plan.gpu_nodes == ["gpu-good"]
    print(f"hostile fixture planned in {elapsed * 1000:.1f} ms")  # a figure, not an assert


def test_gpu_choices_are_capped_per_server() -> None:
    doc = node_list(node("big", gpus=64, product="NVIDIA-H100-80GB-HBM3", memory_mib=81559))
    plan = build_profiles(CFG, parse_nodes(doc), GIVEN_REFS)
    h100 = next(p for p in plan.profiles if "h100" in p["slug"])
    assert list(h100["profile_options"]["gpus"]["choices"]) == [str(n) for n in range(1, 17)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00\xd8garbage", "is not JSON"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'{"items": "nope"}', "`items` list"),
    ],
)
def test_bad_node_files_exit_2_with_a_clear_message(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "nodes.json"
    path.write_bytes(content)
    proc = plan_cli("--stack-file", "Pulumi.dev.yaml", "--nodes", str(path))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: --nodes: {path}")


def test_cpu_servers_prefer_nodes_without_gpus_unless_switched_off() -> None:
    values = build_values(CFG, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)
    [pod] = pods(values, [{"profile": "cpu"}])
    preferred = pod["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["preference"]["matchExpressions"] == [
        {"key": "nvidia.com/gpu.present", "operator": "NotIn", "values": ["true"]}
    ]
    [gpu_pod] = pods(values, [{"profile": "gpu"}])
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in gpu_pod["spec"]["affinity"]["nodeAffinity"]
    off = parse_config(
        {**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}, "profiles": {"cpuPreferNonGpuNodes": False}}
    )
    [pod] = pods(build_values(off, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS), [{"profile": "cpu"}])
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in pod["spec"]["affinity"].get("nodeAffinity", {})


# ---- scale: classes too large to list their nodes get a checked name field ----


def test_a_large_class_offers_its_nodes_as_a_checked_name_field() -> None:
    doc = many(400)  # 4 products x 4 GPU counts: 16 classes of 25 nodes; then 60 more H100 x8 nodes: 85
    doc["items"] += [
        node(f"h100-{i:03d}", gpus=8, product="NVIDIA-H100-80GB-HBM3", memory_mib=81559) for i in range(60)
    ]
    values = build_values(CFG, parse_nodes(doc), GIVEN_REFS)
    profiles = {p["slug"]: p for p in values["singleuser"]["profileList"]}
    h100 = next(p for s, p in profiles.items() if "h100" in s and "x8" in s)
    option = h100["profile_options"]["node"]
    assert list(option["choices"]) == [ANY_NODE]
    unlisted = option["unlisted_choice"]
    assert unlisted["enabled"] and unlisted["kubespawner_override"] == {
        "node_selector": {"kubernetes.io/hostname": "{value}"}
    }
    small = next(p for s, p in profiles.items() if "4090" in s)
    assert "unlisted_choice" not in small["profile_options"]["node"], "25 nodes are still listed"

    slug = h100["slug"]
    [pod] = pods(values, [{"profile": slug, "node": "unlisted_choice", "node--unlisted-choice": "h100-007"}])
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "h100-007"}
    assert nodes_for(pod, doc["items"]) == ["h100-007"]
    for bad in ("h100-999", "gpu-0000", "h100-007\n", "h100-00"):
        with pytest.raises(ValueError, match="validation regex"):
            pods(values, [{"profile": slug, "node": "unlisted_choice", "node--unlisted-choice": bad}])
    table = render_table(CFG, build_profiles(CFG, parse_nodes(doc), GIVEN_REFS))
    assert "node (any, or one of 85 typed by name)" in table


@pytest.mark.no_mutation  # under mutmut the shipped live_profiles.py carries every mutant (1.4 MB)
def test_values_of_a_mixed_cluster_are_far_below_the_secret_limit() -> None:
    values = build_values(CFG, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)
    assert values_size_warning(values) is None
    big = {**values, "hub": {**values["hub"], "extraConfig": {"x": "#" * (720 * 1024)}}}
    warning = values_size_warning(big)
    assert warning and "hub Secret" in warning and "1024 KiB" in warning


def test_the_size_warning_starts_at_700_kib_of_yaml() -> None:
    def of_size(n: int) -> dict[str, Any]:
        values = {"x": "a" * (n - 4)}  # "x: ", the string, a newline
        assert len(yaml.dump(values, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)).encode()) == n
        return values

    assert values_size_warning(of_size(700 * 1024 - 1)) is None
    warning = values_size_warning(of_size(700 * 1024))
    assert warning == (
        "the Helm values are 700 KiB as YAML; the chart stores them with its defaults in the hub Secret, which "
        "Kubernetes limits to 1024 KiB: beyond that `pulumi up` fails. Fewer GPU classes or nodes, or a shorter "
        "hub.extraConfig, bring them down"
    )
    assert "the Helm values are 1023 KiB" in (values_size_warning(of_size(1024 * 1024 - 1)) or "")


def test_plan_names_the_nodes_the_storage_check_runs_on() -> None:
    cfg = parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}, "verifyStorage": True})
    plan = build_profiles(cfg, parse_nodes(SCENARIOS["platforms"]), GIVEN_REFS)
    assert plan.checked_nodes == ["cpu-1", "gpu-1"]
    assert "verifyStorage: the storage check runs on 2 node(s) where user pods can run: cpu-1, gpu-1" in plan.notes
    assert build_profiles(CFG, parse_nodes(SCENARIOS["platforms"]), GIVEN_REFS).checked_nodes == []
