"""Which node is offered and why: the node inventory triaged once, into the plan's node table and the GPU
classes the profiles are built from.

A GPU *class* is the nodes with the same product, memory, per-node count, sharing, MIG layout and CUDA variant;
each becomes one profile. A node without usable GPUs still gets a row that says why (NotReady, cordoned, a
taint, an OS or architecture the images are not built for, a driver too old, a device plugin reporting none).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from components.core.image_specs import CUDA12, CUDA13, CudaVariant, platform_problem, variant_for_driver
from components.core.nodes import GpuInfo, Inventory, NodeInfo, blocking_taints

ClassKey = tuple[Any, ...]  # _class_key(gpu) + (the CUDA variant,)


class NodeRow(BaseModel):
    """One line of the plan's node table."""

    model_config = ConfigDict(frozen=True)
    name: str
    control_plane: bool
    gpus: str  # "2 x NVIDIA GeForce RTX 4090, 24 GiB"; "-" without usable GPUs; "?" when unreadable
    included: bool  # offered in the GPU profiles
    reason: str


@dataclass(frozen=True)
class Triage:
    """The inventory sorted out once: the table's rows, the GPU classes (in inventory order), the nodes CPU
    servers can run on, and the names of nodes whose data could not be read."""

    rows: list[NodeRow]
    classes: dict[ClassKey, list[NodeInfo]]
    user_nodes: list[NodeInfo]
    unreadable: list[str]


def gib(mib: int | None) -> str:
    return f"{round(mib / 1024)} GiB" if mib else "memory unknown"


def product_name(gpu: GpuInfo) -> str:
    """GPU feature discovery writes products with dashes (NVIDIA-GeForce-RTX-4090); show them with spaces."""
    return gpu.product.replace("-", " ") if gpu.product else "NVIDIA GPU (unlabelled)"


def describe_node(node: NodeInfo) -> str:
    """ "gpu-node-2: 2 x NVIDIA GeForce RTX 4090, 24 GiB" (plus sharing or MIG details)."""
    return f"{node.name}: {describe_gpus(node)}"


def describe_gpus(node: NodeInfo) -> str:
    """ "2 x NVIDIA GeForce RTX 4090, 24 GiB" (plus sharing or MIG details)."""
    gpu = node.gpu
    assert gpu is not None
    text = f"{gpu.count} x {product_name(gpu)}, {gib(gpu.memory_mib)}"
    if gpu.shared:
        text += f", {gpu.sharing} ({gpu.allocatable} slots, 1 per user)"
    if node.gpu_capacity > node.gpu_allocatable > 0:
        text += f", {node.gpu_capacity - node.gpu_allocatable} of {node.gpu_capacity} unhealthy"
    if gpu.mig_resources:
        text += ", MIG " + " + ".join(f"{n} x {r.removeprefix('nvidia.com/mig-')}" for r, n in gpu.mig_resources)
    return text


def runs_user_pods(node: NodeInfo, tolerations: list[dict[str, str]]) -> bool:
    """Ready, not cordoned, no taint the pods do not tolerate, and an OS and architecture the images are for."""
    return (
        node.ready
        and node.schedulable
        and not blocking_taints(node, tolerations)
        and not platform_problem(node.os, node.arch)
    )


