"""The GPU profiles: "GPU Environment (auto-select)" and "Fine-tuning (Unsloth + QLoRA)" on any GPU node whose
driver runs the images' CUDA, then one profile per GPU class (components.core.node_table) with a GPU count and a
node to pick. GPUs are requested only through the device plugin's resources.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from components.core.config_compute import ProfilesConfig
from components.core.image_specs import CUDA13, DRIVER_MAJOR_LABEL, CudaVariant, driver_terms, images_for
from components.core.node_table import ClassKey, gib, product_name
from components.core.nodes import GPU_RESOURCE, NodeInfo
from components.core.profile_options import (
    HOSTNAME_LABEL,
    ImagePicker,
    gpu_request,
    node_option,
    variant_title,
)
from components.core.profile_sizes import Sizer, size_text, with_size
from components.core.sizing import Size

GPU_ENV: dict[str, Any] = {"NVIDIA_VISIBLE_DEVICES": None}  # the device plugin sets it


@dataclass(frozen=True)
class GpuContext:
    """What every GPU profile shares: the CUDA variants on offer, the images, sizes and tolerations."""

    variants: tuple[CudaVariant, ...]
    picker: ImagePicker
    sizer: Sizer
    resources: ProfilesConfig  # the fixed gpu and fineTuning resources, when sizes cannot be computed
    tolerations: list[dict[str, str]]


def gpu_notes(classes: dict[ClassKey, list[NodeInfo]], variants: tuple[CudaVariant, ...]) -> list[str]:
    """What the plan says about the GPU nodes on offer: unknown drivers, none usable, only MIG."""
    notes = []
    unknown = sorted(n.name for nodes in classes.values() for n in nodes if n.gpu and n.gpu.driver is None)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        notes.append(
            f"driver unknown on {shown} (no {DRIVER_MAJOR_LABEL} label: GPU feature discovery not running?); "
            f"offered the {CUDA13.title} images, which need driver {CUDA13.min_driver_major}+"
        )
    if not classes:
        notes.append(
            "no usable GPU node (none has nvidia.com/gpu or MIG resources allocatable, Ready, "
            "schedulable, with tolerated taints and a driver the images support): no GPU profiles"
        )
    elif not _whole_gpu_nodes(classes, variants):
        notes.append("only MIG (mixed strategy) GPUs: no auto-select or fine-tuning profile; use the MIG profiles")
    return notes


def auto_select_profiles(classes: dict[ClassKey, list[NodeInfo]], ctx: GpuContext) -> list[dict[str, Any]]:
    """One GPU on any node with whole GPUs (not only MIG slices), newest CUDA first; and fine-tuning, with
    twice the per-GPU share of CPU and memory. None when no such node exists."""
    plain = _whole_gpu_nodes(classes, ctx.variants)
    if not plain:
        return []
    offered = list(plain)
    nodes = [n for v in offered for n in plain[v]]
    slots = {n.name: gpu_slots(n) for n in nodes}
    terms = {v: driver_terms(v, ctx.variants) for v in offered}
    common = {
        **gpu_request(GPU_RESOURCE, 1),
        "environment": dict(GPU_ENV),
        "tolerations": ctx.tolerations,
        "node_affinity_required": terms[offered[0]],
        "node_selector": {HOSTNAME_LABEL: None},
    }
    images = [(name, v) for v in offered for name in images_for(v, ctx.picker.refs)]
    names = [name for name, _ in images]
    affinities = {name: terms[v] for name, v in images}
    titles = {name: variant_title(name, v) for name, v in images}
    size = ctx.sizer.gpu(nodes, 1, slots)
    auto = {
        "display_name": "GPU Environment (auto-select)",
        "slug": "gpu",
        "description": "1 GPU on any GPU node; " + size_text(size, ctx.resources.gpu, "PyTorch with CUDA"),
        "kubespawner_override": {**ctx.sizer.resources(size, ctx.resources.gpu), **common},
        "profile_options": {"image": ctx.picker.option(names, affinities, titles)},
    }
    tuning_names = [f"jupyter-fine-tuning{v.suffix}" for v in offered]
    tuning_size = ctx.sizer.gpu(nodes, 1, slots, boost=2.0)
    tuning: dict[str, Any] = {
        "display_name": "Fine-tuning (Unsloth + QLoRA)",
        "slug": "fine-tuning",
        "description": "1 GPU, more memory; " + size_text(tuning_size, ctx.resources.fineTuning, "Unsloth, TRL, PEFT"),
        "kubespawner_override": {
            **ctx.sizer.resources(tuning_size, ctx.resources.fineTuning),
            **common,
            "image": ctx.picker.refs[tuning_names[0]],
        },
    }
    if len(tuning_names) > 1:
        tuning["profile_options"] = {"image": _tuning_images(tuning_names, ctx.picker.refs, affinities, titles)}
    return [auto, tuning]


def class_profiles(classes: dict[ClassKey, list[NodeInfo]], ctx: GpuContext) -> list[dict[str, Any]]:
    """One profile per GPU class, by slug; a slug two classes share gets "-2", "-3"."""
    profiles = sorted((_class_profile(nodes, key[-1], ctx) for key, nodes in classes.items()), key=lambda p: p["slug"])
    seen: dict[str, int] = {}
    for p in profiles:
        n = seen.get(p["slug"], 0)
        seen[p["slug"]] = n + 1
        if n:
            p["slug"] = f"{p['slug']}-{n + 1}"
    return profiles


def gpu_slots(node: NodeInfo) -> int:
    """The GPU requests a node can hold at once: whole GPUs or time-slices, else its MIG slices."""
    gpu = node.gpu
    assert gpu is not None
    return gpu.allocatable or sum(n for _, n in gpu.mig_resources)


def class_affinity(nodes: list[NodeInfo], driver: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep "any node" inside the class: by GPU labels (and the variant's driver terms) when every
    node has them, else by host name (which already names only nodes with a suitable driver)."""
    gpu = nodes[0].gpu
    assert gpu is not None
    if gpu.product and gpu.memory_mib:
        exprs = [
            {"key": "nvidia.com/gpu.product", "operator": "In", "values": [gpu.product]},
            {"key": "nvidia.com/gpu.memory", "operator": "In", "values": [str(gpu.memory_mib)]},
        ]
        if gpu.shared:
            exprs.append({"key": "nvidia.com/gpu.replicas", "operator": "Gt", "values": ["1"]})
        return [{"matchExpressions": exprs + term["matchExpressions"]} for term in driver]
    names = sorted(n.name for n in nodes)
    return [{"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": names}]}]


