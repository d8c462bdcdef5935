"""Spawner profiles computed from the node inventory: inventory in, plain sorted data out.

Shape of the result (KubeSpawner's ``profile_list``):

- CPU profiles: "Standard Environment (CPU)" (default) and "Agent Development".
- "GPU Environment (auto-select)" and "Fine-tuning (Unsloth + QLoRA)": one GPU on any GPU node whose
  NVIDIA driver runs the images' CUDA (``nvidia.com/cuda.driver.major``); with ``images.cuda12`` the
  CUDA 12 images are offered for nodes with older drivers, and each image choice carries the affinity
  of the nodes its variant is for (``components.core.image_specs.driver_terms``).
- One profile per GPU *class* (same product, memory, per-node count, sharing and MIG layout), with a GPU
  count option up to what a node of that class offers and a node option that names every node of the
  class. Grouping keeps the values small at hundreds of nodes while every node stays reachable by name.

KubeSpawner merges dict overrides into the spawner and keeps them between spawns of the same server, so
every profile sets every key that any choice touches (``None`` removes a dict entry). GPUs are requested
only through the device plugin's resources; CPU pods get ``NVIDIA_VISIBLE_DEVICES=void``.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from typing import Any

from pydantic import BaseModel, ConfigDict

from components.core.config import StackConfig
from components.core.image_rule import form_regex
from components.core.image_specs import (
    CPU_IMAGES,
    CUDA12,
    CUDA13,
    DRIVER_MAJOR_LABEL,
    CudaVariant,
    cuda_variants,
    driver_terms,
    images_for,
    platform_problem,
    variant_for_driver,
    with_platform,
)
from components.core.nodes import GPU_RESOURCE, GpuInfo, Inventory, NodeInfo, blocking_taints, parse_quantity
from components.core.sizing import Budget, Size, budget, fraction_sizes, gpu_size, memory_spec
from components.core.storage_spec import shared_code_host, shared_code_mounts, verification_nodes

HOSTNAME_LABEL = "kubernetes.io/hostname"
ANY_NODE = "*"  # the node option's "any node" key: never a valid node name, so it cannot collide with one
NODE_CHOICES_MAX = 50  # nodes listed by name in a class's node option; larger classes get a name field
# z2jh's scheduling.userPods.tolerations defaults; a profile that sets tolerations replaces the list.
USER_POD_TOLERATIONS: tuple[dict[str, str], ...] = (
    {"effect": "NoSchedule", "key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user"},
    {"effect": "NoSchedule", "key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user"},
)
CPU_PREFERENCE: dict[str, Any] = {
    "weight": 100,
    "preference": {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "NotIn", "values": ["true"]}]},
}
CONTROL_PLANE_TOLERATIONS: tuple[dict[str, str], ...] = (
    {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
    {"effect": "NoSchedule", "key": "node-role.kubernetes.io/master", "operator": "Exists"},
)


class NodeRow(BaseModel):
    """One line of the plan's node table."""

    model_config = ConfigDict(frozen=True)
    name: str
    control_plane: bool
    gpus: str  # "2 x NVIDIA GeForce RTX 4090, 24 GiB"; "-" without usable GPUs; "?" when unreadable
    included: bool  # offered in the GPU profiles
    reason: str


class ProfilePlan(BaseModel):
    """The profile list plus what the plan command explains about it."""

    model_config = ConfigDict(frozen=True)
    profiles: list[dict[str, Any]]
    nodes: list[NodeRow]
    gpu_nodes: list[str]
    notes: list[str]
    checked_nodes: list[str] = []  # where verifyStorage runs its Jobs (empty when it is off)
    node_addresses: list[str] = []  # every node's IPs, which user pods may not reach (egress_spec)


def _gib(mib: int | None) -> str:
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
    text = f"{gpu.count} x {product_name(gpu)}, {_gib(gpu.memory_mib)}"
    if gpu.shared:
        text += f", {gpu.sharing} ({gpu.allocatable} slots, 1 per user)"
    if node.gpu_capacity > node.gpu_allocatable > 0:
        text += f", {node.gpu_capacity - node.gpu_allocatable} of {node.gpu_capacity} unhealthy"
    if gpu.mig_resources:
        text += ", MIG " + " + ".join(f"{n} x {r.removeprefix('nvidia.com/mig-')}" for r, n in gpu.mig_resources)
    return text


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


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


