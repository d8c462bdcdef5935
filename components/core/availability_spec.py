"""The GPU availability service's Kubernetes objects (pure): what ``pulumi up`` registers and the plan counts.

The spawn form's free-GPU numbers need every pod of the cluster. Only this service reads them: its own
ServiceAccount, a ClusterRole that may only list and watch nodes and pods, one small pod that runs
``components/shipped/availability_service.py`` (with ``live_profiles.py`` beside it, from one ConfigMap) on the chart's
hub image, a Service, and a NetworkPolicy that lets only the hub pod in. The hub asks it for per-node totals
(``live_profiles.RemoteUsage``) and holds no cluster-wide right itself.
"""

from __future__ import annotations

from typing import Any

from components import shipped

NAME = "gpu-availability"
PORT = 8181
MOUNT_DIR = "/usr/local/etc/gpu-jupyterhub/availability"
SOURCES = ("availability_service.py", "live_profiles.py")
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "gpu-jupyterhub"}
# The hub pod as z2jh labels it (the chart's own NetworkPolicies select it the same way).
HUB_POD_LABELS = {"app": "jupyterhub", "component": "hub"}
# Measured on the real-node tier: ~40 MiB at a few nodes; the cache holds per-node totals and one small tuple
# per pod, so 30,000 pods stay well under the limit.
RESOURCES = {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


def service_base(namespace: str) -> str:
    """The service's address (its Service's cluster DNS name)."""
    return f"http://{NAME}.{namespace}.svc:{PORT}"


def service_url(namespace: str) -> str:
    """Where the hub polls the totals."""
    return f"{service_base(namespace)}/usage"


def cluster_role_name(namespace: str) -> str:
    """Cluster-scoped names carry the namespace, so two stacks on one cluster do not collide."""
    return f"gpu-jupyterhub-{namespace}-availability-reader"


def sources() -> dict[str, str]:
    """The files the service runs, as ConfigMap data (file name -> text), from components/."""
    return {name: shipped.text(name) for name in SOURCES}


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(LABELS)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def rbac_objects(namespace: str) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole (list and watch nodes and pods: nothing else) and its binding."""
    role = cluster_role_name(namespace)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME, namespace)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(role),
            "rules": [{"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list", "watch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(role),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
        },
    ]


def deployment(
    namespace: str, image: str, pull_secrets: list[str], affinity: dict[str, Any], sources_hash: str
) -> dict[str, Any]:
    """One pod that meets Pod Security "restricted"; a new ``sources_hash`` (the files changed) rolls it."""
    container = {
        "name": NAME,
        "image": image,
        "command": ["python3", f"{MOUNT_DIR}/availability_service.py", f"--port={PORT}"],
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": {"httpGet": {"path": "/usage", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 20},
        "resources": RESOURCES,
        "volumeMounts": [{"name": "sources", "mountPath": MOUNT_DIR, "readOnly": True}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    spec: dict[str, Any] = {
        "serviceAccountName": NAME,
        "affinity": affinity,
        "containers": [container],
        "volumes": [{"name": "sources", "configMap": {"name": NAME}}],
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(NAME, namespace),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "template": {
                "metadata": {"labels": dict(LABELS), "annotations": {"gpu-jupyterhub/sources": sources_hash}},
                "spec": spec,
            },
        },
    }


def service(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(NAME, namespace),
        "spec": {
            "selector": {"app.kubernetes.io/name": NAME},
            "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
        },
    }


def network_policy(namespace: str) -> dict[str, Any]:
    """Only the hub pod reaches the service (the kubelet's probes are not subject to NetworkPolicy)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(NAME, namespace),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": HUB_POD_LABELS}}], "ports": [{"port": PORT}]}],
        },
    }


def hub_egress_rule() -> dict[str, Any]:
    """The hub's own NetworkPolicy (the chart's) must let it reach the service: one more egress rule."""
    return {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": NAME}}}], "ports": [{"port": PORT}]}


def configmap(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(NAME, namespace), "data": sources()}


def availability_objects(
    namespace: str, image: str, pull_secrets: list[str], affinity: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every object of the service, in the order they are created."""
    import hashlib

    digest = hashlib.sha256("".join(f"{k}\0{v}\0" for k, v in sorted(sources().items())).encode()).hexdigest()
    return [
        *rbac_objects(namespace),
        configmap(namespace),
        deployment(namespace, image, pull_secrets, affinity, digest[:16]),
        service(namespace),
        network_policy(namespace),
    ]
