"""Small parts of the values and profiles, pinned whole (mutation testing, scripts/mutation.sh, found the
namespace's audit labels, the registry notes and the escaping of unusual node names unasserted)."""

from __future__ import annotations

import copy
import re
from typing import Any

from components.config import parse_config
from components.profiles import _names_regex
from components.values import pod_security_labels, registry_notes
from tests.conftest import BASE_CONFIG, GIVEN_REFS


def cfg(**patch: Any) -> Any:
    return parse_config({**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": GIVEN_REFS}, **patch})


def test_the_namespace_enforces_restricted_and_always_warns_and_audits_at_restricted() -> None:
    restricted = {
        f"pod-security.kubernetes.io/{mode}{suffix}": value
        for mode in ("enforce", "warn", "audit")
        for suffix, value in (("", "restricted"), ("-version", "latest"))
    }
    assert pod_security_labels(cfg()) == restricted
    shared = pod_security_labels(cfg(storage={"sharedCode": {"hostPath": "/srv/code"}}))
    assert shared == {**restricted, "pod-security.kubernetes.io/enforce": "privileged"}


def test_registry_notes_say_what_pods_pull_with() -> None:
    assert registry_notes(cfg()) == [
        "registry.pullUsername/pullPassword are not set: user pods pull with the push robot account, whose token "
        "then sits in the user namespace; create a pull-only robot account in Harbor"
    ]
    pull = {**BASE_CONFIG["registry"], "pullUsername": "robot$pull", "pullPassword": "pull-token-value-1"}
    assert registry_notes(cfg(registry=pull)) == []
    public = {"host": "harbor.lab.example", "project": "jupyter"}
    assert registry_notes(cfg(registry=public)) == [
        "no registry credentials: images must be pullable without them (a public project, or node credentials)"
    ]


def test_a_typed_node_name_must_be_one_of_the_class_exactly() -> None:
    names = ["gpu.b", "GPU_7", "x+y", "a-1"]
    pattern = _names_regex(names)
    # "." in a class and other names escaped: a browser's form check (unicode mode) takes the same pattern
    assert pattern == r"^(?:GPU_7|a-1|gpu[.]b|x\+y)(?![\s\S])"
    for name in names:
        assert re.match(pattern, name), name
    for other in ("gpuxb", "gpu-b", "xxy", "x+yy", "a-1\n", "GPU_", "a-12"):
        assert re.match(pattern, other) is None, other


def test_a_driver_at_the_cuda_12_minimum_is_told_to_enable_the_cuda_12_images() -> None:
    from components.image_specs import CUDA12, CUDA13
    from components.nodes import parse_nodes
    from components.profiles import build_profiles
    from tests.fixtures.nodefactory import node, node_list

    drivers = {
        "at-minimum": f"{CUDA12.min_driver_major}.0.1",
        "below": f"{CUDA12.min_driver_major - 1}.9.9",
        "newest": f"{CUDA13.min_driver_major}.1.2",
    }
    doc = node_list(*(node(name, gpus=1, driver=driver) for name, driver in drivers.items()))
    rows = {r.name: r for r in build_profiles(cfg(), parse_nodes(doc), GIVEN_REFS).nodes}
    need = f"images need {CUDA13.min_driver_major}+"
    assert rows["at-minimum"].reason == (
        f"driver {drivers['at-minimum']}, {need}: upgrade the driver or enable the CUDA 12 images (images.cuda12: true)"
    )
    assert rows["below"].reason == (
        f"driver {drivers['below']}, {need} ({CUDA12.min_driver_major}+ with images.cuda12): upgrade the driver"
    )
    assert rows["newest"].included and not rows["at-minimum"].included


def test_the_plan_shows_given_digests_or_the_tags_a_build_will_pin() -> None:
    from components.values import image_refs_for_plan

    assert image_refs_for_plan(cfg()) == GIVEN_REFS
    built = parse_config({**copy.deepcopy(BASE_CONFIG), "images": {"version": "2.1.0"}})
    refs = image_refs_for_plan(built)
    assert refs == {s.name: f"harbor.lab.example/jupyter/{s.name}:2.1.0" for s in built.images.specs()}
    assert "jupyter-ml-cpu" in refs


def test_gpus_described_for_the_plan_table() -> None:
    from components.nodes import parse_nodes
    from components.profiles import describe_gpus
    from tests.fixtures.nodefactory import node, node_list

    doc = node_list(
        node("plain", gpus=2, product="NVIDIA-GeForce-RTX-4090", memory_mib=24564),
        node("big", gpus=1, memory_mib=1024 * 513),  # 513 GiB, not 512 (rounding, 1024 MiB each)
        node("unlabelled", gpus=2, labelled=False),
        node("sliced", gpus=1, replicas=4, product="NVIDIA-A10"),
        node("sick", gpus=4, unhealthy=1),
        node("mig", mig={"nvidia.com/mig-1g.10gb": 2, "nvidia.com/mig-3g.40gb": 1}, product="NVIDIA-A100"),
    )
    described = {n.name: describe_gpus(n) for n in parse_nodes(doc).nodes}
    assert described == {
        "plain": "2 x NVIDIA GeForce RTX 4090, 24 GiB",
        "big": "1 x NVIDIA GeForce RTX 4090, 513 GiB",
        "unlabelled": "2 x NVIDIA GPU (unlabelled), memory unknown",
        "sliced": "1 x NVIDIA A10 SHARED, 24 GiB, time-sliced (4 slots, 1 per user)",  # GFD adds -SHARED
        "sick": "4 x NVIDIA GeForce RTX 4090, 24 GiB, 1 of 4 unhealthy",
        "mig": "1 x NVIDIA A100, 24 GiB, MIG 2 x 1g.10gb + 1 x 3g.40gb",
    }


def test_a_mig_node_whose_whole_gpu_is_partitioned_is_not_unhealthy() -> None:
    from components.nodes import parse_node
    from components.profiles import describe_gpus
    from tests.fixtures.nodefactory import node

    doc = node("mig", mig={"nvidia.com/mig-1g.10gb": 2}, product="NVIDIA-A100")
    doc["status"]["allocatable"]["nvidia.com/gpu"] = "0"
    doc["status"]["capacity"] = {**doc["status"].get("capacity", {}), "nvidia.com/gpu": "1"}
    mig = parse_node(doc)
    assert (mig.gpu_capacity, mig.gpu_allocatable) == (1, 0)
    assert "unhealthy" not in describe_gpus(mig)


def test_gpu_classes_split_by_product_and_memory_and_reasons_name_every_taint() -> None:
    from components.nodes import parse_nodes
    from components.profiles import build_profiles
    from tests.fixtures.nodefactory import node, node_list

    taints = [{"key": "a", "value": "x", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}]
    doc = node_list(
        node("g1", gpus=1, product="NVIDIA-A10", memory_mib=24576),
        node("g2", gpus=1, product="NVIDIA-L4", memory_mib=24576),
        node("g3", gpus=1, product="NVIDIA-A10", memory_mib=49152),
        node("off", gpus=1, cordoned=True),
        node("tainted", gpus=1, taints=taints),
    )
    plan = build_profiles(cfg(), parse_nodes(doc), GIVEN_REFS)
    classes = [p for p in plan.profiles if "node" in p.get("profile_options", {})]
    assert sorted(sorted(c for c in p["profile_options"]["node"]["choices"] if c != "*") for p in classes) == [
        ["g1"],
        ["g2"],
        ["g3"],
    ]
    reasons = {r.name: r.reason for r in plan.nodes}
    assert reasons["off"] == "cordoned (unschedulable)"
    assert (
        reasons["tainted"] == "taint a=x:NoSchedule, b:NoExecute is not tolerated by GPU pods (profiles.gpuTolerations)"
    )


def test_without_sizing_descriptions_show_the_fixed_resources() -> None:
    from components.nodes import parse_nodes
    from components.profiles import build_profiles
    from tests.fixtures.nodefactory import SCENARIOS

    fixed = cfg(profiles={"sizing": {"enabled": False}})
    plan = build_profiles(fixed, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)
    by_slug = {p["slug"]: p["description"] for p in plan.profiles}
    r = fixed.profiles.gpu
    assert by_slug["gpu"] == (
        f"1 GPU on any GPU node; PyTorch with CUDA; {r.cpuGuarantee:g}-{r.cpuLimit:g} CPU, "
        f"{r.memGuarantee}-{r.memLimit} memory"
    )
