"""The stack config of what a user server may use and where it runs: resources, profile sizing, GPU
scheduling and where the node list comes from (``profiles``, ``nodes``)."""

from __future__ import annotations

import math
import re

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from components.core.config_fields import (
    Quantity,
    StrictModel,
)

MAX_CORES = 4096
MAX_MEMORY_BYTES = 64 * 1024**4


def _bytes(quantity: str) -> float:
    """A memory quantity in bytes, for comparisons (KubeSpawner's K/M/G/T are 1024-based; so here)."""
    m = re.fullmatch(r"([0-9.]+)([KMGTPE]i?|[kmgt]?)", quantity)
    if not m:
        return math.inf
    units = {"": 1, "k": 1e3, "m": 1e-3, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
    unit = m.group(2)
    factor = units.get(unit.removesuffix("i"), 1024**6)  # KubeSpawner reads "G" and "Gi" alike
    return float(m.group(1)) * factor


class Resources(StrictModel):
    cpuGuarantee: float = Field(description="CPU cores reserved for the server.")
    cpuLimit: float = Field(description="CPU cores the server may use at most.")
    memGuarantee: Quantity = Field(description="Memory reserved, e.g. 4G.")
    memLimit: Quantity = Field(description="Memory limit, e.g. 8G.")

    @model_validator(mode="after")
    def _order(self) -> Resources:
        if not (math.isfinite(self.cpuGuarantee) and math.isfinite(self.cpuLimit)):
            raise ValueError("cpuGuarantee and cpuLimit must be finite numbers of cores")
        if self.cpuGuarantee <= 0 or self.cpuLimit < self.cpuGuarantee:
            raise ValueError("need 0 < cpuGuarantee <= cpuLimit")
        if self.cpuLimit > MAX_CORES:
            raise ValueError(f"cpuLimit above {MAX_CORES} cores is no machine's")
        guarantee, limit = _bytes(self.memGuarantee), _bytes(self.memLimit)
        if guarantee > limit:
            raise ValueError(f"memGuarantee ({self.memGuarantee}) is above memLimit ({self.memLimit})")
        if limit > MAX_MEMORY_BYTES:
            raise ValueError("memLimit above 64Ti is no machine's")
        return self


class SizingConfig(StrictModel):
    enabled: bool = Field(
        True,
        description="Offer sizes computed from the nodes (CPU: a size picker; GPU: CPU and memory in "
        "proportion to the GPUs taken); false: the fixed profiles.cpu/gpu/fineTuning resources.",
    )
    fractions: list[float] = Field(
        [0.0625, 0.125, 0.25, 0.5],
        description="CPU profile sizes as fractions of a typical user node (after the reserve).",
    )
    maxShare: float = Field(0.5, description="Largest fraction of a node one CPU-only server may take.")
    reserveCpu: float = Field(1.0, description="CPU cores per node kept for system pods and daemons.")
    reserveMemory: Quantity = Field("2Gi", description="Memory per node kept for system pods and daemons.")
    guaranteeRatio: float = Field(
        1.0,
        description="Guarantee as a fraction of the size (the limit); 1 gives Guaranteed QoS and pods that "
        "pack without overcommitting a node.",
    )

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("at least one fraction, for example [0.125, 0.25, 0.5]")
        bad = [f for f in v if not 0 < f <= 1]
        if bad:
            raise ValueError(f"fractions must be in (0, 1], not {bad}")
        return sorted(set(v))

    @field_validator("maxShare", "guaranteeRatio")
    @classmethod
    def _unit_interval(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise ValueError("must be in (0, 1]")
        return v

    @field_validator("reserveCpu")
    @classmethod
    def _reserve(cls, v: float) -> float:
        if v < 0:
            raise ValueError("must be 0 or more")
        return v


class ProfilesConfig(StrictModel):
    sizing: SizingConfig = Field(SizingConfig(), description="Server sizes computed from node capacity.")
    cpu: Resources = Field(
        Resources(cpuGuarantee=0.5, cpuLimit=2, memGuarantee="2G", memLimit="8G"),
        description="Resources of the CPU profiles (Standard Environment, Agent Development) when sizing is off "
        "or no node reports its capacity.",
    )
    gpu: Resources = Field(
        Resources(cpuGuarantee=2, cpuLimit=8, memGuarantee="8G", memLimit="32G"),
        description="Resources of the GPU profiles when sizing is off.",
    )
    fineTuning: Resources = Field(
        Resources(cpuGuarantee=4, cpuLimit=16, memGuarantee="24G", memLimit="64G"),
        description="Resources of the fine-tuning profile (one GPU, more memory) when sizing is off.",
    )
    gpuTolerations: list[dict[str, str]] = Field(
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        description="Tolerations GPU pods carry; GPU nodes with other NoSchedule taints are left out.",
    )
    cpuPreferNonGpuNodes: bool = Field(
        True,
        description="CPU-only servers prefer nodes without GPUs (preferred, never required: a one-node lab "
        "still works), so GPU machines keep their CPU and memory for GPU users.",
    )
    liveAvailability: bool = Field(True, description="Refresh GPU choices at spawn time with free/total GPUs per node.")
    gpuOverview: bool = Field(
        True,
        description="The GPU overview page in the hub's Services menu: who holds which GPU, since when, last "
        "activity (users see their own servers, admins all); needs liveAvailability.",
    )
    dcgmExporterUrl: str | None = Field(
        None,
        description="Metrics URL of NVIDIA's DCGM exporter in the cluster (e.g. "
        "http://nvidia-dcgm-exporter.gpu-operator.svc:9400/metrics): the GPU overview adds utilization and memory "
        "per GPU.",
    )
    maxGpusPerUser: int = Field(
        2,
        ge=0,
        le=1024,
        description="GPUs one user may hold across all their running servers (0: no limit); checked before "
        "every spawn.",
    )
    gpuQuota: dict[str, int] = Field(
        {}, description="Per-group GPU limits, e.g. {ml-team: 8}; a user gets the largest of theirs (0: no limit)."
    )
    adminMaxGpus: int | None = Field(
        None, ge=0, le=1024, description="GPU limit of hub admins (0: no limit); unset: the same rules as users."
    )
    gpuGroups: list[str] = Field(
        [], description="If set, only members of these groups see GPU profiles (live availability on)."
    )

    @field_validator("dcgmExporterUrl")
    @classmethod
    def _metrics_url(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?", v):
            raise ValueError(
                "an http:// or https:// URL of host, optional port and path, e.g. http://dcgm:9400/metrics"
            )
        return v

    @field_validator("gpuQuota")
    @classmethod
    def _quota(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {g: n for g, n in v.items() if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 1024}
        if bad:
            raise ValueError(f"group limits must be whole numbers 0-1024, not {bad}")
        return dict(sorted(v.items()))

    @field_validator("gpuTolerations")
    @classmethod
    def _tol(cls, v: list[dict[str, str]]) -> list[dict[str, str]]:
        allowed = {"key", "operator", "value", "effect"}
        for t in v:
            extra = set(t) - allowed
            if extra:
                raise ValueError(f"toleration keys must be among {sorted(allowed)}, not {sorted(extra)}")
            if t.get("operator", "Equal") not in ("Equal", "Exists"):
                raise ValueError("toleration operator must be Equal or Exists")
            if t.get("effect", "") not in ("", "NoSchedule", "PreferNoSchedule", "NoExecute"):
                raise ValueError("toleration effect must be NoSchedule, PreferNoSchedule or NoExecute")
        return v


class NodesConfig(StrictModel):
    file: str | None = Field(
        None,
        description="Read nodes from this `kubectl get nodes -o json` file instead of the cluster "
        "(air-gapped previews).",
    )