def _resources(r: Any) -> dict[str, Any]:
    return {
        "cpu_guarantee": r.cpuGuarantee,
        "cpu_limit": r.cpuLimit,
        "mem_guarantee": r.memGuarantee,
        "mem_limit": r.memLimit,
    }


def _size_resources(size: Size, ratio: float) -> dict[str, Any]:
    """A size as KubeSpawner resources: the size is the limit, the guarantee ``ratio`` of it."""
    return {
        "cpu_guarantee": round(size.cpu * ratio, 3),
        "cpu_limit": size.cpu,
        "mem_guarantee": memory_spec(size.memory_gib * ratio),
        "mem_limit": memory_spec(size.memory_gib),
    }


class _Sizer:
    """Turns the inventory into sizes for one build_profiles call (config, reserve, fallbacks)."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.sizing = cfg.profiles.sizing
        self.reserve_memory = parse_quantity(self.sizing.reserveMemory)

    def budget(self, node: NodeInfo) -> Budget | None:
        return budget(node, self.sizing.reserveCpu, self.reserve_memory)

    def resources(self, size: Size | None, fallback: Any) -> dict[str, Any]:
        return _size_resources(size, self.sizing.guaranteeRatio) if size else _resources(fallback)

    def gpu(self, nodes: list[NodeInfo], gpus: int, per_node: dict[str, int], boost: float = 1.0) -> Size | None:
        """CPU and memory for ``gpus`` GPUs on any of ``nodes`` (None: sizing off or a node without capacity)."""
        if not self.sizing.enabled:
            return None
        budgets = [(self.budget(n), per_node[n.name]) for n in nodes]
        if any(b is None for b, _ in budgets):
            return None
        return gpu_size([(b, k) for b, k in budgets if b is not None], gpus, boost)


def _gpu_slots(node: NodeInfo) -> int:
    """The GPU requests a node can hold at once: whole GPUs or time-slices, else its MIG slices."""
    gpu = node.gpu
    assert gpu is not None
    return gpu.allocatable or sum(n for _, n in gpu.mig_resources)


def _gpu_request(resource: str | None, count: int) -> dict[str, Any]:
    req = {resource: str(count)} if resource else {}
    return {"extra_resource_limits": dict(req), "extra_resource_guarantees": dict(req)}


def _cpu_images(cfg: StackConfig) -> list[str]:
    """The CPU profile's image choices: the CPU images this stack builds (jupyter-rust only with images.rust)."""
    built = {s.name for s in cfg.images.specs()}
    return [name for name in CPU_IMAGES if name in built]


