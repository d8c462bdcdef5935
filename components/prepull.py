"""The pre-pull DaemonSets as a Pulumi component: one per image group, each image an init container, so the
kubelet pulls it where it can run and keeps it. The manifests, and why they look so: components/core/prepull_spec.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes

from components.core.image_specs import CudaVariant
from components.core.prepull_spec import APP_LABEL, daemonset_manifest, group_tolerations, image_groups


@dataclass
class PrePullerArgs:
    """Inputs of PrePuller. ``refs`` must have its image names known at construction
    (values may be Outputs, e.g. ``ImageBuilds.ref_outputs``); the Kubernetes provider is
    explicit so the DaemonSets never go to an ambient cluster."""

    refs: Mapping[str, pulumi.Input[str]]
    gpu_images: Mapping[str, CudaVariant]
    namespace: str
    provider: pulumi.ProviderResource
    pull_secret: str | None = None
    gpu_tolerations: list[dict] = field(default_factory=list)
    user_node_selector: dict[str, str] | None = None
    user_tolerations: list[dict] = field(default_factory=list)
    pause_image: str | None = None
    name_prefix: str = "image-prepuller"


class PrePuller(pulumi.ComponentResource):
    """The pre-pull DaemonSets, one per image group."""

    daemonsets: dict[str, kubernetes.apps.v1.DaemonSet]

    def __init__(self, name: str, args: PrePullerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-jupyterhub:images:PrePuller", name, None, opts)
        self.daemonsets = {}
        for group, members in image_groups(args.refs, args.gpu_images).items():
            resolved = pulumi.Output.all(**{n: args.refs[n] for n in members})

            def manifest(values: dict[str, str], group: str = group) -> dict[str, Any]:
                return daemonset_manifest(
                    group,
                    values,
                    args.namespace,
                    args.pull_secret,
                    group_tolerations(group, args.user_tolerations, args.gpu_tolerations),
                    args.user_node_selector,
                    name_prefix=args.name_prefix,
                    pause_image=args.pause_image,
                    gpu_images=args.gpu_images,
                )

            doc = resolved.apply(manifest)
            self.daemonsets[group] = kubernetes.apps.v1.DaemonSet(
                f"{name}-{group}",
                metadata={
                    "name": f"{args.name_prefix}-{group}",
                    "namespace": args.namespace,
                    "labels": {
                        "app.kubernetes.io/name": APP_LABEL,
                        "app.kubernetes.io/component": group,
                        "app.kubernetes.io/part-of": "gpu-jupyterhub",
                    },
                },
                spec=doc.apply(lambda d: d["spec"]),
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
            )
        self.register_outputs({"daemonsets": {g: ds.metadata for g, ds in self.daemonsets.items()}})
