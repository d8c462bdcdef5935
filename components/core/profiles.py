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
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from components.core.config import StackConfig
from components.core.gpu_profiles import GpuContext, auto_select_profiles, class_profiles, gpu_notes
from components.core.image_specs import CPU_IMAGES, cuda_variants, with_platform
from components.core.node_table import NodeRow, triage
from components.core.nodes import Inventory
from components.core.profile_options import (
    HOSTNAME_LABEL,
    USER_POD_TOLERATIONS,
    ImagePicker,
    gpu_request,
    shared_code_option,
)
from components.core.profile_sizes import CpuSizes, Sizer, cpu_sizes, cpu_text, size_option
from components.core.storage_spec import shared_code_host, shared_code_mounts, verification_nodes

CPU_PREFERENCE: dict[str, Any] = {
    "weight": 100,
    "preference": {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "NotIn", "values": ["true"]}]},
}


class ProfilePlan(BaseModel):
    """The profile list plus what the plan command explains about it."""

    model_config = ConfigDict(frozen=True)
    profiles: list[dict[str, Any]]
    nodes: list[NodeRow]
    gpu_nodes: list[str]
    notes: list[str]
    checked_nodes: list[str] = []  # where verifyStorage runs its Jobs (empty when it is off)
    node_addresses: list[str] = []  # every node's IPs, which user pods may not reach (egress_spec)


@dataclass(frozen=True)
class Tolerations:
    """User pods' (z2jh's defaults), the GPU taints' (profiles.gpuTolerations) and GPU pods' (both)."""

    user: list[dict[str, str]]
    gpu: list[dict[str, str]]
    gpu_pods: list[dict[str, str]]


def tolerations(gpu_tolerations: list[dict[str, str]]) -> Tolerations:
    user = [dict(t) for t in USER_POD_TOLERATIONS]
    gpu = [dict(sorted(t.items())) for t in gpu_tolerations]
    return Tolerations(user, gpu, user + [t for t in gpu if t not in user])


def build_profiles(cfg: StackConfig, inventory: Inventory, refs: dict[str, str]) -> ProfilePlan:
    """The spawner's profile list for this config, these nodes and these image references: the nodes triaged
    once, the sizes planned once, then the CPU profiles, auto-select and fine-tuning, and the GPU classes."""
    tol = tolerations(cfg.profiles.gpuTolerations)
    variants = cuda_variants(cfg.images.cuda12)
    table = triage(inventory, tol.user, tol.gpu, variants)
    sizer = Sizer(cfg.profiles.sizing)
    sizes = cpu_sizes(sizer, table.user_nodes)
    picker = ImagePicker(cfg.registry.host, cfg.registry.project, refs)
    shared = _shared_code(cfg, inventory)
    gpu = GpuContext(variants, picker, sizer, cfg.profiles, tol.gpu_pods)
    profiles = [
        *cpu_profiles(cfg, picker, sizer, sizes, shared, tol.user),
        *auto_select_profiles(table.classes, gpu),
        *class_profiles(table.classes, gpu),
    ]
    neutral = {"tolerations": tol.user, "node_affinity_required": [], "node_affinity_preferred": []}
    _complete(profiles, neutral)
    _escape_form_text(profiles)
    _require_platform(profiles, table.unreadable)
    checked, storage_notes = _storage_check(cfg.verifyStorage, inventory, tol.gpu_pods)
    shared_note = []
    if shared is None and cfg.storage.sharedCode is not None:
        shared_note = ["storage.sharedCode is set but no Ready, schedulable control-plane node exists: not offered"]
    return ProfilePlan(
        profiles=profiles,
        checked_nodes=checked,
        nodes=table.rows,
        gpu_nodes=sorted(n.name for nodes in table.classes.values() for n in nodes),
        notes=[*sizes.notes, *shared_note, *gpu_notes(table.classes, variants), *storage_notes],
        node_addresses=sorted({a for n in inventory.nodes for a in n.addresses}),
    )


def cpu_profiles(
    cfg: StackConfig,
    picker: ImagePicker,
    sizer: Sizer,
    sizes: CpuSizes,
    shared_code: dict[str, Any] | None,
    user_tolerations: list[dict[str, str]],
) -> list[dict[str, Any]]:
    """ "Standard Environment (CPU)" (the default, with the CPU images and the shared code) and "Agent
    Development"; both with the size picker when there is more than one size."""
    base: dict[str, Any] = {
        # CPU servers go to GPU nodes only when nothing else has room: there they take the CPU and
        # memory that come with the GPUs.
        "node_affinity_preferred": [CPU_PREFERENCE] if cfg.profiles.cpuPreferNonGpuNodes else [],
        **sizer.resources(sizes.default, cfg.profiles.cpu),
        **gpu_request(None, 0),
        "environment": {"NVIDIA_VISIBLE_DEVICES": "void"},
        "tolerations": user_tolerations,
        "node_affinity_required": [],
        "node_selector": {HOSTNAME_LABEL: None},
    }
    built = {s.name for s in cfg.images.specs()}  # jupyter-rust only with images.rust
    options: dict[str, Any] = {"image": picker.option([n for n in CPU_IMAGES if n in built])}
    sizing = size_option(sizes, cfg.profiles.sizing.guaranteeRatio)
    if sizing:
        options["size"] = sizing
    if shared_code is not None:
        options["sharedCode"] = shared_code
    cpu: dict[str, Any] = {
        "display_name": "Standard Environment (CPU)",
        "slug": "cpu",
        "description": cpu_text(sizes.sizes, cfg.profiles.cpu, "no GPU"),
        "default": True,
        "kubespawner_override": dict(base),
        "profile_options": options,
    }
    agent: dict[str, Any] = {
        "display_name": "Agent Development",
        "slug": "agent-dev",
        "description": "LangChain, LangGraph and vector stores; " + cpu_text(sizes.sizes, cfg.profiles.cpu, "no GPU"),
        "kubespawner_override": {**base, "image": picker.refs["jupyter-agent-dev"]},
    }
    if sizing:
        agent["profile_options"] = {"size": sizing}
    return [cpu, agent]


def _shared_code(cfg: StackConfig, inventory: Inventory) -> dict[str, Any] | None:
    """The shared-code switch, when storage.sharedCode is set and a control-plane node can serve it."""
    shared = cfg.storage.sharedCode
    host = shared_code_host(inventory) if shared is not None else None
    return shared_code_option(shared, host, *shared_code_mounts(cfg)) if shared is not None and host else None


def _storage_check(enabled: bool, inventory: Inventory, gpu_pod_tolerations: list[dict]) -> tuple[list[str], list[str]]:
    """Where verifyStorage runs its Jobs (every node user pods can run on), and the plan's note about it."""
    if not enabled:
        return [], []
    checked = verification_nodes(inventory, gpu_pod_tolerations)
    shown = ", ".join(checked[:10]) + (f" and {len(checked) - 10} more" if len(checked) > 10 else "")
    if not checked:
        return [], ["verifyStorage: no node can run user pods, so the storage check has nowhere to run"]
    where = f"the storage check runs on {len(checked)} node(s) where user pods can run: {shown}"
    return checked, [f"verifyStorage: {where}"]


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
