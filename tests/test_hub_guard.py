"""The hub-side guards (components/shipped/hub_guard.py), executed as the hub executes hub.extraConfig.

The image guard, through KubeSpawner 7.0.0 itself: a request without a profile, a newline, another Harbor
project or a too-permissive regex never yields a pod with an image the deploy did not allow. The native
login guard, on NativeAuthenticator 1.3.0 with a real (in-memory) hub database: nobody can sign up under
an admin name or be pre-approved, and admins log in with the deploy's password only.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from components.core.config_load import parse_config
from components.core.nodes import parse_nodes
from components.core.values import build_values
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS
from tests.hubcode import exec_hub_text
from tests.spawner import make_spawner, pod_for

EVIL = "docker.io/evil/miner:latest"
OURS = "harbor.lab.example/jupyter/team/custom:1"


def values_for(**auth: Any) -> dict[str, Any]:
    raw = {**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}}
    if auth:
        raw["auth"] = auth
    return build_values(parse_config(raw), parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)


def hub_config(values: dict[str, Any]) -> dict[str, Any]:
    """Run every hub.extraConfig snippet, in order, on a traitlets Config as the chart's jupyterhub_config.py."""
    from traitlets.config import Config

    c = Config()
    c.KubeSpawner.profile_list = copy.deepcopy(values["singleuser"]["profileList"])
    ns: dict[str, Any] = {"c": c, "__name__": "jupyterhub_config"}
    for key in sorted(values["hub"]["extraConfig"]):
        exec_hub_text(values["hub"]["extraConfig"][key], ns)
    return {"c": c, **ns}


def spawn(values: dict[str, Any], options: dict[str, Any], guarded: bool = True) -> dict[str, Any]:
    from kubespawner import KubeSpawner

    cls = hub_config(values)["c"].JupyterHub.spawner_class if guarded else KubeSpawner
    assert cls is KubeSpawner or cls.__name__ == "GuardedKubeSpawner"

    async def go() -> dict[str, Any]:
        return await pod_for(make_spawner(values, spawner_class=cls), options)

    return asyncio.run(go())


def image(pod: dict[str, Any]) -> str:
    return pod["spec"]["containers"][0]["image"]


def test_without_a_profile_plain_kubespawner_runs_any_image_but_the_guard_refuses() -> None:
    values = values_for()
    # the gap the guard closes: KubeSpawner skips validation when no profile is named
    assert image(spawn(values, {"image--unlisted-choice": EVIL}, guarded=False)) == EVIL
    with pytest.raises(ValueError, match="validation regex"):
        spawn(values, {"image--unlisted-choice": EVIL})
    assert image(spawn(values, {"image--unlisted-choice": OURS})) == OURS
    assert image(spawn(values, {})) == GIVEN_REFS["jupyter-ml-cpu"]


@pytest.mark.parametrize(
    "bad",
    [EVIL, OURS + "\n", "harbor.lab.example/other-project/x:1", "harbor.lab.example.evil.com/jupyter/x:1"],
)
def test_free_form_images_outside_our_project_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="validation regex"):
        spawn(values_for(), {"profile": "gpu", "image--unlisted-choice": bad})


def test_the_final_image_is_checked_even_when_a_regex_is_too_permissive() -> None:
    values = values_for()
    for p in values["singleuser"]["profileList"]:
        for option in p.get("profile_options", {}).values():
            if option.get("unlisted_choice"):
                option["unlisted_choice"]["validation_regex"] = ".*"
    with pytest.raises(ValueError, match=r"is not allowed: only images from harbor\.lab\.example/jupyter/"):
        spawn(values, {"profile": "cpu", "image--unlisted-choice": EVIL})
    assert image(spawn(values, {"profile": "cpu", "image--unlisted-choice": OURS})) == OURS


# ---- native login ----


