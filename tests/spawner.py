"""Ask KubeSpawner 7.0.0 (the chart 4.4.0 hub's version) for the pod a profile choice produces.

The chart's hub turns ``singleuser.*`` values into KubeSpawner traits in its jupyterhub_config.py; the
``configure`` function below applies the same mapping for the keys our values use (checked against
the chart's file at 4.4.0), so the pod is what a deployed hub would create.
"""

from __future__ import annotations

import asyncio
import copy
import os
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: dummy, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: dummy, user: {token: dummy}}]
contexts: [{name: dummy, context: {cluster: dummy, user: dummy, namespace: jupyterhub}}]
current-context: dummy
"""


def _ensure_kubeconfig() -> None:
    if "KUBECONFIG" not in os.environ:
        path = Path(tempfile.gettempdir()) / "gpu-jupyterhub-dummy-kubeconfig"
        path.write_text(_KUBECONFIG)
        os.environ["KUBECONFIG"] = str(path)


# kubernetes_asyncio reads KUBECONFIG when it is first imported (hub.extraConfig imports it), so set it
# as soon as this helper is.
_ensure_kubeconfig()


def configure(spawner: Any, values: dict[str, Any]) -> None:
    """Apply the chart's singleuser.* -> KubeSpawner mapping for the keys our values set."""
    su = copy.deepcopy(values["singleuser"])
    image = su["image"]["name"]
    if su["image"].get("tag"):
        image = f"{image}:{su['image']['tag']}"
    spawner.image = image
    spawner.image_pull_secrets = list(su["image"].get("pullSecrets") or [])
    spawner.uid = su["uid"]
    spawner.fs_gid = su["fsGid"]
    spawner.allow_privilege_escalation = su["allowPrivilegeEscalation"]
    spawner.cpu_guarantee = su["cpu"]["guarantee"]
    spawner.cpu_limit = su["cpu"]["limit"]
    spawner.mem_guarantee = su["memory"]["guarantee"]
    spawner.mem_limit = su["memory"]["limit"]
    spawner.environment = dict(su["extraEnv"])
    spawner.default_url = su["defaultUrl"]
    # chart default scheduling.userPods.tolerations
    spawner.tolerations = [
        {"effect": "NoSchedule", "key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user"},
        {"effect": "NoSchedule", "key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user"},
    ]
    storage = su["storage"]
    assert storage["type"] == "static"
    volumes: dict[str, Any] = {
        "home": {"name": "home", "persistentVolumeClaim": {"claimName": storage["static"]["pvcName"]}}
    }
    mounts: dict[str, Any] = {
        "home": {"mountPath": storage["homeMountPath"], "name": "home", "subPath": storage["static"]["subPath"]}
    }
    files = su.get("extraFiles") or {}
    if files:
        volumes["files"] = {
            "name": "files",
            "secret": {"secretName": "singleuser", "items": [{"key": k, "path": k} for k in files]},
        }
        for i, (key, details) in enumerate(files.items()):
            mounts[f"{i}-files"] = {"mountPath": details["mountPath"], "subPath": key, "name": "files"}
    for v in storage.get("extraVolumes") or []:
        volumes[v["name"]] = v
    for i, m in enumerate(storage.get("extraVolumeMounts") or []):
        mounts[f"{i}-{m['name']}"] = m
    spawner.volumes = volumes
    spawner.volume_mounts = mounts
    spawner.profile_list = su["profileList"]
    # hub.config passes traitlets straight to the classes (the chart's jupyterhub_config.py does the same)
    for trait, value in (values["hub"].get("config") or {}).get("KubeSpawner", {}).items():
        setattr(spawner, trait, copy.deepcopy(value))


def make_spawner(values: dict[str, Any], username: str = "alice", spawner_class: Any = None) -> Any:
    _ensure_kubeconfig()
    from jupyterhub.objects import Hub, Server
    from kubespawner import KubeSpawner

    KubeSpawner = spawner_class or KubeSpawner  # the class the hub is configured with

    user = mock.Mock()
    user.name = username
    user.escaped_name = username
    user.id = 1
    user.url = f"/user/{username}/"
    user.groups = []
    hub = Hub(ip="hub", port=8081)
    spawner = KubeSpawner(_mock=True, user=user, hub=hub, namespace="jupyterhub")
    spawner.server = Server()
    spawner.api_token = "dummy-token"
    configure(spawner, values)
    return spawner


async def pod_for(spawner: Any, user_options: dict[str, Any]) -> dict[str, Any]:
    """Load user options into the (possibly reused) spawner and return its pod as a plain dict."""
    spawner.user_options = user_options
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    from kubernetes_asyncio.client import ApiClient

    return ApiClient().sanitize_for_serialization(pod)


def pods(values: dict[str, Any], options: list[dict[str, Any]], reuse: bool = False) -> list[dict[str, Any]]:
    """Pods for a sequence of user_options; ``reuse`` spawns them all on one spawner, as a hub does."""

    async def go() -> list[dict[str, Any]]:
        out = []
        spawner = make_spawner(values) if reuse else None
        for opts in options:
            s = spawner or make_spawner(values)
            out.append(await pod_for(s, opts))
        return out

    return asyncio.run(go())


def load_values(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)
