"""What the four Jupyter images are and in which order they build.

Pure data and functions (no Pulumi), so that build order, pre-pull grouping and the
tests share one description of the FROM chain in ``images/*/Dockerfile``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DIGEST_REF = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageSpec:
    """One image: its folder under images/, its base image in this set (None: BASE_IMAGE
    from outside), and whether it needs a GPU node."""

    name: str
    base: str | None
    gpu_required: bool
    description: str


IMAGE_SPECS: tuple[ImageSpec, ...] = (
    ImageSpec("jupyter-ml-cpu", None, False, "Data science on CPU"),
    ImageSpec("jupyter-ml-gpu", None, True, "PyTorch with CUDA"),
    ImageSpec("jupyter-fine-tuning", "jupyter-ml-gpu", True, "Unsloth, TRL, PEFT"),
    ImageSpec("jupyter-agent-dev", "jupyter-ml-cpu", False, "LangChain, LangGraph, vector stores"),
)


def specs_by_name(specs: Iterable[ImageSpec] = IMAGE_SPECS) -> dict[str, ImageSpec]:
    """Index specs by name, rejecting duplicates (two folders cannot share a repository)."""
    out: dict[str, ImageSpec] = {}
    for spec in specs:
        if spec.name in out:
            raise ValueError(f"duplicate image spec {spec.name!r}")
        out[spec.name] = spec
    return out


def build_order(specs: Iterable[ImageSpec] = IMAGE_SPECS) -> list[str]:
    """Names in an order where every image comes after its base.

    Stable: among images whose bases are built, the listed order is kept, so the order
    is deterministic. Raises ValueError for an unknown base or a cycle, which would
    otherwise surface as a confusing pull failure in the middle of a deployment.
    """
    by_name = specs_by_name(specs)
    for spec in by_name.values():
        if spec.base is not None and spec.base not in by_name:
            raise ValueError(f"image {spec.name!r} is built FROM unknown image {spec.base!r}")
    order: list[str] = []
    done: set[str] = set()
    pending = list(by_name.values())
    while pending:
        ready = [s for s in pending if s.base is None or s.base in done]
        if not ready:
            names = ", ".join(sorted(s.name for s in pending))
            raise ValueError(f"cycle in the FROM chain among: {names}")
        for spec in ready:
            order.append(spec.name)
            done.add(spec.name)
        pending = [s for s in pending if s.name not in done]
    return order


def gpu_images(specs: Iterable[ImageSpec] = IMAGE_SPECS) -> set[str]:
    """Names of the images that only make sense on GPU nodes."""
    return {s.name for s in specs if s.gpu_required}


def check_digest_refs(refs: Mapping[str, str], required: Iterable[str]) -> dict[str, str]:
    """Validate given image references: every required image present and digest-pinned.

    A tag can move under a running hub, so only ``name@sha256:<64 hex>`` is accepted.
    """
    missing = [name for name in required if name not in refs]
    if missing:
        raise ValueError(f"no image reference given for: {', '.join(missing)}")
    for name, ref in refs.items():
        if not DIGEST_REF.match(ref):
            raise ValueError(
                f"image reference for {name!r} must be pinned by digest "
                f"('<repository>@sha256:<64 hex digits>'), got {ref!r}"
            )
    return dict(refs)
