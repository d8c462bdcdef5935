"""The GPU-idle culler's deploy side (service, role, file) and its pure selection (components/shipped/gpu_culler.py);
tests/cluster/test_gpu_culler_local.py runs it against a real JupyterHub."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from components import shipped
from components.core.config_load import parse_config
from components.core.hub_services import GPU_CULLER_PATH, GPU_CULLER_SCOPES
from components.core.nodes import parse_nodes
from components.core.values import build_values
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS

ROOT = Path(__file__).resolve().parents[1]


def culler() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_culler", ROOT / "components" / "shipped" / "gpu_culler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def values_for(scenario: str = "mixed", **culling: Any) -> dict[str, Any]:
    raw = {**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}, "culling": culling}
    return build_values(parse_config(raw), parse_nodes(SCENARIOS[scenario]), GIVEN_REFS)


def test_the_service_runs_with_its_own_role_on_the_gpu_profiles() -> None:
    hub = values_for()["hub"]
    command = hub["services"]["gpu-culler"]["command"]
    profiles = [a.split("=", 1)[1] for a in command if a.startswith("--gpu-profile=")]
    assert "gpu" in profiles and "fine-tuning" in profiles and any("4090" in p for p in profiles)
    assert "cpu" not in profiles and "agent-dev" not in profiles
    assert "--timeout=1800" in command and command[1] == GPU_CULLER_PATH
    assert hub["loadRoles"]["gpu-culler"] == {"services": ["gpu-culler"], "scopes": list(GPU_CULLER_SCOPES)}
    assert "admin" not in hub["services"]["gpu-culler"], "no admin rights: its role is all it has"
    assert hub["extraFiles"]["gpu-culler"]["stringData"] == shipped.text("gpu_culler.py")


def test_off_without_gpu_profiles_or_when_switched_off() -> None:
    for hub in (values_for("nogpu")["hub"], values_for(gpuTimeoutSeconds=0)["hub"], values_for(enabled=False)["hub"]):
        assert "gpu-culler" not in hub.get("services", {})
        assert "gpu-culler" not in hub.get("loadRoles", {})
        assert "gpu-culler" not in hub.get("extraFiles", {})


def test_idle_selection() -> None:
    users = [
        {
            "name": "ann",
            "servers": {
                "": {"user_options": {"profile": "gpu"}, "last_activity": "2026-01-01T00:00:00Z"},
                "cpu": {"user_options": {"profile": "cpu"}, "last_activity": "2026-01-01T00:00:00Z"},
                "fresh": {"user_options": {"profile": "gpu"}, "last_activity": "2026-01-01T00:29:00Z"},
                "new": {"user_options": {"profile": "gpu"}, "last_activity": None, "started": "2026-01-01T00:00:00Z"},
                "none": {"user_options": {}, "last_activity": "2026-01-01T00:00:00Z"},
            },
        }
    ]
    now = culler().parse_time("2026-01-01T00:31:00Z")
    picked = culler().idle_gpu_servers(users, {"gpu"}, 1800, now)
    assert [(u, s) for u, s, _ in picked] == [("ann", ""), ("ann", "new")]


def test_a_server_whose_options_cannot_be_read_is_skipped_logged_and_the_others_culled() -> None:
    """JupyterHub stores a start request's options raw and returns them after a restart: one server with a list
    under "profile" made every pass fail (``TypeError: unhashable type: 'list'``), so no GPU server was culled."""
    old = "2026-01-01T00:00:00Z"
    users = [
        {
            "name": "mal",
            "servers": {
                "": {"user_options": {"profile": []}, "last_activity": old},
                "d": {"user_options": {"profile": {"slug": "gpu"}}, "last_activity": old},
                "l": {"user_options": ["gpu"], "last_activity": old},
                "s": {"user_options": "gpu", "last_activity": old},
            },
        },
        {"name": "ann", "servers": {"g": {"user_options": {"profile": "gpu"}, "last_activity": old}}},
        {"name": "bob", "servers": {"": {"user_options": {"profile": "gpu"}, "last_activity": "yesterday"}}},
        {"name": "cy", "servers": {"": {"user_options": {"profile": "gpu"}, "last_activity": old}}},
    ]
    module = culler()
    calls: list[tuple[str, str]] = []

    def api(base: str, token: str, method: str, path: str, params: Any = None) -> Any:
        calls.append((method, path))
        return {"items": users, "_pagination": {}} if method == "GET" else None

    module._api = api
    logged: list[str] = []
    now = module.parse_time("2026-01-01T00:31:00Z")
    stopped = module.cull_once("http://hub/api", "t", ["gpu"], 1800, now=now, log=logged.append)
    assert stopped == [("ann", "g"), ("cy", "")]
    assert [c for c in calls if c[0] == "DELETE"] == [("DELETE", "users/ann/servers/g"), ("DELETE", "users/cy/server")]
    skipped = [m for m in logged if m.startswith("skipped")]
    assert skipped == [
        "skipped mal/(default): its stored user_options are not readable (profile [])",
        "skipped mal/d: its stored user_options are not readable (profile {'slug': 'gpu'})",
        "skipped mal/l: its stored user_options are not readable (['gpu'])",
        "skipped mal/s: its stored user_options are not readable ('gpu')",
        "skipped bob/(default): its activity time is not readable ('yesterday')",
    ], logged
