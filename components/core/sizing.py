"""Server sizes computed from the nodes: how much CPU and memory a user may pick, and what a GPU brings.

CPU profiles offer fractions of a *typical* user node (the median of the nodes CPU servers can run
on, after a per-node reserve for system pods), rounded down to sensible units, and only sizes that
fit at least one such node. GPU pods get CPU and memory in proportion to the GPUs they take: k of a
node's n GPUs come with k/n of its CPU and memory (minus the reserve), computed on the smallest node
of the class so that the size fits every node a user can pick; fine-tuning gets twice the per-GPU
share. So GPUs never sit idle because CPU-only servers took their node's memory, and nobody is
offered a size the hardware cannot hold.

Pure functions over plain numbers (cores and GiB); ``components.core.profiles`` turns sizes into
KubeSpawner overrides.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from components.core.nodes import NodeInfo

GIB = 1024**3
# Rounded-down units: 1, 1.5, 2, 3, 4, 6, 8, 12, ... (each about 1.4x the last), and 0.25/0.5 below 1.
_NICE: tuple[float, ...] = (0.25, 0.5, *sorted({m * 2**e for e in range(0, 14) for m in (1.0, 1.5)}))
MIN_CPU = 0.25
MIN_MEMORY_GIB = 1.0  # below this a JupyterLab with one kernel is killed by the OOM killer


def nice_floor(value: float) -> float | None:
    """The largest sensible unit not above ``value`` (None below the smallest)."""
    best = None
    for unit in _NICE:
        if unit <= value:  # strictly: a size may come out a unit smaller, never a hair larger than the node
            best = unit
        else:
            break
    return best


@dataclass(frozen=True, order=True)
class Size:
    """CPU cores and memory in GiB of one server (guarantee = limit x ratio, see profiles)."""

    cpu: float
    memory_gib: float

    @property
    def key(self) -> str:
        """A stable option key: "4cpu-16gib"."""
        return f"{self.cpu:g}cpu-{self.memory_gib:g}gib"

    @property
    def label(self) -> str:
        """What the spawn form shows: "4 CPU · 16 GiB"."""
        return f"{self.cpu:g} CPU · {self.memory_gib:g} GiB"


def memory_spec(gib: float) -> str:
    """KubeSpawner's byte specification (its G and M are 1024-based): "16G", "1536M"."""
    if abs(gib - round(gib)) < 1e-9:
        return f"{round(gib)}G"
    return f"{math.floor(gib * 1024)}M"


@dataclass(frozen=True)
class Budget:
    """What one node can give user servers: allocatable minus the reserve."""

    name: str
    cpu: float
    memory_gib: float


def budget(node: NodeInfo, reserve_cpu: float, reserve_memory_bytes: int) -> Budget | None:
    """None when the node does not report CPU and memory, or the reserve takes all of it."""
    if node.cpu_millis is None or node.memory_bytes is None:
        return None
    cpu = node.cpu_millis / 1000 - reserve_cpu
    memory = (node.memory_bytes - reserve_memory_bytes) / GIB
    if cpu < MIN_CPU or memory < MIN_MEMORY_GIB:
        return None
    return Budget(node.name, cpu, memory)


def _share(b: Budget, share: float) -> Size | None:
    cpu, memory = nice_floor(b.cpu * share), nice_floor(b.memory_gib * share)
    if cpu is None or memory is None or memory < MIN_MEMORY_GIB:
        return None
    return Size(cpu, memory)


def typical(budgets: Sequence[Budget]) -> Budget:
    """The lower median by (memory, CPU): one huge machine does not set the sizes of a lab of small ones."""
    ordered = sorted(budgets, key=lambda b: (b.memory_gib, b.cpu, b.name))
    return ordered[(len(ordered) - 1) // 2]


def fits(size: Size, b: Budget) -> bool:
    return size.cpu <= b.cpu and size.memory_gib <= b.memory_gib


def fraction_sizes(
    budgets: Sequence[Budget], fractions: Iterable[float], max_share: float
) -> tuple[list[Size], list[str]]:
    """Sizes for CPU servers: each fraction (up to ``max_share``) of the typical node, ascending and
    without duplicates; and why a fraction gave no size (for the plan)."""
    if not budgets:
        return [], []
    base = typical(budgets)
    sizes: set[Size] = set()
    why: list[str] = []
    for f in sorted(set(fractions)):
        size = _share(base, f)
        if f > max_share:
            why.append(f"size {f:g} of a node left out: above profiles.sizing.maxShare ({max_share:g})")
        elif size is None:
            why.append(
                f"size {f:g} of a node left out: below {MIN_CPU:g} CPU or {MIN_MEMORY_GIB:g} GiB on the typical "
                f"node {base.name} ({base.cpu:g} CPU, {base.memory_gib:.1f} GiB after the reserve)"
            )
        else:
            sizes.add(size)
    return sorted(s for s in sizes if any(fits(s, b) for b in budgets)), why


def gpu_size(budgets: Sequence[tuple[Budget, int]], gpus: int, boost: float = 1.0) -> Size | None:
    """CPU and memory for ``gpus`` of a node's n GPUs (``boost`` x k/n, at most the whole node), on the
    smallest such share among ``budgets`` (budget, n) so it fits every one of them."""
    sizes = [_share(b, min(1.0, boost * gpus / n)) for b, n in budgets if n > 0]
    if not sizes or any(s is None for s in sizes):
        return None
    return Size(min(s.cpu for s in sizes if s), min(s.memory_gib for s in sizes if s))
