"""Cross-artifact wiring, on the objects the program registers (Pulumi mocks): every Secret the values or a
pod refer to is one the program creates (or the chart does), holding the key referred to; every claim a pod
mounts is registered; every image a profile names is one the program built or was given. A wrong name or key
in any of these stops the hub or a pod from starting, and no single-artifact test would notice."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.conftest import GIVEN_REFS, SECRETS
from tests.hubconfig import hub_config
from tests.program import Run
from tests.test_program import run

# Secrets the chart itself creates in the release namespace, with the keys it writes.
CHART_SECRETS = {"hub": None, "singleuser": None}


def _walk(obj: Any, found: list[dict[str, Any]], key: str) -> None:
    if isinstance(obj, dict):
        if key in obj and isinstance(obj[key], dict):
            found.append(obj[key])
        for v in obj.values():
            _walk(v, found, key)
    elif isinstance(obj, list):
        for v in obj:
            _walk(v, found, key)


def _secrets(r: Run) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for res in r.of_type("kubernetes:core/v1:Secret"):
        data = {**(res.inputs.get("stringData") or {}), **(res.inputs.get("data") or {})}
        out[res.inputs["metadata"]["name"]] = set(data)
    return out


def _check(r: Run) -> list[str]:
    """Every dangling reference, as text (empty: all wired)."""
    problems: list[str] = []
    secrets = _secrets(r)
    everything = [res.inputs for res in r.resources]
    refs: list[dict[str, Any]] = []
    _walk(everything, refs, "secretKeyRef")
    for ref in refs:
        name, key = ref.get("name"), ref.get("key")
        if name in CHART_SECRETS:
            continue
        if name not in secrets:
            problems.append(f"secretKeyRef to Secret {name!r}, which the program does not create")
        elif key not in secrets[name]:
            problems.append(f"secretKeyRef to key {key!r} of Secret {name!r}, which holds {sorted(secrets[name])}")
    values = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    pull_names = list(values["singleuser"]["image"]["pullSecrets"]) + list(values.get("imagePullSecrets", []))
    for ds in r.of_type("kubernetes:apps/v1:DaemonSet"):
        pull_names += [s["name"] for s in ds.inputs["spec"]["template"]["spec"].get("imagePullSecrets") or []]
    for name in pull_names:
        if name not in secrets:
            problems.append(f"imagePullSecret {name!r} is not created")
        elif ".dockerconfigjson" not in secrets[name]:
            problems.append(f"imagePullSecret {name!r} holds no .dockerconfigjson")
    claims = {res.inputs["metadata"]["name"] for res in r.of_type("kubernetes:core/v1:PersistentVolumeClaim")}
    storage = values["singleuser"]["storage"]
    if storage["type"] == "static" and storage["static"]["pvcName"] not in claims:
        problems.append(f"user pods mount claim {storage['static']['pvcName']!r}, which is not registered")
    allowed_images = set(GIVEN_REFS.values())
    profile_images: list[str] = []
    overrides: list[dict[str, Any]] = []
    _walk(values["singleuser"]["profileList"], overrides, "kubespawner_override")
    profile_images += [o["image"] for o in overrides if isinstance(o.get("image"), str) and "{" not in o["image"]]
    for image in [*profile_images, values["singleuser"]["image"]["name"]]:
        if image not in allowed_images:
            problems.append(f"image {image!r} is neither built nor given")
    return problems


@pytest.mark.parametrize("mode", ["oidc", "native", "shared-password"])
def test_every_reference_resolves(prebuilt_config: dict[str, Any], mode: str) -> None:
    cfg = copy.deepcopy(prebuilt_config)
    if mode == "native":
        cfg["auth"] = {"mode": "native", "adminUsers": ["ann"], "adminPassword": SECRETS["shared"] + "-admin"}
    if mode == "shared-password":
        cfg["auth"] = {
            "mode": "shared-password",
            "sharedPassword": SECRETS["shared"],
            "allowedUsers": ["bob"],
            "adminUsers": ["ann"],
            "adminPassword": "a" * 40,
        }
    r = run(cfg)
    assert _check(r) == []
    refs: list[dict[str, Any]] = []
    _walk(r.one("kubernetes:helm.sh/v3:Release").inputs["values"], refs, "secretKeyRef")
    assert refs, "the values do refer to secrets"


def test_the_chart_images_pull_with_a_secret_the_program_creates(prebuilt_config: dict[str, Any]) -> None:
    cfg = copy.deepcopy(prebuilt_config)
    cfg["chart"] = {"images": {"registry": "harbor.lab.example/jupyterhub-mirror"}}
    r = run(cfg)
    assert _check(r) == []
    values = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    assert values["imagePullSecrets"] == ["harbor-pull"]
    values["imagePullSecrets"] = ["harbor-pul"]
    assert "imagePullSecret 'harbor-pul' is not created" in _check(r)


def test_the_check_catches_a_wrong_key_or_name(prebuilt_config: dict[str, Any]) -> None:
    """What the audit found passing every test: a renamed key or Secret in the values."""
    r = run(copy.deepcopy(prebuilt_config))
    env = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]["hub"]["extraEnv"]
    original = json.dumps(env)
    env["OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["key"] = "client-secret"
    assert any("key 'client-secret'" in p for p in _check(r))
    env.update(json.loads(original))
    env["OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] = "gpu-jupyterhub-oauth"
    assert any("'gpu-jupyterhub-oauth', which the program does not create" in p for p in _check(r))
    env.update(json.loads(original))
    values = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    values["singleuser"]["storage"]["static"]["pvcName"] = "notebooks"
    assert any("claim 'notebooks'" in p for p in _check(r))


# Login as the deployed hub configures it: the program's release values go through the published chart's own
# jupyterhub_config.py (tests/hubconfig.py), the hub's environment is built from ``hub.extraEnv`` by following
# each secretKeyRef into the Secret the program registers, and JupyterHub resolves and instantiates the
# authenticator from that configuration. What is asserted is the authenticator's state (URLs, secrets, admin
# and group rules), so a wrong class name, trait section, environment variable or Secret key fails here even
# where the values "look" right (mutation testing found those unasserted).
ADMIN_PASSWORD = "admin-password-value-3c9d-0123456789abcdef"


def _hub_env(r: Any) -> dict[str, str]:
    """The hub container's environment from hub.extraEnv, each secretKeyRef followed into its Secret."""
    values = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    secrets = {
        res.inputs["metadata"]["name"]: res.inputs.get("stringData") or {}
        for res in r.of_type("kubernetes:core/v1:Secret")
    }
    env = {}
    for name, entry in values["hub"]["extraEnv"].items():
        ref = entry["valueFrom"]["secretKeyRef"]
        env[name] = secrets[ref["name"]][ref["key"]]
    return env


