"""The hub's namespace Role, without Secrets (pure: plain manifests in, deterministic order).

The chart's own hub Role grants get/list/watch/create/delete on Secrets of the namespace, for KubeSpawner's
internal SSL, which this program does not turn on. It also made the backup Secret (restic password, S3 keys)
readable by the hub's service account. The chart's RBAC is turned off (``rbac.create: false``) and this Role
takes its place: what KubeSpawner uses (pods, the PVCs and services it may make, events), nothing else. Named
apart from the chart's ``hub`` Role, so an upgrade creates it before Helm removes the old one.
"""

from __future__ import annotations

from typing import Any

HUB_SERVICE_ACCOUNT = "hub"  # the chart's hub.serviceAccount name
HUB_ROLE = "gpu-jupyterhub-hub"
LABELS = {"app.kubernetes.io/part-of": "gpu-jupyterhub", "app.kubernetes.io/component": "hub"}
HUB_RULES = (
    {
        "apiGroups": [""],
        "resources": ["pods", "persistentvolumeclaims", "services"],
        "verbs": ["get", "watch", "list", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]},
)


def hub_role_objects(namespace: str) -> list[dict[str, Any]]:
    """The Role and its RoleBinding to the chart's hub service account."""
    meta = {"name": HUB_ROLE, "namespace": namespace, "labels": dict(LABELS)}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": list(HUB_RULES)}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": dict(meta),
        "subjects": [{"kind": "ServiceAccount", "name": HUB_SERVICE_ACCOUNT, "namespace": namespace}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": HUB_ROLE},
    }
    return [role, binding]
