"""Pre-pull the Jupyter images where they can run, and nowhere else.

z2jh's own puller pulls every profile image on every node; a multi-GB CUDA image on a
CPU-only node only costs disk and bandwidth. Here each image group gets one DaemonSet:
"cpu" images on every user node, "gpu" images only on nodes labelled
``nvidia.com/gpu.present=true`` (tolerating the GPU taint) whose NVIDIA driver runs
their CUDA, "gpu-cu12" (the optional CUDA 12 variant) only where the driver needs it. Each image is an init
container that runs a no-op, so the kubelet pulls it; a tiny main container then keeps
the pod (and with it the images, which the kubelet's image GC leaves alone while a pod
uses them) on the node. Turn the chart's ``prePuller.hook`` / ``prePuller.continuous``
and profile-image pulling off when using this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from components.core.image_specs import CudaVariant, driver_terms, with_platform

GPU_NODE_LABEL = "nvidia.com/gpu.present"
APP_LABEL = "gpu-jupyterhub-image-prepuller"
# Enough for `true` and a shell sleeping; keeps the DaemonSet from competing with users.
TINY_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "1m", "memory": "8Mi"},
    "limits": {"cpu": "50m", "memory": "32Mi"},
}
# Runs in the group's first image (no pause image can be assumed to be mirrored). A shell
# as PID 1 ignores SIGTERM unless it traps it, hence the trap: pods stop at once.
HOLD_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep infinity & wait"]


def container_name(image: str) -> str:
    """A DNS-1123 label for a container from an image name."""
    name = re.sub(r"[^a-z0-9-]+", "-", image.lower()).strip("-")
    return (name or "image")[:63].rstrip("-")


def group_of(variant: CudaVariant) -> str:
    """The pre-pull group of a GPU image: "gpu" for the default variant, "gpu-<key>" for others."""
    return "gpu" + variant.suffix


def image_groups(names: Iterable[str], gpu_images: Mapping[str, CudaVariant]) -> dict[str, list[str]]:
    """Split image names into "cpu", "gpu" and per-variant GPU groups (sorted, empty groups left out)."""
    groups: dict[str, list[str]] = {}
    for name in sorted(set(names)):
        group = group_of(gpu_images[name]) if name in gpu_images else "cpu"
        groups.setdefault(group, []).append(name)
    return dict(sorted(groups.items()))


def _node_affinity(
    group: str, user_node_selector: Mapping[str, str] | None, gpu_images: Mapping[str, CudaVariant]
) -> dict[str, Any]:
    expressions = [
        {"key": key, "operator": "In", "values": [value]} for key, value in sorted((user_node_selector or {}).items())
    ]
    terms = [{"matchExpressions": expressions}]
    variants = {v.key: v for v in gpu_images.values()}
    variant = next((v for v in variants.values() if group_of(v) == group), None)
    if variant is not None:
        expressions.append({"key": GPU_NODE_LABEL, "operator": "In", "values": ["true"]})
        offered = sorted(variants.values(), key=lambda v: v.key)
        terms = [
            {"matchExpressions": expressions + term["matchExpressions"]} for term in driver_terms(variant, offered)
        ]
    # every group: only nodes whose OS and architecture the images are built for
    terms = with_platform([t for t in terms if t["matchExpressions"]])
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def daemonset_manifest(
    group: str,
    refs: Mapping[str, str],
    namespace: str,
    pull_secret: str | None,
    tolerations: list[dict[str, Any]],
    user_node_selector: Mapping[str, str] | None,
    *,
    name_prefix: str = "image-prepuller",
    pause_image: str | None = None,
    gpu_images: Mapping[str, CudaVariant] | None = None,
) -> dict[str, Any]:
    """One pre-pull DaemonSet (apps/v1) for the images in ``refs`` (name -> reference);
    ``gpu_images`` says which CUDA variant each GPU image is (for the driver affinity)."""
    if not refs:
        raise ValueError(f"pre-pull group {group!r} has no images")
    labels = {
        "app.kubernetes.io/name": APP_LABEL,
        "app.kubernetes.io/component": group,
        "app.kubernetes.io/part-of": "gpu-jupyterhub",
    }
    security = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 100,
    }
    names = sorted(refs)
    init_containers = [
        {
            "name": f"pull-{container_name(n)}"[:63].rstrip("-"),
            "image": refs[n],
            "imagePullPolicy": "IfNotPresent",
            "command": ["true"],
            "resources": TINY_RESOURCES,
            "securityContext": security,
        }
        for n in names
    ]
    hold: dict[str, Any] = {
        "name": "hold",
        "imagePullPolicy": "IfNotPresent",
        "resources": TINY_RESOURCES,
        "securityContext": security,
    }
    if pause_image:
        hold["image"] = pause_image
    else:
        hold["image"] = refs[names[0]]
        hold["command"] = HOLD_COMMAND
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 5,
        "initContainers": init_containers,
        "containers": [hold],
    }
    affinity = _node_affinity(group, user_node_selector, gpu_images or {})
    if affinity:
        pod_spec["affinity"] = affinity
    if tolerations:
        pod_spec["tolerations"] = [dict(t) for t in tolerations]
    if pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": pull_secret}]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": f"{name_prefix}-{group}", "namespace": namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            # Pull on every node at once when references change: the old pods hold nothing
            # a user is waiting for.
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def group_tolerations(group: str, user_tolerations: list[dict], gpu_tolerations: list[dict]) -> list[dict]:
    """The user nodes' tolerations for every group, the GPU taint's too for a GPU group."""
    return [*user_tolerations, *(gpu_tolerations if group != "cpu" else [])]


def prepull_daemonsets(
    refs: dict[str, str],
    gpu_images: Mapping[str, CudaVariant],
    namespace: str,
    pull_secret: str | None,
    gpu_tolerations: list[dict],
    user_node_selector: dict | None,
    *,
    user_tolerations: list[dict] | None = None,
    name_prefix: str = "image-prepuller",
    pause_image: str | None = None,
) -> list[dict]:
    """DaemonSet manifests, one per non-empty image group ("cpu", "gpu", "gpu-cu12").

    ``user_tolerations`` (e.g. z2jh's ``hub.jupyter.org/dedicated`` taint) apply to both
    groups; ``gpu_tolerations`` only to the GPU group.
    """
    out = []
    for group, members in image_groups(refs, gpu_images).items():
        out.append(
            daemonset_manifest(
                group,
                {n: refs[n] for n in members},
                namespace,
                pull_secret,
                group_tolerations(group, user_tolerations or [], gpu_tolerations),
                user_node_selector,
                name_prefix=name_prefix,
                pause_image=pause_image,
                gpu_images=gpu_images,
            )
        )
    return out