def _authenticator(cfg: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The authenticator JupyterHub would run with the deployed configuration. The hub's environment stays
    set for the rest of the test: extraConfig snippets and trait defaults (OAUTH_CLIENT_SECRET) read it."""
    from jupyterhub import orm
    from jupyterhub.app import JupyterHub

    r = run(cfg)
    values = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    for name, value in _hub_env(r).items():
        monkeypatch.setenv(name, value)
    c = hub_config(values)
    app = JupyterHub(config=c)
    db = orm.new_session_factory("sqlite:///:memory:")()  # the native authenticator keeps its table there
    return app.authenticator_class(parent=app, config=c, db=db)


def test_oidc_login_is_generic_oauth_against_the_issuers_endpoints(
    base_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from oauthenticator.generic import GenericOAuthenticator

    authenticator = _authenticator(base_config, monkeypatch)
    assert type(authenticator) is GenericOAuthenticator
    base = "https://keycloak.lab.example/realms/lab/protocol/openid-connect"
    assert authenticator.authorize_url == f"{base}/auth"
    assert authenticator.token_url == f"{base}/token"
    assert authenticator.userdata_url == f"{base}/userinfo"
    assert authenticator.client_id == "jupyterhub"
    assert authenticator.client_secret == SECRETS["client"], "the secret reaches the authenticator from its Secret"
    assert authenticator.oauth_callback_url == "https://jupyter.lab.example/hub/oauth_callback"
    assert authenticator.allowed_groups == {"jupyter-users"}
    assert authenticator.admin_groups == {"jupyter-admins"}
    assert authenticator.manage_groups is True
    assert authenticator.auth_state_groups_key == "oauth_user.groups"
    assert authenticator.login_service == "single sign-on"


def test_explicit_oidc_endpoints_replace_the_derived_ones(
    base_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = copy.deepcopy(base_config)
    cfg["auth"]["oidc"] |= {
        "authorizeUrl": "https://sso.lab.example/authorize",
        "tokenUrl": "https://sso.lab.example/token",
        "userdataUrl": "https://sso.lab.example/me",
    }
    authenticator = _authenticator(cfg, monkeypatch)
    assert (authenticator.authorize_url, authenticator.token_url, authenticator.userdata_url) == (
        "https://sso.lab.example/authorize",
        "https://sso.lab.example/token",
        "https://sso.lab.example/me",
    )


@pytest.mark.parametrize("admins", [[], ["ada"]], ids=["no-admins", "admins"])
def test_shared_password_login_takes_both_passwords_from_their_secret(
    base_config: dict[str, Any], admins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyterhub.authenticators.shared import SharedPasswordAuthenticator

    cfg = copy.deepcopy(base_config)
    cfg["auth"] = {"mode": "shared-password", "sharedPassword": SECRETS["shared"], "allowedUsers": ["ann", "bob"]}
    if admins:
        cfg["auth"] |= {"adminUsers": admins, "adminPassword": ADMIN_PASSWORD}
    authenticator = _authenticator(cfg, monkeypatch)
    assert isinstance(authenticator, SharedPasswordAuthenticator)
    assert type(authenticator).__name__ == "GuardedSharedPasswordAuthenticator", "admin names checked normalized"
    assert authenticator.user_password == SECRETS["shared"]
    assert authenticator.allowed_users == {"ann", "bob"}
    assert authenticator.admin_users == set(admins)
    assert authenticator.admin_password == (ADMIN_PASSWORD if admins else None)
    # the hub's own entry point (authenticate, normalize, allow): an admin name in any case needs the admin password
    import asyncio

    def login(name: str, password: str) -> Any:
        data = {"username": name, "password": password}
        return asyncio.run(authenticator.get_authenticated_user(None, data))

    assert login("ANN", SECRETS["shared"])["name"] == "ann"
    if admins:
        assert login("Ada", SECRETS["shared"]) is None and login("ADA", SECRETS["shared"]) is None
        # (the running hub also adds admin names to allowed_users at start; tests/test_hub_guard_rest.py shows it)
        admin = asyncio.run(authenticator.authenticate(None, {"username": "Ada", "password": ADMIN_PASSWORD}))
        assert admin == {"name": "ada", "admin": True, "groups": []}


def test_native_login_is_the_guarded_native_authenticator_with_approval(
    base_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from nativeauthenticator import NativeAuthenticator

    cfg = copy.deepcopy(base_config)
    cfg["auth"] = {"mode": "native", "adminUsers": ["ada"], "adminPassword": ADMIN_PASSWORD}
    authenticator = _authenticator(cfg, monkeypatch)
    assert isinstance(authenticator, NativeAuthenticator) and type(authenticator) is not NativeAuthenticator
    assert authenticator.open_signup is False
    assert authenticator.minimum_password_length == 10
    assert authenticator.admin_users == {"ada"}
    assert authenticator.allow_all is True, "no allowedUsers: every approved account may log in"
    cfg["auth"]["allowedUsers"] = ["ann"]
    authenticator = _authenticator(cfg, monkeypatch)
    assert authenticator.allow_all is False and authenticator.allowed_users == {"ann"}
