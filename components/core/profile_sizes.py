"""Sizes as the spawn form shows them: KubeSpawner resources, the size picker and the descriptions' texts.

``components.core.sizing`` computes the sizes from plain numbers; this module applies one stack's
``profiles.sizing`` (reserve, guarantee ratio, on or off) and falls back to the fixed ``profiles.cpu``,
``profiles.gpu`` or ``profiles.fineTuning`` resources where no size can be computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.core.config_compute import Resources, SizingConfig
from components.core.nodes import NodeInfo, parse_quantity
from components.core.sizing import Budget, Size, budget, fraction_sizes, gpu_size, memory_spec


def fixed_resources(r: Resources) -> dict[str, Any]:
    return {
        "cpu_guarantee": r.cpuGuarantee,
        "cpu_limit": r.cpuLimit,
        "mem_guarantee": r.memGuarantee,
        "mem_limit": r.memLimit,
    }


def size_resources(size: Size, ratio: float) -> dict[str, Any]:
    """A size as KubeSpawner resources: the size is the limit, the guarantee ``ratio`` of it."""
    return {
        "cpu_guarantee": round(size.cpu * ratio, 3),
        "cpu_limit": size.cpu,
        "mem_guarantee": memory_spec(size.memory_gib * ratio),
        "mem_limit": memory_spec(size.memory_gib),
    }


class Sizer:
    """One stack's sizing settings applied to nodes (reserve, guarantee ratio, fallbacks)."""

    def __init__(self, sizing: SizingConfig) -> None:
        self.sizing = sizing
        self.reserve_memory = parse_quantity(sizing.reserveMemory)

    def budget(self, node: NodeInfo) -> Budget | None:
        return budget(node, self.sizing.reserveCpu, self.reserve_memory)

    def resources(self, size: Size | None, fallback: Resources) -> dict[str, Any]:
        return size_resources(size, self.sizing.guaranteeRatio) if size else fixed_resources(fallback)

    def gpu(self, nodes: list[NodeInfo], gpus: int, per_node: dict[str, int], boost: float = 1.0) -> Size | None:
        """CPU and memory for ``gpus`` GPUs on any of ``nodes`` (None: sizing off or a node without capacity)."""
        if not self.sizing.enabled:
            return None
        budgets = [(self.budget(n), per_node[n.name]) for n in nodes]
        if any(b is None for b, _ in budgets):
            return None
        return gpu_size([(b, k) for b, k in budgets if b is not None], gpus, boost)


@dataclass(frozen=True)
class CpuSizes:
    """The CPU servers' sizes (smallest first), the one picked by default, and why some are missing."""

    sizes: list[Size]
    default: Size | None
    notes: list[str]


def cpu_sizes(sizer: Sizer, user_nodes: list[NodeInfo]) -> CpuSizes:
    """Fractions of a typical node CPU servers can run on; the default is the first of at least one core."""
    if not sizer.sizing.enabled:
        return CpuSizes([], None, [])
    budgets = [b for n in user_nodes if (b := sizer.budget(n)) is not None]
    sizes, why = fraction_sizes(budgets, sizer.sizing.fractions, sizer.sizing.maxShare)
    notes = list(why)
    if not sizes:
        notes.append(
            "no node CPU servers can run on reports enough CPU and memory for a size: "
            "CPU profiles use the fixed profiles.cpu resources"
        )
    default = next((z for z in sizes if z.cpu >= 1), sizes[-1]) if sizes else None
    return CpuSizes(sizes, default, notes)


def size_option(sizes: CpuSizes, ratio: float) -> dict[str, Any] | None:
    """The CPU profiles' size picker (None with fewer than two sizes: nothing to pick)."""
    if len(sizes.sizes) < 2:
        return None
    return {
        "display_name": "Size",
        "choices": {
            z.key: {
                "display_name": z.label,
                "default": z == sizes.default,
                "kubespawner_override": size_resources(z, ratio),
            }
            for z in sizes.sizes
        },
    }


def resource_text(r: Resources, what: str) -> str:
    return f"{what}; {r.cpuGuarantee:g}-{r.cpuLimit:g} CPU, {r.memGuarantee}-{r.memLimit} memory"


def size_text(size: Size | None, fallback: Resources, what: str) -> str:
    return f"{what}; {size.label}" if size else resource_text(fallback, what)


def cpu_text(sizes: list[Size], fallback: Resources, what: str) -> str:
    if not sizes:
        return resource_text(fallback, what)
    if len(sizes) == 1:
        return f"{what}; {sizes[0].label}"
    return f"{what}; {sizes[0].label} to {sizes[-1].label}"


def with_size(text: str, size: Size | None) -> str:
    return f"{text} · {size.label}" if size else text