def native(allowed: list[str] | None = None) -> Any:
    from nativeauthenticator import NativeAuthenticator
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    values = values_for(
        mode="native", adminUsers=["admin"], allowedUsers=allowed or [], adminPassword="deploy-made-secret-1"
    )
    ns = hub_config(values)
    cls = ns["c"].JupyterHub.authenticator_class
    assert issubclass(cls, NativeAuthenticator) and cls.__name__ == "GuardedNativeAuthenticator"
    settings = values["hub"]["config"]["NativeAuthenticator"]
    session = sessionmaker(bind=create_engine("sqlite://"))()
    return cls(_deprecated_db_session=session, **settings), settings


def login(auth: Any, name: str, password: str) -> Any:
    return asyncio.run(auth.authenticate(None, {"username": name, "password": password}))


def test_nobody_can_claim_the_admin_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPU_JUPYTERHUB_ADMIN_PASSWORD", "deploy-made-secret-1")
    auth, settings = native()
    assert settings["open_signup"] is False and settings["allow_all"] is True
    assert auth.create_user("admin", "a-long-password-1") is None, "sign-up under the admin name refused"
    assert login(auth, "admin", "a-long-password-1") is None
    assert login(auth, "admin", "deploy-made-secret-1") == {"name": "admin", "admin": True}
    assert login(auth, "admin", "deploy-made-secret-") is None


def test_sign_ups_wait_for_approval_even_for_allowed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPU_JUPYTERHUB_ADMIN_PASSWORD", "deploy-made-secret-1")
    auth, settings = native(allowed=["bob"])
    assert settings["allow_all"] is False and settings["allowed_users"] == ["bob"]
    info = auth.create_user("bob", "a-long-password-1")
    assert info is not None and not info.is_authorized, "upstream would pre-approve an allowed name"
    assert login(auth, "bob", "a-long-password-1") is None
    info.is_authorized = True  # what an admin's approval does
    auth.db.commit()
    assert login(auth, "bob", "a-long-password-1") == "bob"


def test_admin_login_fails_closed_without_the_deploy_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPU_JUPYTERHUB_ADMIN_PASSWORD", raising=False)
    auth, _ = native()
    assert login(auth, "admin", "") is None and login(auth, "admin", "anything") is None


def test_admin_password_reaches_the_hub_only_as_a_secret_reference() -> None:
    values = values_for(mode="native", adminUsers=["admin"], adminPassword="deploy-made-secret-1")
    text = repr(values)
    assert "deploy-made-secret-1" not in text
    env = values["hub"]["extraEnv"]["GPU_JUPYTERHUB_ADMIN_PASSWORD"]
    assert env == {"valueFrom": {"secretKeyRef": {"name": "gpu-jupyterhub-auth", "key": "admin-password"}}}


def test_login_throttle_pauses_a_name_after_five_failures() -> None:
    from components.shipped.hub_guard import LoginThrottle

    now = [1000.0]
    t = LoginThrottle(failures=5, pause=60, clock=lambda: now[0], size=3)
    for _ in range(4):
        t.failed("admin")
    assert not t.blocked("admin")
    t.failed("admin")
    assert t.blocked("admin") and not t.blocked("ann")
    now[0] += 59
    assert t.blocked("admin")
    now[0] += 1
    assert not t.blocked("admin"), "the pause ends; the count starts again"
    t.failed("admin")
    t.succeeded("admin")
    assert t._seen == {}
    for name in "abcd":
        t.failed(name)
    assert list(t._seen) == ["b", "c", "d"], "bounded: the oldest name is forgotten"


def test_native_admin_logins_are_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPU_JUPYTERHUB_ADMIN_PASSWORD", "deploy-made-secret-1")
    auth, settings = native()
    assert (settings["allowed_failed_logins"], settings["seconds_before_next_try"]) == (5, 60), "other accounts"
    for _ in range(5):
        assert login(auth, "admin", "guess") is None
    assert login(auth, "admin", "deploy-made-secret-1") is None, "paused after five failures"
