"""GPU feature discovery's sharing labels and the toleration rule, pinned case by case (mutation testing
showed the time-slicing labels, renamed shared resources and the default toleration operator unasserted)."""

from __future__ import annotations

from typing import Any

import pytest

from components.core.nodes import SHARED_GPU_RESOURCE, blocking_taints, parse_node


def node(labels: dict[str, str], allocatable: dict[str, str], taints: list[dict[str, str]] | None = None) -> Any:
    return parse_node(
        {
            "metadata": {"name": "gpu-1", "labels": {"kubernetes.io/os": "linux", **labels}},
            "spec": {"taints": taints or []},
            "status": {
                "allocatable": {"cpu": "16", "memory": "64Gi", **allocatable},
                "capacity": {"cpu": "16", "memory": "64Gi", **allocatable},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
    )


def test_time_slicing_from_the_replicas_label() -> None:
    gpu = node({"nvidia.com/gpu.replicas": "4", "nvidia.com/gpu.product": "RTX-4090"}, {"nvidia.com/gpu": "8"}).gpu
    assert gpu is not None
    assert (gpu.replicas, gpu.sharing_strategy, gpu.count, gpu.allocatable) == (4, "time-slicing", 2, 8)
    assert gpu.product == "RTX-4090"


def test_an_explicit_strategy_and_count_win() -> None:
    labels = {"nvidia.com/gpu.replicas": "2", "nvidia.com/gpu.sharing-strategy": "mps", "nvidia.com/gpu.count": "3"}
    gpu = node(labels, {"nvidia.com/gpu": "6"}).gpu
    assert gpu is not None and (gpu.sharing_strategy, gpu.count) == ("mps", 3)


def test_unshared_gpus_say_none() -> None:
    gpu = node({}, {"nvidia.com/gpu": "2"}).gpu
    assert gpu is not None and (gpu.replicas, gpu.sharing_strategy, gpu.count) == (1, "none", 2)


@pytest.mark.parametrize("replicas", [None, "1"])
def test_a_renamed_shared_resource_is_time_sliced_even_without_labels(replicas: str | None) -> None:
    labels = {"nvidia.com/gpu.replicas": replicas} if replicas else {}
    gpu = node(labels, {"nvidia.com/gpu": "0", SHARED_GPU_RESOURCE: "4"}).gpu
    assert gpu is not None
    assert (gpu.resource, gpu.allocatable, gpu.sharing_strategy) == (SHARED_GPU_RESOURCE, 4, "time-slicing")


def test_the_plain_resource_wins_over_a_shared_one() -> None:
    gpu = node({}, {"nvidia.com/gpu": "1", SHARED_GPU_RESOURCE: "4"}).gpu
    assert gpu is not None and (gpu.resource, gpu.allocatable) == ("nvidia.com/gpu", 1)


def test_no_gpu_resources_means_no_gpu() -> None:
    assert node({"nvidia.com/gpu.product": "A100"}, {"nvidia.com/gpu": "0"}).gpu is None


@pytest.mark.parametrize(
    ("toleration", "blocked"),
    [
        ({"key": "gpu", "value": "true"}, []),  # operator defaults to Equal
        ({"key": "gpu", "value": "false"}, ["gpu=true:NoSchedule"]),
        ({"key": "gpu", "operator": "Exists"}, []),
        ({"operator": "Exists"}, []),  # no key: tolerates everything
        ({"key": "gpu", "operator": "Exists", "effect": "NoExecute"}, ["gpu=true:NoSchedule"]),
    ],
)
def test_toleration_rules(toleration: dict[str, str], blocked: list[str]) -> None:
    n = node({}, {"nvidia.com/gpu": "1"}, [{"key": "gpu", "value": "true", "effect": "NoSchedule"}])
    assert [(t.key, t.value, t.effect) for t in n.taints] == [("gpu", "true", "NoSchedule")]
    assert blocking_taints(n, [toleration]) == blocked


def test_a_non_matching_effect_is_skipped_not_the_end_of_the_list() -> None:
    n = node({}, {"nvidia.com/gpu": "1"}, [{"key": "gpu", "value": "true", "effect": "NoSchedule"}])
    tolerations = [{"key": "gpu", "operator": "Exists", "effect": "NoExecute"}, {"key": "gpu", "operator": "Exists"}]
    assert blocking_taints(n, tolerations) == []