def _whole_gpu_nodes(
    classes: dict[ClassKey, list[NodeInfo]], variants: tuple[CudaVariant, ...]
) -> dict[CudaVariant, list[NodeInfo]]:
    """The nodes with whole GPUs (not only MIG slices) by CUDA variant, newest first; empty variants left out."""
    plain: dict[CudaVariant, list[NodeInfo]] = defaultdict(list)
    for key, nodes in classes.items():
        plain[key[-1]].extend(n for n in nodes if n.gpu and n.gpu.allocatable > 0 and n.gpu.resource == GPU_RESOURCE)
    return {v: plain[v] for v in variants if plain.get(v)}


def _tuning_images(
    names: list[str], refs: dict[str, str], affinities: dict[str, Any], titles: dict[str, str]
) -> dict[str, Any]:
    """The fine-tuning image per CUDA variant (only with more than one variant on offer)."""
    return {
        "display_name": "Image",
        "choices": {
            name: {
                "display_name": titles[name],
                "default": i == 0,
                "kubespawner_override": {"image": refs[name], "node_affinity_required": affinities[name]},
            }
            for i, name in enumerate(names)
        },
    }


def _gpu_choices(
    nodes: list[NodeInfo], slots: dict[str, int], size: Size | None, ctx: GpuContext
) -> tuple[dict[str, Any], str, str]:
    """The class's GPU picker (``size``: one GPU's), and how its title and slug describe the class."""
    gpu = nodes[0].gpu
    assert gpu is not None
    if gpu.mig_resources and gpu.allocatable == 0:
        # MIG mixed strategy: request the slice the user picks; one slice per user.
        choices = {
            _slug(r.removeprefix("nvidia.com/")): {
                "display_name": with_size(f"1 x MIG {r.removeprefix('nvidia.com/mig-')}", size),
                "default": i == 0,
                "kubespawner_override": {**gpu_request(r, 1), **ctx.sizer.resources(size, ctx.resources.gpu)},
            }
            for i, (r, _n) in enumerate(gpu.mig_resources)
        }
        kind = "MIG " + ", ".join(r.removeprefix("nvidia.com/mig-") for r, _ in gpu.mig_resources)
        return choices, kind, "mig-" + "-".join(r.removeprefix("nvidia.com/mig-") for r, _ in gpu.mig_resources)
    choices = {}
    for n in range(1, gpu.max_per_user + 1):
        n_size = ctx.sizer.gpu(nodes, n, slots)
        choices[str(n)] = {
            "display_name": with_size(f"{n} GPU" + ("s" if n > 1 else ""), n_size),
            "default": n == 1,
            "kubespawner_override": {**gpu_request(gpu.resource, n), **ctx.sizer.resources(n_size, ctx.resources.gpu)},
        }
    kind = f"up to {gpu.max_per_user} per server" + (f", {gpu.sharing}" if gpu.shared else "")
    short = ("mps" if gpu.sharing == "MPS" else "shared") if gpu.shared else f"x{gpu.max_per_user}"
    return choices, kind, short


def _class_profile(nodes: list[NodeInfo], variant: CudaVariant, ctx: GpuContext) -> dict[str, Any]:
    gpu = nodes[0].gpu
    assert gpu is not None
    product = product_name(gpu)
    slots = {n.name: gpu_slots(n) for n in nodes}
    size = ctx.sizer.gpu(nodes, 1, slots)
    choices, kind, short = _gpu_choices(nodes, slots, size, ctx)
    memory = f"{round(gpu.memory_mib / 1024)}gib" if gpu.memory_mib else "unknown-memory"
    images = images_for(variant, ctx.picker.refs)
    if variant != CUDA13:
        kind += f", {variant.title} images"
    return {
        "display_name": f"{product}, {gib(gpu.memory_mib)} ({kind})",
        "slug": _slug(f"gpu {product} {memory} {short} {variant.suffix}"),
        "description": f"{len(nodes)} node(s); "
        + size_text(size, ctx.resources.gpu, "pick GPUs and a node; CPU and memory grow with the GPUs"),
        "kubespawner_override": {
            **ctx.sizer.resources(size, ctx.resources.gpu),
            "environment": dict(GPU_ENV),
            "tolerations": ctx.tolerations,
            "node_affinity_required": class_affinity(nodes, driver_terms(variant, ctx.variants)),
        },
        "profile_options": {
            "gpus": {"display_name": "GPUs", "choices": choices},
            "node": node_option(nodes, product),
            "image": ctx.picker.option(images, titles={n: variant_title(n, variant) for n in images}),
        },
    }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
