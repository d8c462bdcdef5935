"""The per-user GPU quota, enforced before every spawn by the hub-side guard (components/shipped/hub_guard.py):
through KubeSpawner 7.0.0 with a user's other servers, and through the REST API of a real JupyterHub 5.5."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from components.core.config import ConfigError
from components.core.config_load import parse_config
from components.core.nodes import parse_nodes
from components.core.values import build_values
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


# ---- counted from pods (they outlive a hub restart) and shown in the form ----


def gpu_pod(user: str, server: str, gpus: int, phase: str = "Running") -> dict[str, Any]:
    annotations = {"hub.jupyter.org/username": user}
    if server:
        annotations["hub.jupyter.org/servername"] = server
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {"cpu": "2"}
    return {
        "metadata": {"annotations": annotations},
        "spec": {"containers": [{"name": "notebook", "resources": {"limits": limits}}]},
        "status": {"phase": phase},
    }


def test_held_gpus_come_from_the_users_pods_and_active_servers() -> None:
    from components.shipped.hub_guard import held_gpus

    pods = [
        gpu_pod("alice", "a", 2),
        gpu_pod("alice", "", 1),  # the default server
        gpu_pod("alice", "done", 4, phase="Succeeded"),
        gpu_pod("alice", "new", 8),  # this spawner's own (old) pod
        gpu_pod("bob", "a", 4),
        gpu_pod("alice", "cpu", 0),
    ]
    # restored from state after a restart: "a" has no options (0) while its pod holds 2; "b" has no pod yet
    assert held_gpus(pods, "alice", [("a", 0), ("b", 1)], "new") == [
        ("", 1),
        ("a", 2),
        ("b", 1),
        ("cpu", 0),
        ("done", 0),
    ]


def test_a_restored_server_without_options_still_counts_through_its_pod() -> None:
    values = values_for(maxGpusPerUser=1)

    async def go() -> None:
        cls = hub_config(values)["c"].JupyterHub.spawner_class
        s = make_spawner(values, spawner_class=cls)
        s.quota_test_pods = [gpu_pod("alice", "a", 1)]
        s.user.spawners = {"a": server("a", 0), "new": s}
        with pytest.raises(ValueError, match=r"you use 1 of your 1 GPUs \(servers: a\)"):
            await pod_for(s, {"profile": "gpu"})

    asyncio.run(go())


def form_profiles() -> list[dict[str, Any]]:
    def choice(n: int, default: bool = False) -> dict[str, Any]:
        c: dict[str, Any] = {"display_name": f"{n} GPU", "kubespawner_override": {"extra_resource_limits": {}}}
        c["kubespawner_override"]["extra_resource_limits"]["nvidia.com/gpu"] = str(n)
        return {**c, "default": True} if default else c

    return [
        {
            "slug": "cpu",
            "description": "no GPU",
            "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": None}},
        },
        {
            "slug": "gpu",
            "description": "one",
            "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}},
        },
        {
            "slug": "h100",
            "description": "big",
            "default": True,
            "profile_options": {"gpus": {"choices": {"1": choice(1), "4": choice(4, default=True), "8": choice(8)}}},
        },
    ]


def test_the_form_keeps_only_choices_within_the_quota_and_says_why() -> None:
    from components.shipped.hub_guard import form_within_quota

    profiles = form_profiles()
    assert form_within_quota(profiles, [("a", 1)], None) is profiles, "no limit: unchanged"
    out = form_within_quota(profiles, [("a", 1)], 3)  # room for 2
    assert [p["slug"] for p in out] == ["cpu", "gpu", "h100"]
    h100 = out[2]
    assert list(h100["profile_options"]["gpus"]["choices"]) == ["1"]
    assert h100["profile_options"]["gpus"]["choices"]["1"]["default"] is True, "the default moved to what is left"
    assert h100["description"] == "big (You use 1 of your 3 GPUs: choices of more than 2 are hidden.)"
    assert out[1]["description"] == "one", "nothing hidden there, nothing said"
    assert list(profiles[2]["profile_options"]["gpus"]["choices"]) == ["1", "4", "8"], "the input is untouched"
    full = form_within_quota(profiles, [("a", 2)], 2)
    assert [p["slug"] for p in full] == ["cpu"] and full[0]["default"] is True
    assert (
        full[0]["description"]
        == "no GPU (2 GPU profiles hidden: you use 2 of your 2 GPUs; stop a server to free them.)"
    )
    assert form_within_quota(profiles[1:], [("a", 2)], 2) is None


def test_the_full_quota_page_escapes_server_names() -> None:
    from components.shipped.hub_guard import quota_full_page

    page = quota_full_page([("<b>x</b>", 1), ("", 1), ("cpu", 0)], 2)
    assert "&lt;b&gt;x&lt;/b&gt;, default" in page and "<b>" not in page and "You use 2 of your 2 GPUs" in page
