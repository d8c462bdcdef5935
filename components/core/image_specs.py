"""What the Jupyter images are, which NVIDIA driver their CUDA needs, and in which order they build.

Pure data and functions (no Pulumi), so that build order, pre-pull grouping, the profiles' driver
gating and the tests share one description of the FROM chain in ``images/*/Dockerfile``.

The GPU images exist in CUDA variants: the default one follows the newest torch on PyPI (CUDA 13,
driver 580+); the optional CUDA 12 variant (``images.cuda12``) is built from the same Dockerfiles
with the ``requirements-cu12.txt`` locks for nodes whose driver is older. Each node gets the newest
variant its driver can run; nodes without the driver label get the default one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DIGEST_REF = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
# What the images are built for (ImageBuildsArgs.platform): every pod that runs one of them, the
# pre-pullers and the storage checks require such a node. arm64 would need its own builds and
# locks (torch's aarch64 wheels differ); until then arm64 nodes are left out with a reason.
IMAGE_OS = "linux"
IMAGE_ARCHITECTURES: tuple[str, ...] = ("amd64",)
OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"


def platform_expressions() -> list[dict]:
    """Node selector expressions for the nodes the images run on."""
    return [
        {"key": OS_LABEL, "operator": "In", "values": [IMAGE_OS]},
        {"key": ARCH_LABEL, "operator": "In", "values": list(IMAGE_ARCHITECTURES)},
    ]


def platform_problem(os: str | None, arch: str | None) -> str | None:
    """Why a node cannot run the images (None when it can)."""
    if os == IMAGE_OS and arch in IMAGE_ARCHITECTURES:
        return None
    built = ", ".join(f"{IMAGE_OS}/{a}" for a in IMAGE_ARCHITECTURES)
    return f"{os or '?'}/{arch or '?'} node: the images are built for {built} only"


def with_platform(terms: list[dict]) -> list[dict]:
    """Node selector terms ANDed with the platform: each term gets the expressions (an empty list: one term)."""
    if not terms:
        return [{"matchExpressions": platform_expressions()}]
    return [{**t, "matchExpressions": list(t.get("matchExpressions") or []) + platform_expressions()} for t in terms]


# GPU feature discovery's labels with the major version of the node's NVIDIA driver: the
# current name first, then the deprecated one it still writes (older releases write only that).
DRIVER_MAJOR_LABELS = ("nvidia.com/cuda.driver-version.major", "nvidia.com/cuda.driver.major")
DRIVER_MAJOR_LABEL = DRIVER_MAJOR_LABELS[0]
# The oldest driver branch that runs a CUDA major release's binaries (NVIDIA's CUDA
# minor-version compatibility: 12.x needs >= 525.60.13, 13.x needs >= 580). Only the major
# number is compared: that is all a node affinity can express, and 525.x before 525.60
# never shipped as a production driver.
MIN_DRIVER_MAJOR: dict[int, int] = {12: 525, 13: 580}


@dataclass(frozen=True)
class CudaVariant:
    """One CUDA build of the GPU images.

    key: short name ("cu13"); suffix: appended to image names and lock files ("" for the
    default variant); cuda_major: the CUDA major release of the locked torch (a test reads
    it from the lock).
    """

    key: str
    cuda_major: int
    suffix: str

    @property
    def min_driver_major(self) -> int:
        return MIN_DRIVER_MAJOR[self.cuda_major]

    @property
    def title(self) -> str:
        return f"CUDA {self.cuda_major}"


CUDA13 = CudaVariant("cu13", 13, "")
CUDA12 = CudaVariant("cu12", 12, "-cu12")


@dataclass(frozen=True)
class ImageSpec:
    """One image: its name (the Harbor repository), its base image in this set (None:
    BASE_IMAGE from outside), whether it needs a GPU node, and for GPU images the CUDA
    variant; ``folder`` is the Dockerfile's folder under images/ (default: the name);
    ``debian``: the Debian release of its outside base (images.baseImage for bookworm,
    images.trixieBaseImage for trixie)."""

    name: str
    base: str | None
    gpu_required: bool
    description: str
    cuda: CudaVariant | None = None
    folder: str = ""
    debian: str = "bookworm"

    @property
    def dockerfile_dir(self) -> str:
        return self.folder or self.name

    @property
    def lock_suffix(self) -> str:
        """Which lock files the build uses: requirements{suffix}.txt (a Dockerfile build argument)."""
        return self.cuda.suffix if self.cuda else ""


IMAGE_SPECS: tuple[ImageSpec, ...] = (
    ImageSpec("jupyter-ml-cpu", None, False, "Data science on CPU"),
    ImageSpec("jupyter-ml-gpu", None, True, "PyTorch with CUDA", CUDA13),
    ImageSpec("jupyter-fine-tuning", "jupyter-ml-gpu", True, "Unsloth, TRL, PEFT", CUDA13),
    ImageSpec("jupyter-agent-dev", "jupyter-ml-cpu", False, "LangChain, LangGraph, vector stores"),
    ImageSpec("jupyter-jax", None, True, "JAX with CUDA", CUDA13),
    ImageSpec("jupyter-rapids", None, True, "RAPIDS GPU dataframes", CUDA13),
    # trixie: evcxr needs a Rust newer than bookworm's (see images/jupyter-rust/Dockerfile)
    ImageSpec("jupyter-rust", None, False, "Rust kernel (evcxr)", debian="trixie"),
)
# Images a stack may leave out (stack config images.jax / images.rapids / images.rust): several GB each
# on every GPU node's disk, or a long build, for users that only some labs have.
OPTIONAL_IMAGES: tuple[str, ...] = ("jupyter-jax", "jupyter-rapids", "jupyter-rust")
# The CPU profile's image picker, in this order, as far as the stack builds them.
CPU_IMAGES: tuple[str, ...] = ("jupyter-ml-cpu", "jupyter-agent-dev", "jupyter-rust")
# The stage of a Dockerfile without the examples and labels; derived images build FROM its digest.
STACK_TARGET = "stack"


def variant_specs(variant: CudaVariant, specs: Iterable[ImageSpec] = IMAGE_SPECS) -> tuple[ImageSpec, ...]:
    """The GPU images of the default variant rebuilt for ``variant``: same Dockerfiles, other locks."""
    out = []
    for spec in specs:
        if spec.cuda != CUDA13:
            continue
        out.append(
            ImageSpec(
                spec.name + variant.suffix,
                spec.base + variant.suffix if spec.base else None,
                True,
                f"{spec.description} ({variant.title})",
                variant,
                spec.dockerfile_dir,
            )
        )
    return tuple(out)


def image_specs(cuda12: bool = False, without: Iterable[str] = ()) -> tuple[ImageSpec, ...]:
    """The images a stack builds: all of IMAGE_SPECS but the optional ones in ``without``, plus their
    CUDA 12 variants when ``images.cuda12`` is on."""
    left_out = set(without)
    unknown = left_out - set(OPTIONAL_IMAGES)
    if unknown:
        raise ValueError(f"only optional images can be left out ({', '.join(OPTIONAL_IMAGES)}), not {sorted(unknown)}")
    kept = tuple(s for s in IMAGE_SPECS if s.name not in left_out)
    return kept + (variant_specs(CUDA12, kept) if cuda12 else ())


def parents(specs: Iterable[ImageSpec]) -> set[str]:
    """Images that another image in ``specs`` is built FROM: their stack stage is pushed too."""
    return {s.base for s in specs if s.base is not None}


def images_for(variant: CudaVariant, names: Iterable[str], specs: Iterable[ImageSpec] | None = None) -> list[str]:
    """The GPU images of ``variant`` among ``names`` (those a stack has), in IMAGE_SPECS order."""
    have = set(names)
    return [s.name for s in (specs or image_specs(cuda12=True)) if s.cuda == variant and s.name in have]


ALL_IMAGE_NAMES: tuple[str, ...] = tuple(s.name for s in image_specs(cuda12=True))


def cuda_variants(cuda12: bool = False) -> tuple[CudaVariant, ...]:
    """The variants a stack offers, newest CUDA first (the order nodes are matched in)."""
    return (CUDA13, CUDA12) if cuda12 else (CUDA13,)


def variant_for_driver(driver_major: int | None, variants: Iterable[CudaVariant]) -> CudaVariant | None:
    """The newest variant a driver runs; unknown driver: the newest (the label is missing on
    clusters without GPU feature discovery, which should keep working); None: too old for all."""
    ordered = sorted(variants, key=lambda v: -v.cuda_major)
    if driver_major is None:
        return ordered[0] if ordered else None
    return next((v for v in ordered if driver_major >= v.min_driver_major), None)


def driver_terms(variant: CudaVariant, variants: Iterable[CudaVariant]) -> list[dict]:
    """Node selector terms (ORed) for the nodes ``variant_for_driver`` gives ``variant``.

    One term per driver label (either name may carry the version); Gt/Lt compare a label
    as an integer and fail on anything else. A node with neither label matches only the
    newest variant's DoesNotExist term, as in ``variant_for_driver``.
    """
    ordered = sorted(variants, key=lambda v: -v.cuda_major)
    if variant not in ordered:
        raise ValueError(f"{variant.key} is not among the offered variants")
    newer = ordered[: ordered.index(variant)]
    terms = []
    for label in DRIVER_MAJOR_LABELS:
        exprs = [{"key": label, "operator": "Gt", "values": [str(variant.min_driver_major - 1)]}]
        if newer:
            ceiling = min(v.min_driver_major for v in newer)
            exprs.append({"key": label, "operator": "Lt", "values": [str(ceiling)]})
        terms.append({"matchExpressions": exprs})
    if not newer:
        terms.append(
            {"matchExpressions": [{"key": label, "operator": "DoesNotExist"} for label in DRIVER_MAJOR_LABELS]}
        )
    return terms


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


def gpu_images(specs: Iterable[ImageSpec] = IMAGE_SPECS) -> dict[str, CudaVariant]:
    """The images that only make sense on GPU nodes, with the CUDA variant each was built for."""
    return {s.name: s.cuda or CUDA13 for s in specs if s.gpu_required}


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
