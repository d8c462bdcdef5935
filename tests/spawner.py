"""Ask KubeSpawner 7.0.0 (the chart 4.4.0 hub's version) for the pod a profile choice produces.

The spawner is configured by the published chart's own jupyterhub_config.py, run on the ConfigMap and
Secret the chart renders from our values (tests/hubconfig.py), with every hub.extraConfig entry: the pod is
what a deployed hub would create, with no hand-written mapping of values to traits.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from tests.hubconfig import configured_spawner_class, hub_config

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


def make_spawner(
    values: dict[str, Any], username: str = "alice", spawner_class: Any = None, live_profiles: bool = False
) -> Any:
    """A mock KubeSpawner configured by the chart's own jupyterhub_config.py from ``values`` (tests/hubconfig.py).

    The class is the one the configured hub uses (our guarded KubeSpawner) unless ``spawner_class`` is given.
    The profile list is the deploy-time list from the values; ``live_profiles`` keeps the spawn-time callable
    that hub.extraConfig installs (it asks the cluster for free GPUs; tests/test_live_profiles.py covers it).
    """
    _ensure_kubeconfig()
    from jupyterhub.objects import Hub, Server

    c = hub_config(values)
    if not live_profiles:
        c.KubeSpawner.profile_list = copy.deepcopy(values["singleuser"]["profileList"])
    cls = spawner_class or configured_spawner_class(c)
    user = mock.Mock()
    user.name = username
    user.escaped_name = username
    user.id = 1
    user.url = f"/user/{username}/"
    user.groups = []
    user.spawners = {}
    hub = Hub(ip="hub", port=8081)
    spawner = cls(_mock=True, config=c, user=user, hub=hub)
    spawner.server = Server()
    spawner.api_token = "dummy-token"
    if hasattr(spawner, "_quota_pods"):
        # no API server here: the user's pods the GPU quota counts are what a test puts in .quota_test_pods
        # (tests/test_gpu_quota.py); the REST tests (tests/test_hub_guard_rest.py) read them from a fake API server
        spawner.quota_test_pods = []

        async def quota_pods() -> list[dict[str, Any]]:
            return list(spawner.quota_test_pods)

        spawner._quota_pods = quota_pods
    return spawner


async def pod_for(spawner: Any, user_options: dict[str, Any]) -> dict[str, Any]:
    """Load user options into the (possibly reused) spawner and return its pod as a plain dict."""
    spawner.user_options = user_options
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    from kubernetes_asyncio.client import ApiClient

    return ApiClient().sanitize_for_serialization(pod)


# Pods already made in this process, by (values, options, reuse): they are a function of those alone (KubeSpawner,
# the chart and the hub-side code do not change within a run). Mutation testing forks one process per mutant
# from one that ran the suite; a mutant that leaves the values as they were then reuses the pods instead of
# making them again (seconds per test).
_PODS: dict[str, list[dict[str, Any]]] = {}


def pods(values: dict[str, Any], options: list[dict[str, Any]], reuse: bool = False) -> list[dict[str, Any]]:
    """Pods for a sequence of user_options; ``reuse`` spawns them all on one spawner, as a hub does."""

    async def go() -> list[dict[str, Any]]:
        out = []
        spawner = make_spawner(values) if reuse else None
        for opts in options:
            s = spawner or make_spawner(values)
            out.append(await pod_for(s, opts))
        return out

    key = hashlib.sha256(json.dumps([values, options, reuse], sort_keys=True).encode()).hexdigest()
    if key not in _PODS:
        _PODS[key] = asyncio.run(go())
    return copy.deepcopy(_PODS[key])


def load_values(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)