def triage(
    inventory: Inventory,
    user_tolerations: list[dict[str, str]],
    gpu_tolerations: list[dict[str, str]],
    variants: tuple[CudaVariant, ...],
) -> Triage:
    """Every node once: its row, and for an offered GPU node its class."""
    rows: list[NodeRow] = []
    classes: dict[ClassKey, list[NodeInfo]] = defaultdict(list)
    for node in inventory.nodes:
        if node.gpu is None:
            rows.append(_cpu_node_row(node, user_tolerations))
            continue
        why = _exclusion(node, gpu_tolerations)
        variant = variant_for_driver(node.gpu.driver_major, variants)
        if why is None and variant is None:
            why = _driver_exclusion(node.gpu, variants)
        reason = why or _included_reason(node.gpu, variant)  # type: ignore[arg-type]
        row = NodeRow(
            name=node.name, control_plane=node.control_plane, gpus=describe_gpus(node), included=why is None,
            reason=reason,
        )  # fmt: skip
        rows.append(row)
        if why is None and variant is not None:
            classes[(*_class_key(node.gpu), variant)].append(node)
    known = {n.name for n in inventory.nodes}
    for skipped in inventory.skipped:
        reason = skipped.reason if skipped.name in known else f"{skipped.reason}; no user pods"
        rows.append(NodeRow(name=skipped.name, control_plane=False, gpus="?", included=False, reason=reason))
    rows.sort(key=lambda r: (r.name, r.reason))
    user_nodes = [n for n in inventory.nodes if runs_user_pods(n, user_tolerations)]
    unreadable = sorted({s.name for s in inventory.skipped} - known - {"(unnamed node)"})
    return Triage(rows=rows, classes=dict(classes), user_nodes=user_nodes, unreadable=unreadable)


def _cpu_node_row(node: NodeInfo, user_tolerations: list[dict[str, str]]) -> NodeRow:
    """A node without usable GPUs: whether CPU servers run there, or why not."""
    user_block = blocking_taints(node, user_tolerations)
    if not node.ready:
        reason = "NotReady"
    elif not node.schedulable:
        reason = "cordoned (unschedulable)"
    elif platform_problem(node.os, node.arch):
        reason = f"{platform_problem(node.os, node.arch)}: no user pods"
    elif user_block:
        reason = f"taint {', '.join(user_block)}: no user pods"
    else:
        reason = "CPU profiles"
    gpus = "-"
    if node.gpu_capacity > 0 and node.gpu_allocatable == 0:
        n = node.gpu_capacity
        gpus = f"{n} GPU(s), none healthy"
        reason = f"{n} of {n} GPUs unhealthy (the device plugin reports none allocatable)"
    elif node.gpu_labelled:
        reason = "labelled GPU-present but no nvidia.com/gpu allocatable (device plugin not running?)"
    return NodeRow(name=node.name, control_plane=node.control_plane, gpus=gpus, included=False, reason=reason)


def _exclusion(node: NodeInfo, tolerations: list[dict[str, str]]) -> str | None:
    if not node.ready:
        return "NotReady"
    if not node.schedulable:
        return "cordoned (unschedulable)"
    platform = platform_problem(node.os, node.arch)
    if platform:
        return platform
    blocking = blocking_taints(node, tolerations)
    if blocking:
        return f"taint {', '.join(blocking)} is not tolerated by GPU pods (profiles.gpuTolerations)"
    return None


def _driver_exclusion(gpu: GpuInfo, variants: tuple[CudaVariant, ...]) -> str:
    """Why a node's driver is too old for every offered variant, and what fixes it."""
    need = f"driver {gpu.driver}, images need {CUDA13.min_driver_major}+"
    oldest = CUDA12.min_driver_major
    if CUDA12 in variants:
        return f"{need} (CUDA 12 images: {oldest}+): upgrade the driver"
    assert gpu.driver_major is not None
    if gpu.driver_major >= oldest:
        return f"{need}: upgrade the driver or enable the CUDA 12 images (images.cuda12: true)"
    return f"{need} ({oldest}+ with images.cuda12): upgrade the driver"


def _included_reason(gpu: GpuInfo, variant: CudaVariant) -> str:
    """ "GPU choices (driver 580.65.06)"; other variants than the default are named."""
    images = "" if variant == CUDA13 else f", {variant.title} images"
    return f"GPU choices{images} (driver {gpu.driver or 'unknown'})"


def _class_key(gpu: GpuInfo) -> tuple[Any, ...]:
    return (gpu.product or "", gpu.memory_mib or 0, gpu.max_per_user, gpu.sharing, gpu.resource, gpu.mig_resources)
