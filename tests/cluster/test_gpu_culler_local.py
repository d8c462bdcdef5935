"""GPU-idle culling against a real JupyterHub 5.5: servers of both kinds, activity times set through the
REST API, one pass of the culler with a token limited to the service's role. One server holds options the
culler cannot read (``{"profile": []}``, which the deployed guard now refuses but a server started before it,
or a hub restarted since, still hands back): it is skipped and logged, and the others are culled."""

from __future__ import annotations

import importlib.util
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hubclient import HubClient
from localhub import LocalHub

from components.core.hub_services import GPU_CULLER_SCOPES

CULLER = Path(__file__).resolve().parents[2] / "components" / "shipped" / "gpu_culler.py"
IDLE_TIMEOUT = 6  # seconds; the deployed default is culling.gpuTimeoutSeconds = 1800


def culler() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_culler", CULLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_idle_gpu_servers_stop_cpu_servers_stay(local_hub: LocalHub) -> None:
    name = "culltest"
    token = local_hub.new_user(name)
    hub = HubClient(local_hub.url, token)
    hub.start(name, "gpu1", {"profile": "gpu"})
    hub.start(name, "cpu1", {"profile": "cpu"})
    hub.start(name, "gpu2", {"profile": "gpu"})
    hub.start(name, "odd", {"profile": []})  # this local hub runs no guard: the options are stored raw
    for server in ("gpu1", "cpu1", "gpu2", "odd"):
        hub.wait_ready(name, server, timeout=120)
    # JupyterHub only ever moves last_activity forward, so idleness is made by waiting: everything goes quiet
    # for longer than the (short) timeout, then gpu2 reports activity
    time.sleep(IDLE_TIMEOUT + 2)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    local_hub.admin("POST", f"users/{name}/activity", json={"servers": {"gpu2": {"last_activity": now}}})
    # the culler runs with a token holding only its role's scopes (what hub.loadRoles grants it)
    local_hub.admin("POST", "users/cullbot")
    local_hub.admin("PATCH", "users/cullbot", json={"admin": True})
    scoped = local_hub.admin(
        "POST", "users/cullbot/tokens", json={"note": "gpu culler", "scopes": list(GPU_CULLER_SCOPES)}
    ).json()["token"]
    api = local_hub.url + "hub/api/"
    logged: list[str] = []
    stopped = culler().cull_once(api, scoped, ["gpu"], timeout=IDLE_TIMEOUT, log=logged.append)
    assert stopped == [(name, "gpu1")]
    assert f"skipped {name}/odd: its stored user_options are not readable (profile [])" in logged, logged
    servers = local_hub.admin("GET", f"users/{name}").json()["servers"]
    assert "cpu1" in servers and "gpu2" in servers and "odd" in servers
    assert "gpu1" not in servers or not servers["gpu1"].get("ready")
    for server in ("cpu1", "gpu2", "odd"):
        hub.stop(name, server)
