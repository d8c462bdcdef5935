"""The hub services that run in the hub pod, as chart values: the GPU-idle culler and the GPU overview
(components/shipped/gpu_culler.py and gpu_overview.py, handed to the hub as files), their roles, ports and
network rules; ``merge_hub_extras`` joins their ``hub.*`` sections."""

from __future__ import annotations

from typing import Any

from components import shipped
from components.core.availability_spec import service_base
from components.core.config import StackConfig
from components.core.profiles import ProfilePlan

GPU_CULLER_SOURCE = shipped.path("gpu_culler.py")
GPU_CULLER_PATH = "/usr/local/etc/gpu-jupyterhub/gpu_culler.py"
# What the GPU culler may do, nothing more: list users, read their servers and activity, stop servers.
GPU_OVERVIEW_SOURCE = shipped.path("gpu_overview.py")
GPU_OVERVIEW_PATH = "/usr/local/etc/gpu-jupyterhub/gpu_overview.py"
GPU_OVERVIEW_PORT = 10101
# read-only: users, their admin flag and servers' activity; never a server's stop or start
GPU_OVERVIEW_SCOPES = ("list:users", "read:users", "read:servers")
GPU_CULLER_SCOPES = ("list:users", "read:users:activity", "read:servers", "delete:servers")


def gpu_profile_slugs(profiles: list[dict[str, Any]]) -> list[str]:
    """Slugs of the profiles whose servers can hold GPUs."""
    slugs = []
    for p in profiles:
        overrides = [p.get("kubespawner_override", {})]
        for option in p.get("profile_options", {}).values():
            overrides += [c.get("kubespawner_override", {}) for c in option.get("choices", {}).values()]
        if any(v for ov in overrides for v in (ov.get("extra_resource_limits") or {}).values()):
            slugs.append(p["slug"])
    return slugs


def gpu_culler_values(cfg: StackConfig, plan: ProfilePlan) -> dict[str, Any]:
    """hub.services, hub.loadRoles and hub.extraFiles for the GPU-idle culler (empty when it is off)."""
    slugs = gpu_profile_slugs(plan.profiles)
    if not (cfg.culling.enabled and cfg.culling.gpuTimeoutSeconds and slugs):
        return {}
    command = [
        "python3",
        GPU_CULLER_PATH,
        *(f"--gpu-profile={slug}" for slug in slugs),
        f"--timeout={cfg.culling.gpuTimeoutSeconds}",
        f"--every={min(cfg.culling.everySeconds, max(60, cfg.culling.gpuTimeoutSeconds // 4))}",
    ]
    return {
        "services": {"gpu-culler": {"command": command}},
        "loadRoles": {"gpu-culler": {"services": ["gpu-culler"], "scopes": list(GPU_CULLER_SCOPES)}},
        "extraFiles": {"gpu-culler": {"mountPath": GPU_CULLER_PATH, "stringData": GPU_CULLER_SOURCE.read_text()}},
    }


def _chart_pods(component: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": {"app": "jupyterhub", "release": "jupyterhub", "component": component}}}


def gpu_overview_values(cfg: StackConfig) -> dict[str, Any]:
    """The GPU overview (components/shipped/gpu_overview.py), a hub service in the hub pod, reached through the proxy:
    hub.services/loadRoles/extraFiles, the hub Service's extra port and the two pods' network rules. Empty
    without the availability service it reads from."""
    if not (cfg.profiles.liveAvailability and cfg.profiles.gpuOverview):
        return {}
    command = [
        "python3",
        GPU_OVERVIEW_PATH,
        f"--port={GPU_OVERVIEW_PORT}",
        f"--source={service_base(cfg.namespace)}",
    ]
    if cfg.profiles.dcgmExporterUrl:
        command.append(f"--dcgm-url={cfg.profiles.dcgmExporterUrl}")
    port = [{"port": GPU_OVERVIEW_PORT}]
    return {
        "services": {
            "gpu-overview": {
                "url": f"http://hub:{GPU_OVERVIEW_PORT}",
                "command": command,
                "display": True,
                "oauth_no_confirm": True,
            }
        },
        "loadRoles": {
            "gpu-overview": {"services": ["gpu-overview"], "scopes": list(GPU_OVERVIEW_SCOPES)},
            # every user may open it (the page shows them their own servers)
            "user": {"scopes": ["self", "access:services!service=gpu-overview"]},
        },
        "extraFiles": {"gpu-overview": {"mountPath": GPU_OVERVIEW_PATH, "stringData": GPU_OVERVIEW_SOURCE.read_text()}},
        "service": {
            "extraPorts": [{"name": "gpu-overview", "port": GPU_OVERVIEW_PORT, "targetPort": GPU_OVERVIEW_PORT}]
        },
        "networkPolicy": {"ingress": [{"from": [_chart_pods("proxy")], "ports": port}]},
        "proxy_egress": [{"to": [_chart_pods("hub")], "ports": port}],
    }


def merge_hub_extras(*parts: dict[str, Any]) -> dict[str, Any]:
    """hub.* sections of several hub services, their dicts merged by key."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else [*out.get(key, []), *value]
    return out
