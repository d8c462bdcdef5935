"""The per-user GPU quota, enforced before every spawn by the hub-side guard (components/hub_guard.py):
through KubeSpawner 7.0.0 with a user's other servers, and through the REST API of a real JupyterHub 5.5."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from components.config import ConfigError, parse_config
from components.nodes import parse_nodes
from components.values import build_values
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS
from tests.spawner import make_spawner, pod_for
from tests.test_hub_guard import hub_config


def values_for(**profiles: Any) -> dict[str, Any]:
    raw = {**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}, "profiles": profiles}
    return build_values(parse_config(raw), parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)


def server(name: str, gpus: int, active: bool = True) -> Any:
    return SimpleNamespace(
        name=name, active=active, extra_resource_limits={"nvidia.com/gpu": str(gpus)} if gpus else {}
    )


def spawn(
    values: dict[str, Any],
    options: dict[str, Any],
    others: list[Any],
    groups: tuple[str, ...] = (),
    admin: bool = False,
) -> dict[str, Any]:
    cls = hub_config(values)["c"].JupyterHub.spawner_class

    async def go() -> dict[str, Any]:
        s = make_spawner(values, spawner_class=cls)
        s.user.groups = [SimpleNamespace(name=g) for g in groups]
        s.user.admin = admin
        s.user.spawners = {**{o.name: o for o in others}, "new": s}
        return await pod_for(s, options)

    return asyncio.run(go())


def rtx(values: dict[str, Any]) -> str:
    return next(p["slug"] for p in values["singleuser"]["profileList"] if "4090" in p["slug"])


def test_a_spawn_past_the_quota_is_refused_and_names_the_servers() -> None:
    values = values_for(maxGpusPerUser=2)
    spawn(values, {"profile": "gpu"}, [server("a", 1)])  # 1 + 1: fine
    with pytest.raises(ValueError, match=r"you use 2 of your 2 GPUs \(servers: a, b\)"):
        spawn(values, {"profile": "gpu"}, [server("a", 1), server("b", 1)])
    with pytest.raises(ValueError, match="asks for 2"):
        spawn(values, {"profile": rtx(values), "gpus": "2"}, [server("a", 1)])
    # stopped servers and CPU servers hold nothing; CPU spawns are never limited
    spawn(values, {"profile": "gpu"}, [server("a", 1, active=False), server("cpu", 0), server("b", 1)])
    spawn(values, {"profile": "cpu"}, [server("a", 1), server("b", 1)])


def test_group_and_admin_limits() -> None:
    values = values_for(maxGpusPerUser=1, gpuQuota={"ml-team": 4}, adminMaxGpus=0)
    others = [server("a", 1), server("b", 1)]
    with pytest.raises(ValueError, match="of your 1 GPUs"):
        spawn(values, {"profile": "gpu"}, others)
    spawn(values, {"profile": "gpu"}, others, groups=("ml-team",))
    spawn(values, {"profile": "gpu"}, [*others, server("c", 2)], admin=True)  # admins: no limit here
    unlimited = values_for(maxGpusPerUser=0)
    spawn(unlimited, {"profile": "gpu"}, [server(f"s{i}", 2) for i in range(8)])


@pytest.mark.parametrize(
    ("profiles", "key"),
    [({"maxGpusPerUser": -1}, "profiles.maxGpusPerUser"), ({"gpuQuota": {"team": -2}}, "profiles.gpuQuota")],
)
def test_bad_quota_config_names_the_key(profiles: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        values_for(**profiles)