def _image_option(
    cfg: StackConfig,
    refs: dict[str, str],
    names: list[str],
    affinities: dict[str, list[dict[str, Any]]] | None = None,
    titles: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The image picker; ``affinities`` gives an image choice the node terms its CUDA variant needs."""
    choices: dict[str, Any] = {}
    for index, name in enumerate(names):
        override: dict[str, Any] = {"image": refs[name]}
        if affinities and name in affinities:
            override["node_affinity_required"] = affinities[name]
        choices[name] = {
            "display_name": (titles or {}).get(name, name),
            "default": index == 0,
            "kubespawner_override": override,
        }
    return {
        "display_name": "Image",
        "choices": choices,
        "unlisted_choice": {
            "enabled": True,
            "display_name": f"Other image from {cfg.registry.host}",
            "display_name_in_choices": f"Other image from {cfg.registry.host}...",
            "validation_regex": form_regex(cfg.registry.host, cfg.registry.project),
            "validation_message": (
                f"Only images from {cfg.registry.host}/{cfg.registry.project}/<name> with a tag or digest"
            ),
            "kubespawner_override": {"image": "{value}"},
        },
    }


def _require_platform(profiles: list[dict[str, Any]], avoid: list[str]) -> None:
    """Every required node affinity, in every profile and choice, also requires the images' OS and
    architecture (a Windows or arm64 node never gets a server whose image cannot start there) and
    keeps off the nodes in ``avoid`` (whose data could not be read: what they claim is unknown)."""
    extra = [{"key": HOSTNAME_LABEL, "operator": "NotIn", "values": avoid}] if avoid else []
    for p in profiles:
        overrides = [p["kubespawner_override"]]
        for option in p.get("profile_options", {}).values():
            overrides += [c.get("kubespawner_override", {}) for c in option.get("choices", {}).values()]
            overrides.append(option.get("unlisted_choice", {}).get("kubespawner_override", {}))
        for ov in overrides:
            if "node_affinity_required" in ov:
                terms = with_platform(ov["node_affinity_required"])
                ov["node_affinity_required"] = [{**t, "matchExpressions": t["matchExpressions"] + extra} for t in terms]


def _complete(profiles: list[dict[str, Any]], neutral: dict[str, Any]) -> None:
    """Make every profile reset every key any profile or choice sets (None drops a dict entry)."""
    dict_keys: dict[str, set[str]] = defaultdict(set)
    all_keys: set[str] = set()

    def visit(override: dict[str, Any]) -> None:
        for k, v in override.items():
            all_keys.add(k)
            if isinstance(v, dict):
                dict_keys[k].update(v)

    for p in profiles:
        visit(p["kubespawner_override"])
        for option in p.get("profile_options", {}).values():
            for choice in option.get("choices", {}).values():
                visit(choice.get("kubespawner_override", {}))
            visit(option.get("unlisted_choice", {}).get("kubespawner_override", {}))
    for p in profiles:
        ov = p["kubespawner_override"]
        covered = set(ov)
        for option in p.get("profile_options", {}).values():
            per_choice = [set(c.get("kubespawner_override", {})) for c in option.get("choices", {}).values()]
            if per_choice:
                covered |= set.intersection(*per_choice)
        for key in sorted(all_keys):
            if key in dict_keys:
                current = ov.get(key, {})
                ov[key] = {sub: current.get(sub) for sub in sorted(dict_keys[key])}
            elif key not in covered:
                if key not in neutral:
                    raise AssertionError(f"no neutral value for KubeSpawner key {key}")
                ov[key] = neutral[key]
        p["kubespawner_override"] = dict(sorted(ov.items()))


def build_profiles(cfg: StackConfig, inventory: Inventory, refs: dict[str, str]) -> ProfilePlan:
    """The spawner's profile list for this config, these nodes and these image references."""
    gpu_tol = [dict(sorted(t.items())) for t in cfg.profiles.gpuTolerations]
    user_tol = [dict(t) for t in USER_POD_TOLERATIONS]
    gpu_pod_tol = user_tol + [t for t in gpu_tol if t not in user_tol]
    cpu_env = {"NVIDIA_VISIBLE_DEVICES": "void"}
    gpu_env = {"NVIDIA_VISIBLE_DEVICES": None}

    variants = cuda_variants(cfg.images.cuda12)
    rows: list[NodeRow] = []
    classes: dict[tuple[Any, ...], list[NodeInfo]] = defaultdict(list)
    for node in inventory.nodes:
        user_block = blocking_taints(node, user_tol)
        row = {"name": node.name, "control_plane": node.control_plane}
        if node.gpu is None:
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
            rows.append(NodeRow(**row, gpus=gpus, included=False, reason=reason))
            continue
        why = _exclusion(node, gpu_tol)
        variant = variant_for_driver(node.gpu.driver_major, variants)
        if why is None and variant is None:
            why = _driver_exclusion(node.gpu, variants)
        reason = why or _included_reason(node.gpu, variant)  # type: ignore[arg-type]
        rows.append(NodeRow(**row, gpus=describe_gpus(node), included=why is None, reason=reason))
        if why is None and variant is not None:
            classes[(*_class_key(node.gpu), variant)].append(node)
    known = {n.name for n in inventory.nodes}
    for skipped in inventory.skipped:
        reason = skipped.reason if skipped.name in known else f"{skipped.reason}; no user pods"
        rows.append(NodeRow(name=skipped.name, control_plane=False, gpus="?", included=False, reason=reason))
    rows.sort(key=lambda r: (r.name, r.reason))

    sizer = _Sizer(cfg)
    notes: list[str] = []
    cpu_sizes: list[Size] = []
    if cfg.profiles.sizing.enabled:
        cpu_nodes = [
            n
            for n in inventory.nodes
            if n.ready and n.schedulable and not blocking_taints(n, user_tol) and not platform_problem(n.os, n.arch)
        ]
        budgets = [b for n in cpu_nodes if (b := sizer.budget(n)) is not None]
        cpu_sizes, why = fraction_sizes(budgets, cfg.profiles.sizing.fractions, cfg.profiles.sizing.maxShare)
        notes += why
        if not cpu_sizes:
            notes.append(
                "no node CPU servers can run on reports enough CPU and memory for a size: "
                "CPU profiles use the fixed profiles.cpu resources"
            )
    default_size = next((z for z in cpu_sizes if z.cpu >= 1), cpu_sizes[-1]) if cpu_sizes else None
    size_option = _size_option(cpu_sizes, default_size, cfg.profiles.sizing.guaranteeRatio)
    neutral: dict[str, Any] = {"tolerations": user_tol, "node_affinity_required": [], "node_affinity_preferred": []}
    cpu_base: dict[str, Any] = {
        # CPU servers go to GPU nodes only when nothing else has room: there they take the CPU and
        # memory that come with the GPUs.
        "node_affinity_preferred": [CPU_PREFERENCE] if cfg.profiles.cpuPreferNonGpuNodes else [],
        **sizer.resources(default_size, cfg.profiles.cpu),
        **_gpu_request(None, 0),
        "environment": cpu_env,
        "tolerations": user_tol,
        "node_affinity_required": [],
        "node_selector": {HOSTNAME_LABEL: None},
    }
    cpu_profile: dict[str, Any] = {
        "display_name": "Standard Environment (CPU)",
        "slug": "cpu",
        "description": _cpu_text(cpu_sizes, cfg.profiles.cpu, "no GPU"),
        "default": True,
        "kubespawner_override": dict(cpu_base),
        "profile_options": {"image": _image_option(cfg, refs, _cpu_images(cfg))},
    }
    if size_option:
        cpu_profile["profile_options"]["size"] = size_option
    shared = _shared_code_option(cfg, inventory)
    if shared is not None:
        cpu_profile["profile_options"]["sharedCode"] = shared
    elif cfg.storage.sharedCode is not None:
        notes.append("storage.sharedCode is set but no Ready, schedulable control-plane node exists: not offered")
    agent: dict[str, Any] = {
        "display_name": "Agent Development",
        "slug": "agent-dev",
        "description": "LangChain, LangGraph and vector stores; " + _cpu_text(cpu_sizes, cfg.profiles.cpu, "no GPU"),
        "kubespawner_override": {**cpu_base, "image": refs["jupyter-agent-dev"]},
    }
    if size_option:
        agent["profile_options"] = {"size": size_option}
    profiles: list[dict[str, Any]] = [cpu_profile, agent]

    unknown = sorted(n.name for nodes in classes.values() for n in nodes if n.gpu and n.gpu.driver is None)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        notes.append(
            f"driver unknown on {shown} (no {DRIVER_MAJOR_LABEL} label: GPU feature discovery not running?); "
            f"offered the {CUDA13.title} images, which need driver {CUDA13.min_driver_major}+"
        )
    # (variant, nodes) with whole GPUs (not only MIG slices), newest CUDA first
    plain: dict[CudaVariant, list[NodeInfo]] = defaultdict(list)
    for key, nodes in classes.items():
        plain[key[-1]].extend(n for n in nodes if n.gpu and n.gpu.allocatable > 0 and n.gpu.resource == GPU_RESOURCE)
    offered = [v for v in variants if plain.get(v)]
    if not classes:
        notes.append(
            "no usable GPU node (none has nvidia.com/gpu or MIG resources allocatable, Ready, "
            "schedulable, with tolerated taints and a driver the images support): no GPU profiles"
        )
    if offered:
        auto_nodes = [n for v in offered for n in plain[v]]
        whole = {n.name: _gpu_slots(n) for n in auto_nodes}
        auto_size = sizer.gpu(auto_nodes, 1, whole)
        tuning_size = sizer.gpu(auto_nodes, 1, whole, boost=2.0)
        terms = {v: driver_terms(v, variants) for v in offered}
        gpu_common = {
            **_gpu_request(GPU_RESOURCE, 1),
            "environment": gpu_env,
            "tolerations": gpu_pod_tol,
            "node_affinity_required": terms[offered[0]],
            "node_selector": {HOSTNAME_LABEL: None},
        }
        gpu_names: list[str] = []
        affinities: dict[str, list[dict[str, Any]]] = {}
        titles: dict[str, str] = {}
        for v in offered:
            for name in images_for(v, refs):
                gpu_names.append(name)
                affinities[name] = terms[v]
                titles[name] = _variant_title(name, v)
        tuning_names = [f"jupyter-fine-tuning{v.suffix}" for v in offered]
        profiles.append(
            {
                "display_name": "GPU Environment (auto-select)",
                "slug": "gpu",
                "description": "1 GPU on any GPU node; " + _size_text(auto_size, cfg.profiles.gpu, "PyTorch with CUDA"),
                "kubespawner_override": {**sizer.resources(auto_size, cfg.profiles.gpu), **gpu_common},
                "profile_options": {"image": _image_option(cfg, refs, gpu_names, affinities, titles)},
            }
        )
        tuning: dict[str, Any] = {
            "display_name": "Fine-tuning (Unsloth + QLoRA)",
            "slug": "fine-tuning",
            "description": "1 GPU, more memory; "
            + _size_text(tuning_size, cfg.profiles.fineTuning, "Unsloth, TRL, PEFT"),
            "kubespawner_override": {
                **sizer.resources(tuning_size, cfg.profiles.fineTuning),
                **gpu_common,
                "image": refs[tuning_names[0]],
            },
        }
        if len(tuning_names) > 1:
            tuning["profile_options"] = {
                "image": {
                    "display_name": "Image",
                    "choices": {
                        name: {
                            "display_name": titles[name],
                            "default": i == 0,
                            "kubespawner_override": {"image": refs[name], "node_affinity_required": affinities[name]},
                        }
                        for i, name in enumerate(tuning_names)
                    },
                }
            }
        profiles.append(tuning)
    elif classes:
        notes.append("only MIG (mixed strategy) GPUs: no auto-select or fine-tuning profile; use the MIG profiles")

    class_profiles = [
        _class_profile(cfg, refs, nodes, gpu_pod_tol, gpu_env, key[-1], variants, sizer)
        for key, nodes in classes.items()
    ]
    class_profiles.sort(key=lambda p: p["slug"])
    seen: dict[str, int] = {}
    for p in class_profiles:
        n = seen.get(p["slug"], 0)
        seen[p["slug"]] = n + 1
        if n:
            p["slug"] = f"{p['slug']}-{n + 1}"
    profiles.extend(class_profiles)
    _complete(profiles, neutral)
    _escape_form_text(profiles)
    unreadable = {s.name for s in inventory.skipped} - {n.name for n in inventory.nodes} - {"(unnamed node)"}
    _require_platform(profiles, sorted(unreadable))
    checked: list[str] = []
    if cfg.verifyStorage:
        checked = verification_nodes(inventory, user_tol + [t for t in gpu_tol if t not in user_tol])
        shown = ", ".join(checked[:10]) + (f" and {len(checked) - 10} more" if len(checked) > 10 else "")
        notes.append(
            f"verifyStorage: the storage check runs on {len(checked)} node(s) where user pods can run: {shown}"
            if checked
            else "verifyStorage: no node can run user pods, so the storage check has nowhere to run"
        )
    return ProfilePlan(
        profiles=profiles,
        checked_nodes=checked,
        nodes=rows,
        gpu_nodes=sorted(n.name for nodes in classes.values() for n in nodes),
        notes=notes,
        node_addresses=sorted({a for n in inventory.nodes for a in n.addresses}),
    )


# What KubeSpawner's form template (kubespawner/templates/form.html, 7.0.0) prints without escaping: Jinja's
# autoescape is off there, and the hub inserts the form with ``| safe``.
_FORM_TEXT = ("display_name", "description")
_UNLISTED_TEXT = ("display_name", "display_name_in_choices", "validation_message")


def _escape_form_text(profiles: list[dict[str, Any]]) -> None:
    """HTML-escape, once and in one place, every text the spawn form shows: product labels and node names
    reach display names, descriptions and choice labels. Choice keys (form values) are node names and slugs,
    which the API server's name rules (components.core.nodes) keep free of markup."""
    for p in profiles:
        for key in _FORM_TEXT:
            if key in p:
                p[key] = html.escape(p[key])
        for option in p.get("profile_options", {}).values():
            option["display_name"] = html.escape(option["display_name"])
            for choice in option.get("choices", {}).values():
                choice["display_name"] = html.escape(choice["display_name"])
            unlisted = option.get("unlisted_choice", {})
            for key in _UNLISTED_TEXT:
                if key in unlisted:
                    unlisted[key] = html.escape(unlisted[key])


def _variant_title(name: str, variant: CudaVariant) -> str:
    """The default variant's images keep their plain names; others say which drivers they are for."""
    if variant == CUDA13:
        return name
    return f"{name} ({variant.title}, for drivers {variant.min_driver_major}-{CUDA13.min_driver_major - 1})"


def _resource_text(r: Any, what: str) -> str:
    return f"{what}; {r.cpuGuarantee:g}-{r.cpuLimit:g} CPU, {r.memGuarantee}-{r.memLimit} memory"


def _size_text(size: Size | None, fallback: Any, what: str) -> str:
    return f"{what}; {size.label}" if size else _resource_text(fallback, what)


def _cpu_text(sizes: list[Size], fallback: Any, what: str) -> str:
    if not sizes:
        return _resource_text(fallback, what)
    if len(sizes) == 1:
        return f"{what}; {sizes[0].label}"
    return f"{what}; {sizes[0].label} to {sizes[-1].label}"


def _size_option(sizes: list[Size], default: Size | None, ratio: float) -> dict[str, Any] | None:
    """The CPU profiles' size picker (None with fewer than two sizes: nothing to pick)."""
    if len(sizes) < 2:
        return None
    return {
        "display_name": "Size",
        "choices": {
            z.key: {
                "display_name": z.label,
                "default": z == default,
                "kubespawner_override": _size_resources(z, ratio),
            }
            for z in sizes
        },
    }


def _class_profile(
    cfg: StackConfig,
    refs: dict[str, str],
    nodes: list[NodeInfo],
    tolerations: list[dict[str, str]],
    env: dict[str, Any],
    variant: CudaVariant,
    variants: tuple[CudaVariant, ...],
    sizer: _Sizer,
) -> dict[str, Any]:
    gpu = nodes[0].gpu
    assert gpu is not None
    product = product_name(gpu)
    slots = {n.name: _gpu_slots(n) for n in nodes}
    default_size = sizer.gpu(nodes, 1, slots)
    if gpu.mig_resources and gpu.allocatable == 0:
        # MIG mixed strategy: request the slice the user picks; one slice per user.
        gpu_choices = {
            _slug(r.removeprefix("nvidia.com/")): {
                "display_name": _with_size(f"1 x MIG {r.removeprefix('nvidia.com/mig-')}", default_size),
                "default": i == 0,
                "kubespawner_override": {
                    **_gpu_request(r, 1),
                    **sizer.resources(default_size, cfg.profiles.gpu),
                },
            }
            for i, (r, _n) in enumerate(gpu.mig_resources)
        }
        kind = "MIG " + ", ".join(r.removeprefix("nvidia.com/mig-") for r, _ in gpu.mig_resources)
        short = "mig-" + "-".join(r.removeprefix("nvidia.com/mig-") for r, _ in gpu.mig_resources)
    else:
        gpu_choices = {}
        for n in range(1, gpu.max_per_user + 1):
            size = sizer.gpu(nodes, n, slots)
            gpu_choices[str(n)] = {
                "display_name": _with_size(f"{n} GPU" + ("s" if n > 1 else ""), size),
                "default": n == 1,
                "kubespawner_override": {**_gpu_request(gpu.resource, n), **sizer.resources(size, cfg.profiles.gpu)},
            }
        kind = f"up to {gpu.max_per_user} per server" + (f", {gpu.sharing}" if gpu.shared else "")
        short = ("mps" if gpu.sharing == "MPS" else "shared") if gpu.shared else f"x{gpu.max_per_user}"
    node_option = _node_option(nodes, product)
    memory = f"{round(gpu.memory_mib / 1024)}gib" if gpu.memory_mib else "unknown-memory"
    slug = _slug(f"gpu {product} {memory} {short} {variant.suffix}")
    images = images_for(variant, refs)
    if variant != CUDA13:
        kind += f", {variant.title} images"
    return {
        "display_name": f"{product}, {_gib(gpu.memory_mib)} ({kind})",
        "slug": slug,
        "description": f"{len(nodes)} node(s); "
        + _size_text(default_size, cfg.profiles.gpu, "pick GPUs and a node; CPU and memory grow with the GPUs"),
        "kubespawner_override": {
            **sizer.resources(default_size, cfg.profiles.gpu),
            "environment": env,
            "tolerations": tolerations,
            "node_affinity_required": _class_affinity(nodes, driver_terms(variant, variants)),
        },
        "profile_options": {
            "gpus": {"display_name": "GPUs", "choices": gpu_choices},
            "node": node_option,
            "image": _image_option(cfg, refs, images, titles={n: _variant_title(n, variant) for n in images}),
        },
    }


def _names_regex(names: list[str]) -> str:
    """A regex that accepts exactly these names (no trailing newline either: ``re.match`` with ``$``
    would take one). Node names are DNS subdomains; "." goes in a class so that the pattern is also
    valid in the browser's form check (which rejects needless escapes)."""
    alternatives = [n.replace(".", "[.]") if re.fullmatch(r"[a-z0-9.-]+", n) else re.escape(n) for n in sorted(names)]
    return "^(?:" + "|".join(alternatives) + r")(?![\s\S])"


def _node_option(nodes: list[NodeInfo], product: str) -> dict[str, Any]:
    """ "Any node" plus each node by name: a list up to NODE_CHOICES_MAX nodes, beyond that a name field
    checked against the class's nodes (a list of thousands helps nobody, and would push the values
    past what the chart can store)."""
    choices: dict[str, Any] = {
        ANY_NODE: {
            "display_name": f"Any of {len(nodes)} node(s)",
            "default": True,
            "kubespawner_override": {"node_selector": {HOSTNAME_LABEL: None}},
        }
    }
    option: dict[str, Any] = {"display_name": "Node", "choices": choices}
    if len(nodes) <= NODE_CHOICES_MAX:
        for node in nodes:
            choices[node.name] = {
                "display_name": describe_node(node),
                "kubespawner_override": {"node_selector": {HOSTNAME_LABEL: node.name}},
            }
        return option
    names = sorted(n.name for n in nodes)
    option["unlisted_choice"] = {
        "enabled": True,
        "display_name": f"Node name (one of the {len(nodes)} {product} nodes)",
        "display_name_in_choices": "A node by name...",
        "validation_regex": _names_regex(names),
        "validation_message": f"The name of one of the {len(nodes)} {product} nodes, such as {names[0]}",
        "kubespawner_override": {"node_selector": {HOSTNAME_LABEL: "{value}"}},
    }
    return option


def _with_size(text: str, size: Size | None) -> str:
    return f"{text} · {size.label}" if size else text


def _class_affinity(nodes: list[NodeInfo], driver: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _shared_code_option(cfg: StackConfig, inventory: Inventory) -> dict[str, Any] | None:
    """Offer the control-plane host path only on the node that has it (never an empty dir elsewhere)."""
    shared = cfg.storage.sharedCode
    if shared is None:
        return None
    host = shared_code_host(inventory)
    if host is None:
        return None
    volume, mount = shared_code_mounts(cfg)
    return {
        "display_name": "Shared code",
        "choices": {
            "off": {
                "display_name": "Without shared code (any node)",
                "default": True,
                "kubespawner_override": {
                    "volumes": {"shared-code": None},
                    "volume_mounts": {"shared-code": None},
                },
            },
            "on": {
                "display_name": f"With {shared.hostPath} read-only (runs on {host})",  # escaped later
                "kubespawner_override": {
                    "volumes": {"shared-code": volume},
                    "volume_mounts": {"shared-code": mount},
                    "node_selector": {HOSTNAME_LABEL: host},
                    "tolerations": [dict(t) for t in USER_POD_TOLERATIONS + CONTROL_PLANE_TOLERATIONS],
                },
            },
        },
    }
