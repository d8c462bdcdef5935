"""Every field ``parse_node`` reads, and the reason each unreadable entry gets, case by case (mutation testing,
scripts/mutation.sh, showed the skip reasons, the label fallbacks and the GPU defaults unasserted)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.core.nodes import (
    GPU_RESOURCE,
    MAX_GPU_SLOTS,
    MAX_GPUS_PER_SERVER,
    SHARED_GPU_RESOURCE,
    GpuInfo,
    Taint,
    parse_node,
    parse_nodes,
    parse_quantity,
)

BASE: dict[str, Any] = {
    "metadata": {"name": "n1", "labels": {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
    "spec": {},
    "status": {
        "allocatable": {"cpu": "4", "memory": "8Gi"},
        "capacity": {"cpu": "4", "memory": "8Gi"},
        "conditions": [{"type": "Ready", "status": "True"}],
    },
}


def item(
    labels: dict[str, Any] | None = None,
    allocatable: dict[str, Any] | None = None,
    capacity: dict[str, Any] | None = None,
    **top: Any,
) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["metadata"]["labels"].update(labels or {})
    doc["status"]["allocatable"].update(allocatable or {})
    doc["status"]["capacity"].update(capacity if capacity is not None else allocatable or {})
    for path, value in top.items():
        section, key = path.split("__")
        doc[section][key] = value
    return doc


def gpu(labels: dict[str, Any] | None = None, allocatable: dict[str, Any] | None = None) -> GpuInfo:
    info = parse_node(item(labels, allocatable)).gpu
    assert info is not None
    return info


def skip_reason(entry: Any) -> tuple[str, str]:
    inventory = parse_nodes({"items": [entry]})
    assert inventory.nodes == ()
    [skipped] = inventory.skipped
    return skipped.name, skipped.reason


def test_a_plain_node_whole() -> None:
    node = parse_node(item())
    assert node.model_dump() == {
        "name": "n1",
        "ready": True,
        "schedulable": True,
        "control_plane": False,
        "taints": (),
        "cpu_millis": 4000,
        "memory_bytes": 8 * 1024**3,
        "gpu": None,
        "gpu_labelled": False,
        "os": "linux",
        "arch": "amd64",
        "gpu_capacity": 0,
        "gpu_allocatable": 0,
        "addresses": (),
    }


def test_ready_schedulable_and_control_plane() -> None:
    def ready(conditions: Any) -> bool:
        return parse_node(item(status__conditions=conditions)).ready

    assert ready([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}])
    assert not ready([{"type": "Ready", "status": "False"}])
    assert not ready([{"type": "Ready", "status": "Unknown"}])
    assert not ready([{"type": "DiskPressure", "status": "True"}])
    assert not ready(["Ready", {"type": "Ready"}])
    assert not ready([])
    assert not ready(None)
    assert not parse_node(item(spec__unschedulable=True)).schedulable
    assert parse_node(item(spec__unschedulable=False)).schedulable
    for label in ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"):
        assert parse_node(item({label: ""})).control_plane
    assert not parse_node(item({"node-role.kubernetes.io/worker": ""})).control_plane


def test_os_and_architecture_fall_back_to_the_beta_labels() -> None:
    doc = item()
    doc["metadata"]["labels"] = {"beta.kubernetes.io/os": "windows", "beta.kubernetes.io/arch": "arm64"}
    node = parse_node(doc)
    assert (node.os, node.arch) == ("windows", "arm64")
    doc["metadata"]["labels"] = {}
    node = parse_node(doc)
    assert (node.os, node.arch) == (None, None)
    doc["metadata"]["labels"] = {
        "kubernetes.io/os": "linux",
        "beta.kubernetes.io/os": "windows",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/arch": "arm64",
    }
    node = parse_node(doc)
    assert (node.os, node.arch) == ("linux", "amd64")


def test_taints_are_typed_and_sorted() -> None:
    taints = [
        {"key": "b", "effect": "NoSchedule"},
        {"key": "a", "value": 5, "effect": "NoSchedule"},
        {"key": "a", "value": None, "effect": "NoExecute"},
        {"key": "a", "value": "x", "effect": "NoExecute"},
    ]
    node = parse_node(item(spec__taints=taints))
    assert node.taints == (
        Taint(key="a", value="", effect="NoExecute"),
        Taint(key="a", value="5", effect="NoSchedule"),
        Taint(key="a", value="x", effect="NoExecute"),
        Taint(key="b", value="", effect="NoSchedule"),
    )


def test_cpu_and_memory_are_none_when_not_reported() -> None:
    doc = item()
    doc["status"]["allocatable"] = {"cpu": "1500m"}
    node = parse_node(doc)
    assert (node.cpu_millis, node.memory_bytes) == (1500, None)
    doc["status"]["allocatable"] = {"memory": "1G"}
    node = parse_node(doc)
    assert (node.cpu_millis, node.memory_bytes) == (None, 10**9)


@pytest.mark.parametrize(
    ("text", "millis", "expected"),
    [
        ("1", False, 1),
        (3, True, 3000),
        ("250m", True, 250),
        ("1500m", False, 1),
        ("1.5", True, 1500),
        ("2Ki", False, 2048),
        ("1Mi", False, 1024**2),
        ("1Gi", False, 1024**3),
        ("1Ti", False, 1024**4),
        ("1Pi", False, 1024**5),
        ("1Ei", False, 1024**6),
        ("2k", False, 2000),
        ("1M", False, 10**6),
        ("1G", False, 10**9),
        ("1T", False, 10**12),
        ("1P", False, 10**15),
        ("1E", False, 10**18),
        (" 7 ", False, 7),
        ("1" * 24, False, int(float("1" * 24))),
    ],
)
def test_quantities_every_suffix(text: Any, millis: bool, expected: int) -> None:
    assert parse_quantity(text, millis=millis) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lots", "not a Kubernetes quantity: 'lots'"),
        (True, "not a Kubernetes quantity: True"),
        (1.5, "not a Kubernetes quantity: 1.5"),
        (None, "not a Kubernetes quantity: None"),
        ("1Ki ", None),
        ("1" * 25, f"quantity '{'1' * 25}' has more than 24 digits"),
        ("x" * 50, f"not a Kubernetes quantity: '{'x' * 36}..."),
    ],
)
def test_quantities_that_are_not(text: Any, message: str | None) -> None:
    if message is None:  # surrounding spaces are tolerated
        assert parse_quantity(text) == 1024
        return
    with pytest.raises(ValueError) as err:
        parse_quantity(text)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("entry", "name", "reason"),
    [
        ("node", "(unnamed node)", "node entry is not an object"),
        ({"metadata": {"name": ""}}, "(unnamed node)", "node has no metadata.name"),
        ({"metadata": {"name": 7}}, "(unnamed node)", "node has no metadata.name"),
        ({"metadata": "n1"}, "(unnamed node)", "node has no metadata.name"),
        ({"metadata": {"name": "n1"}, "spec": ["x"]}, "n1", "spec/status are not objects"),
        ({"metadata": {"name": "n1"}, "status": "up"}, "n1", "spec/status are not objects"),
        ({"metadata": {"name": "n1", "labels": ["a"]}}, "n1", "metadata.labels is not a mapping"),
        ({"metadata": {"name": "n1"}, "status": {"allocatable": 4}}, "n1", "status.allocatable is not a mapping"),
        ({"metadata": {"name": "n1"}, "status": {"capacity": "x"}}, "n1", "status.capacity is not a mapping"),
        (
            {"metadata": {"name": "n1"}, "status": {"conditions": {"type": "Ready"}}},
            "n1",
            "status.conditions is not a list",
        ),
        ({"metadata": {"name": "n1"}, "status": {"conditions": "Ready"}}, "n1", "status.conditions is not a list"),
        ({"metadata": {"name": "n1"}, "spec": {"taints": {"key": "a"}}}, "n1", "spec.taints is not a list"),
        (
            {"metadata": {"name": "n1"}, "spec": {"taints": [{"effect": "NoSchedule"}]}},
            "n1",
            "a taint lacks key or effect",
        ),
        ({"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "a"}]}}, "n1", "a taint lacks key or effect"),
        ({"metadata": {"name": "n1"}, "spec": {"taints": ["a:NoSchedule"]}}, "n1", "a taint lacks key or effect"),
        (
            {"metadata": {"name": "n1"}, "status": {"allocatable": {"cpu": "fast"}}},
            "n1",
            "not a Kubernetes quantity: 'fast'",
        ),
        (
            {"metadata": {"name": "n1"}, "status": {"allocatable": {"memory": "much"}}},
            "n1",
            "not a Kubernetes quantity: 'much'",
        ),
        (
            {"metadata": {"name": "n1"}, "status": {"allocatable": {GPU_RESOURCE: str(MAX_GPU_SLOTS + 1)}}},
            "n1",
            "nvidia.com/gpu = '1025' is not a plausible GPU count (more than 1024)",
        ),
        (
            {"metadata": {"name": "n1"}, "status": {"capacity": {SHARED_GPU_RESOURCE: "99999"}}},
            "n1",
            "nvidia.com/gpu.shared = '99999' is not a plausible GPU count (more than 1024)",
        ),
        (
            {
                "metadata": {"name": "n1", "labels": {"nvidia.com/gpu.count": "two"}},
                "status": {"allocatable": {GPU_RESOURCE: "1"}},
            },
            "n1",
            "label nvidia.com/gpu.count='two' is not a plausible whole number",
        ),
        (
            {
                "metadata": {"name": "n1", "labels": {"nvidia.com/gpu.memory": "1" * 10}},
                "status": {"allocatable": {GPU_RESOURCE: "1"}},
            },
            "n1",
            f"label nvidia.com/gpu.memory='{'1' * 10}' is not a plausible whole number",
        ),
        (
            {
                "metadata": {"name": "n1", "labels": {"nvidia.com/gpu.replicas": 4}},
                "status": {"allocatable": {GPU_RESOURCE: "1"}},
            },
            "n1",
            "label nvidia.com/gpu.replicas=4 is not a plausible whole number",
        ),
    ],
)
def test_each_unreadable_entry_is_skipped_with_its_reason(entry: Any, name: str, reason: str) -> None:
    assert skip_reason(entry) == (name, f"unreadable node data: {reason}")


def test_a_plausible_label_has_at_most_nine_digits() -> None:
    assert gpu({"nvidia.com/gpu.memory": "9" * 9}, {GPU_RESOURCE: "1"}).memory_mib == 999_999_999
    assert gpu({"nvidia.com/gpu.memory": "0"}, {GPU_RESOURCE: "1"}).memory_mib == 0
    assert skip_reason(item({"nvidia.com/gpu.memory": "-1"}, {GPU_RESOURCE: "1"}))[1].endswith(
        "label nvidia.com/gpu.memory='-1' is not a plausible whole number"
    )


def test_gpu_slots_at_the_limit_are_plausible() -> None:
    assert gpu({}, {GPU_RESOURCE: str(MAX_GPU_SLOTS)}).allocatable == MAX_GPU_SLOTS


def test_no_gpu_without_allocatable_gpus_or_mig_slices() -> None:
    for allocatable in (
        {},
        {GPU_RESOURCE: "0"},
        {SHARED_GPU_RESOURCE: "0"},
        {"nvidia.com/mig-1g.10gb": "0"},
        {"nvidia.com/mig-weird": "2"},  # not a MIG profile name
        {"nvidia.com/gpu-other": "2"},
    ):
        doc = item({"nvidia.com/gpu.present": "true"}, allocatable)
        node = parse_node(doc)
        assert node.gpu is None, allocatable
        assert node.gpu_labelled
    assert not parse_node(item({"nvidia.com/gpu.present": "True"})).gpu_labelled


def test_an_unlabelled_gpu_node_gets_the_defaults() -> None:
    info = gpu({}, {GPU_RESOURCE: "3"})
    assert info == GpuInfo(
        allocatable=3,
        product=None,
        memory_mib=None,
        count=3,
        replicas=1,
        sharing_strategy="none",
        mig_strategy=None,
        mig_resources=(),
        resource=GPU_RESOURCE,
        driver_major=None,
        driver=None,
    )
    assert not info.shared and info.sharing == "" and info.max_per_user == 3


def test_labels_describe_the_gpu() -> None:
    info = gpu(
        {
            "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
            "nvidia.com/gpu.memory": "81920",
            "nvidia.com/gpu.count": "8",
            "nvidia.com/mig.strategy": "single",
        },
        {GPU_RESOURCE: "8"},
    )
    assert (info.product, info.memory_mib, info.count, info.mig_strategy) == (
        "NVIDIA-A100-SXM4-80GB",
        81920,
        8,
        "single",
    )
    assert gpu({"nvidia.com/gpu.product": "", "nvidia.com/mig.strategy": ""}, {GPU_RESOURCE: "1"}).product is None
    assert gpu({"nvidia.com/mig.strategy": ""}, {GPU_RESOURCE: "1"}).mig_strategy is None


def test_count_without_its_label() -> None:
    assert gpu({"nvidia.com/gpu.replicas": "4"}, {GPU_RESOURCE: "8"}).count == 2
    assert gpu({"nvidia.com/gpu.replicas": "4"}, {GPU_RESOURCE: "2"}).count == 1, "at least one GPU"
    assert gpu({"nvidia.com/gpu.replicas": "0"}, {GPU_RESOURCE: "2"}).replicas == 1, "0 replicas means unshared"
    mig = gpu({}, {"nvidia.com/mig-1g.10gb": "4", "nvidia.com/mig-3g.40gb": "1"})
    assert (mig.allocatable, mig.count) == (0, 2), "one per MIG resource when nothing else says"
    assert gpu({"nvidia.com/gpu.count": "0"}, {GPU_RESOURCE: "2"}).count == 0, "the label wins, even 0"


def test_mig_resources_sorted_and_only_real_profiles() -> None:
    info = gpu(
        {},
        {
            "nvidia.com/mig-3g.40gb": "1",
            "nvidia.com/mig-1g.10gb": "4",
            "nvidia.com/mig-2g.20gb": "0",
            "nvidia.com/mig-1g.10gb.me": "2",
            "nvidia.com/mig-1g": "2",
            GPU_RESOURCE: "0",
        },
    )
    assert info.mig_resources == (
        ("nvidia.com/mig-1g.10gb", 4),
        ("nvidia.com/mig-1g.10gb.me", 2),
        ("nvidia.com/mig-3g.40gb", 1),
    )
    assert info.allocatable == 0 and info.resource == GPU_RESOURCE


def test_sharing_strategies() -> None:
    mps = gpu({"nvidia.com/gpu.sharing-strategy": "mps", "nvidia.com/gpu.replicas": "2"}, {GPU_RESOURCE: "4"})
    assert (mps.sharing_strategy, mps.shared, mps.sharing, mps.max_per_user) == ("mps", True, "MPS", 1)
    sliced = gpu({"nvidia.com/gpu.replicas": "2"}, {GPU_RESOURCE: "4"})
    assert (sliced.sharing_strategy, sliced.sharing) == ("time-slicing", "time-sliced")
    labelled = gpu({"nvidia.com/gpu.sharing-strategy": "time-slicing"}, {GPU_RESOURCE: "4"})
    assert labelled.shared and labelled.replicas == 1 and labelled.max_per_user == 1
    renamed = gpu({}, {SHARED_GPU_RESOURCE: "6"})
    assert (renamed.resource, renamed.allocatable, renamed.sharing_strategy) == (SHARED_GPU_RESOURCE, 6, "time-slicing")
    renamed_mps = gpu({"nvidia.com/gpu.sharing-strategy": "mps"}, {SHARED_GPU_RESOURCE: "6"})
    assert renamed_mps.sharing_strategy == "mps"
    both = gpu({}, {GPU_RESOURCE: "2", SHARED_GPU_RESOURCE: "6"})
    assert (both.resource, both.allocatable, both.sharing_strategy) == (GPU_RESOURCE, 2, "none")


def test_gpus_per_server_follow_count_and_allocatable_up_to_16() -> None:
    assert gpu({"nvidia.com/gpu.count": "4"}, {GPU_RESOURCE: "2"}).max_per_user == 2, "two are healthy"
    assert gpu({"nvidia.com/gpu.count": "2"}, {GPU_RESOURCE: "4"}).max_per_user == 2
    assert gpu({"nvidia.com/gpu.count": "32"}, {GPU_RESOURCE: "32"}).max_per_user == MAX_GPUS_PER_SERVER
    assert gpu({"nvidia.com/gpu.count": "0"}, {GPU_RESOURCE: "1"}).max_per_user == 1


@pytest.mark.parametrize(
    ("labels", "major", "driver"),
    [
        ({"nvidia.com/cuda.driver-version.major": "580"}, 580, "580"),
        (
            {
                "nvidia.com/cuda.driver-version.major": "580",
                "nvidia.com/cuda.driver-version.minor": "95",
                "nvidia.com/cuda.driver-version.revision": "05",
            },
            580,
            "580.95.05",
        ),
        (
            {
                "nvidia.com/cuda.driver-version.major": "580",
                "nvidia.com/cuda.driver-version.revision": "05",
            },
            580,
            "580",
        ),
        (
            {
                "nvidia.com/cuda.driver-version.major": "580",
                "nvidia.com/cuda.driver-version.minor": "9a",
                "nvidia.com/cuda.driver-version.revision": "05",
            },
            580,
            "580",
        ),
        (
            {
                "nvidia.com/cuda.driver-version.major": "580",
                "nvidia.com/cuda.driver-version.minor": "1234567",
            },
            580,
            "580",
        ),
        (
            {
                "nvidia.com/cuda.driver.major": "535",
                "nvidia.com/cuda.driver.minor": "183",
                "nvidia.com/cuda.driver.rev": "01",
            },
            535,
            "535.183.01",
        ),
        (
            {
                "nvidia.com/cuda.driver-version.major": "580",
                "nvidia.com/cuda.driver-version.minor": "95",
                "nvidia.com/cuda.driver.major": "535",
                "nvidia.com/cuda.driver.minor": "183",
            },
            580,
            "580.95",
        ),
        ({"nvidia.com/cuda.driver-version.minor": "95"}, None, None),
        ({}, None, None),
    ],
)
def test_driver_from_the_first_label_set_present(labels: dict[str, str], major: int | None, driver: str | None) -> None:
    info = gpu(labels, {GPU_RESOURCE: "1"})
    assert (info.driver_major, info.driver) == (major, driver)


def test_gpu_capacity_and_allocatable_count_whole_and_shared_gpus() -> None:
    node = parse_node(
        item(
            {},
            {GPU_RESOURCE: "1", SHARED_GPU_RESOURCE: "4", "nvidia.com/mig-1g.10gb": "2"},
            {GPU_RESOURCE: "2", SHARED_GPU_RESOURCE: "4", "nvidia.com/mig-1g.10gb": "2"},
        )
    )
    assert (node.gpu_capacity, node.gpu_allocatable) == (6, 5)


def test_a_bad_entry_does_not_hide_the_others_and_reasons_are_sorted() -> None:
    inventory = parse_nodes(
        {
            "items": [
                {"metadata": {"name": "b"}, "spec": ["x"]},
                item(),
                {"metadata": {"name": "a"}, "status": {"conditions": 1}},
                7,
            ]
        }
    )
    assert [n.name for n in inventory.nodes] == ["n1"]
    assert [(s.name, s.reason) for s in inventory.skipped] == [
        ("(unnamed node)", "unreadable node data: node entry is not an object"),
        ("a", "unreadable node data: status.conditions is not a list"),
        ("b", "unreadable node data: spec/status are not objects"),
    ]


def test_messages_quote_values_up_to_40_characters() -> None:
    with pytest.raises(ValueError) as err:
        parse_quantity("x" * 38)  # repr: 40 characters
    assert str(err.value) == f"not a Kubernetes quantity: '{'x' * 38}'"
    with pytest.raises(ValueError) as err:
        parse_quantity("x" * 39)
    assert str(err.value) == f"not a Kubernetes quantity: '{'x' * 36}..."


def test_an_equal_toleration_without_a_value_matches_a_taint_without_one() -> None:
    from components.core.nodes import blocking_taints

    bare = parse_node(item(spec__taints=[{"key": "dedicated", "effect": "NoSchedule"}]))
    valued = parse_node(item(spec__taints=[{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}]))
    assert blocking_taints(bare, [{"key": "dedicated", "operator": "Equal", "effect": "NoSchedule"}]) == []
    assert blocking_taints(bare, [{"key": "dedicated"}]) == []
    assert blocking_taints(valued, [{"key": "dedicated"}]) == ["dedicated=ml:NoSchedule"]
