"""GpuAvailability component: registers the availability service's objects (``components.core.availability_spec``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# kind -> (resource class, the manifest's fields besides apiVersion, kind and metadata)
_KINDS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "ServiceAccount": (k8s.core.v1.ServiceAccount, ()),
    "ClusterRole": (k8s.rbac.v1.ClusterRole, ("rules",)),
    "ClusterRoleBinding": (k8s.rbac.v1.ClusterRoleBinding, ("role_ref", "subjects")),
    "ConfigMap": (k8s.core.v1.ConfigMap, ("data",)),
    "Deployment": (k8s.apps.v1.Deployment, ("spec",)),
    "Service": (k8s.core.v1.Service, ("spec",)),
    "NetworkPolicy": (k8s.networking.v1.NetworkPolicy, ("spec",)),
}


def _snake(key: str) -> str:
    return {"roleRef": "role_ref"}.get(key, key)


@dataclass
class GpuAvailabilityArgs:
    objects: list[dict[str, Any]]  # from availability_spec.availability_objects, in creation order


class GpuAvailability(pulumi.ComponentResource):
    def __init__(self, name: str, args: GpuAvailabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-jupyterhub:availability:GpuAvailability", name, None, opts)
        created: list[pulumi.Resource] = []
        for manifest in args.objects:
            cls, fields = _KINDS[manifest["kind"]]
            given = {_snake(k): v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
            assert set(given) <= set(fields), f"{manifest['kind']}: unexpected fields {sorted(given)}"
            kind = manifest["kind"].lower()
            created.append(
                cls(
                    f"{name}-{kind}",
                    metadata=manifest["metadata"],
                    **given,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=list(created)),
                )
            )
        self.register_outputs({})
