"""The hub-side guards through a real JupyterHub 5.5 (127.0.0.1) running the deployed hub.extraConfig with
KubeSpawner 7.0.0. Over the REST API: a spawn request with a foreign image is refused before any pod is made,
whatever the request holds; user options of the wrong type are refused with a 400 that says why; an allowed
request gets past the guard (the fake API server then makes it wait, which is all this test needs to see).
Through the login form, in shared-password mode: an admin's name, in any case, never logs in with the user
password."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from components.core.config_load import parse_config
from components.core.nodes import parse_nodes
from components.core.values import build_values
from tests import fakeapi
from tests.cluster.localhub import HUB_ON_LOOPBACK, chp_binary, free_port, running_hub
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS

CONFIG = """
import json
""" + HUB_ON_LOOPBACK + """
c.JupyterHub.cleanup_servers = False
c.JupyterHub.allow_named_servers = True
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 2}}
{auth}
c.JupyterHub.services = [{{"name": "provisioner", "api_token": {admin_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["provisioner"]}}]
c.KubeSpawner.namespace = "jupyterhub"
c.KubeSpawner.image = {image!r}
c.KubeSpawner.profile_list = json.loads(open({profiles!r}).read())
c.KubeSpawner.k8s_api_request_timeout = 2
exec(open({guards!r}).read())
{auth_snippet}
"""

DUMMY_AUTH = 'c.JupyterHub.authenticator_class = "dummy"\nc.Authenticator.allow_all = True'


def _run_hub(
    workdir: Path, values: dict[str, Any], auth: str, env: dict[str, str], api: Any = None
) -> Iterator[tuple[str, str, Path]]:
    """A hub with the deployed guards (and login snippet, when ``auth`` is not the dummy one) of ``values``;
    on ``api`` (a fakeapi server that outlives the hub) or a fake API server of its own."""
    (workdir / "profiles.json").write_text(json.dumps(values["singleuser"]["profileList"]))
    (workdir / "guards.py").write_text(values["hub"]["extraConfig"]["05-guards"])
    auth_snippet = ""
    if "10-auth" in values["hub"]["extraConfig"]:
        (workdir / "auth.py").write_text(values["hub"]["extraConfig"]["10-auth"])
        auth_snippet = f"exec(open({str(workdir / 'auth.py')!r}).read())"
    # a fake API server: empty lists, open watches, pods accepted and never running, so a spawn past
    # the guards stays pending (active), as on a busy cluster
    own_api = api is None
    api = api or fakeapi.start()
    (workdir / "kubeconfig").write_text(fakeapi.kubeconfig(api))
    token = secrets.token_hex(16)
    port = free_port()
    config = CONFIG.format(
        port=port,
        hub_port=free_port(),
        proxy_api_port=free_port(),
        chp=chp_binary(),
        workdir=str(workdir),
        admin_token=token,
        image=values["singleuser"]["image"]["name"],
        profiles=str(workdir / "profiles.json"),
        guards=str(workdir / "guards.py"),
        auth=auth,
        auth_snippet=auth_snippet,
    )
    try:
        with running_hub(workdir, config, port, {"KUBECONFIG": str(workdir / "kubeconfig"), **env}) as log:
            yield f"http://127.0.0.1:{port}/hub/api/", token, log
    finally:
        if own_api:
            api.shutdown()


def _values(profiles: dict[str, Any] | None = None, **auth: Any) -> dict[str, Any]:
    raw = {**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}}
    if auth:
        raw["auth"] = auth
    if profiles:
        raw["profiles"] = profiles
    return build_values(parse_config(raw), parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    yield from _run_hub(tmp_path_factory.mktemp("guardhub"), _values(), DUMMY_AUTH, {})


def spawn(hub: tuple[str, str, Path], user: str, options: dict[str, Any]) -> requests.Response:
    url, token, _ = hub
    headers = {"Authorization": f"token {token}"}
    requests.post(f"{url}users/{user}", headers=headers, timeout=30)
    return requests.post(f"{url}users/{user}/server", headers=headers, json=options, timeout=60)


@pytest.mark.parametrize(
    "options",
    [
        {"image--unlisted-choice": "docker.io/evil/miner:latest"},  # no profile: the gap in KubeSpawner
        {"profile": "cpu", "image--unlisted-choice": "harbor.lab.example/jupyter/x:1\n"},
        {"profile": "gpu", "image--unlisted-choice": "harbor.lab.example/other/x:1"},
    ],
)
def test_a_foreign_image_is_refused_over_the_rest_api(hub: tuple[str, str, Path], options: dict[str, Any]) -> None:
    user = f"u{secrets.token_hex(3)}"
    response = spawn(hub, user, options)
    assert response.status_code >= 400, response.text  # the hub does not say why to the client; its log does
    assert _refusal(hub[2], user), hub[2].read_text()[-3000:]


def test_an_allowed_request_gets_past_the_guard(hub: tuple[str, str, Path]) -> None:
    user = f"u{secrets.token_hex(3)}"
    spawn(hub, user, {"image--unlisted-choice": "harbor.lab.example/jupyter/x:1"})
    time.sleep(1)
    assert not _refusal(hub[2], user)
    assert f"{user}" in hub[2].read_text(), "the spawn reached the hub"


def _refusal(log: Path, user: str) -> bool:
    """Whether the hub's log shows the guard refusing this user's spawn."""
    marker = f"Unhandled error starting {user}'s server: "
    lines = [ln for ln in log.read_text().splitlines() if marker in ln]
    return any("failed validation regex" in ln or "is not allowed" in ln for ln in lines)


def test_the_gpu_quota_holds_over_the_rest_api(hub: tuple[str, str, Path]) -> None:
    """Two 1-GPU servers of one user are pending (the fake API server never runs their pods); a third, past
    the default quota of 2 GPUs, is refused and the hub's log says why."""
    url, token, log = hub
    user = f"q{secrets.token_hex(3)}"
    headers = {"Authorization": f"token {token}"}
    requests.post(f"{url}users/{user}", headers=headers, timeout=30)
    for name in ("a", "b"):
        r = requests.post(f"{url}users/{user}/servers/{name}", headers=headers, json={"profile": "gpu"}, timeout=60)
        assert r.status_code in (201, 202), r.text
    r = requests.post(f"{url}users/{user}/servers/c", headers=headers, json={"profile": "gpu"}, timeout=60)
    assert r.status_code >= 400, r.text
    text = log.read_text()
    assert f"Unhandled error starting {user}'s server: you use 2 of your 2 GPUs (servers: a, b)" in text, text[-3000:]
    r = requests.post(f"{url}users/{user}/servers/d", headers=headers, json={"profile": "cpu"}, timeout=60)
    assert r.status_code in (201, 202), "CPU servers are not limited by the GPU quota"


def start(url: str, token: str, user: str, server: str, options: dict[str, Any]) -> requests.Response:
    headers = {"Authorization": f"token {token}"}
    requests.post(f"{url}users/{user}", headers=headers, timeout=30)
    return requests.post(f"{url}users/{user}/servers/{server}", headers=headers, json=options, timeout=60)


def test_the_gpu_quota_holds_after_a_hub_restart(tmp_path: Path) -> None:
    """With maxGpusPerUser 1, a user's 1-GPU server is pending when the hub restarts (a values change under
    `pulumi up` restarts it); the restored hub still refuses a second GPU server. The quota counts the user's
    pods, which the restart does not forget (servers restored from state have no options)."""
    values = _values(profiles={"maxGpusPerUser": 1})
    api = fakeapi.start()
    user = "quinn"
    try:
        with contextlib.contextmanager(_run_hub)(tmp_path, values, DUMMY_AUTH, {}, api) as (url, token, log):
            assert start(url, token, user, "a", {"profile": "gpu"}).status_code in (201, 202)
            assert start(url, token, user, "b", {"profile": "gpu"}).status_code >= 400
        assert [p["metadata"]["annotations"]["hub.jupyter.org/servername"] for p in api.pods.values()] == ["a"]
        with contextlib.contextmanager(_run_hub)(tmp_path, values, DUMMY_AUTH, {}, api) as (url, token, log):
            r = start(url, token, user, "b", {"profile": "gpu"})
            assert r.status_code >= 400, "a second GPU server after the restart"
            text = log.read_text()
            assert "you use 1 of your 1 GPUs (servers: a) and this server asks for 1" in text, text[-3000:]
            assert start(url, token, user, "c", {"profile": "cpu"}).status_code in (201, 202)
    finally:
        api.shutdown()


def spawn_page(url: str, user: str, server: str) -> str:
    """The spawn form as the user's browser gets it, after logging in through the form (dummy login)."""
    base = url.removesuffix("api/")
    session = requests.Session()
    session.get(f"{base}login", timeout=30)
    form = {"username": user, "password": "any", "_xsrf": session.cookies.get("_xsrf")}
    assert session.post(f"{base}login", data=form, allow_redirects=False, timeout=30).status_code == 302
    page = session.get(f"{base}spawn/{user}/{server}", timeout=60)
    page.raise_for_status()
    return page.text


def gpu_choices(page: str, profile: str) -> list[str]:
    """The GPU counts the form offers for ``profile`` (KubeSpawner's form: one <option> per choice)."""
    block = page.split(f'value="{profile}"', 1)[1].split('type="radio"', 1)[0]
    select = block.split('name="profile-option-' + profile + '--gpus"', 1)[1].split("</select>", 1)[0]
    return re.findall(r'<option value="([^"]+)"', select)


def test_the_form_offers_only_what_the_quota_allows(tmp_path: Path) -> None:
    """maxGpusPerUser 1: the 2-GPU choice of the RTX 4090 class is not offered, and says why; once a 1-GPU
    server holds the user's GPU, no GPU profile is (CPU profiles stay)."""
    values = _values(profiles={"maxGpusPerUser": 1})
    rtx = next(p["slug"] for p in values["singleuser"]["profileList"] if "4090" in p["slug"])
    with contextlib.contextmanager(_run_hub)(tmp_path, values, DUMMY_AUTH, {}) as (url, token, _):
        page = spawn_page(url, "fay", "x")
        assert gpu_choices(page, rtx) == ["1"], page
        assert "You use 0 of your 1 GPUs: choices of more than 1 are hidden." in page
        assert start(url, token, "fay", "a", {"profile": "gpu"}).status_code in (201, 202)
        page = spawn_page(url, "fay", "x")
        assert f'value="{rtx}"' not in page and 'value="gpu"' not in page and 'value="fine-tuning"' not in page
        assert 'value="cpu"' in page
        hidden = "GPU profiles hidden: you use 1 of your 1 GPUs; stop a server to free them."
        assert hidden in page, re.findall(r"<p>[^<]*</p>", page)
        unlimited = spawn_page(url, "gil", "x")
        assert gpu_choices(unlimited, rtx) == ["1"], "gil has the same quota"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"profile": []}, "profile"),  # falsy: KubeSpawner would take it for "the default profile"
        ({"profile": {}}, "profile"),
        ({"profile": {"slug": "gpu"}}, "profile"),
        ({"profile": 1}, "profile"),
        ({"profile": "gpu", "image": ["x"]}, "image"),
        ({"profile": "cpu", "image--unlisted-choice": {"a": 1}}, "image--unlisted-choice"),
    ],
)
def test_options_of_the_wrong_type_are_refused_with_400(
    hub: tuple[str, str, Path], options: dict[str, Any], key: str
) -> None:
    """JupyterHub stores a start request's options raw and hands them back after a restart; a list under
    "profile" would then break every pass of the GPU culler (its profile set lookup cannot hash it)."""
    user = f"t{secrets.token_hex(3)}"
    response = spawn(hub, user, options)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert f"user option {key!r} must be a string" in message, message
    url, token, _ = hub
    model = requests.get(f"{url}users/{user}", headers={"Authorization": f"token {token}"}, timeout=30).json()
    assert model["servers"] == {}, "nothing was started"


# ---- shared-password login through the hub's login form ----

USER_PASSWORD = "shared-user-password-1"
ADMIN_PASSWORD = "admin-password-of-at-least-32-chars-0123456789"


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """The deployed shared-password login (hub.config section and 10-auth snippet), the passwords in the hub's
    environment as the Secret puts them there."""
    values = _values(
        mode="shared-password",
        sharedPassword=USER_PASSWORD,
        allowedUsers=["ann", "bob"],
        adminUsers=["admin"],
        adminPassword=ADMIN_PASSWORD,
    )
    auth = f"for _section, _traits in {values['hub']['config']!r}.items():\n    c[_section].update(_traits)"
    env = {"GPU_JUPYTERHUB_SHARED_PASSWORD": USER_PASSWORD, "GPU_JUPYTERHUB_ADMIN_PASSWORD": ADMIN_PASSWORD}
    yield from _run_hub(tmp_path_factory.mktemp("sharedhub"), values, auth, env)


def login(hub: tuple[str, str, Path], username: str, password: str) -> str | None:
    """Log in through the hub's form as a browser does; the name the hub then knows the session by, or None."""
    base = hub[0].removesuffix("api/")
    session = requests.Session()
    session.get(f"{base}login", timeout=30)
    xsrf = session.cookies.get("_xsrf")
    form = {"username": username, "password": password, "_xsrf": xsrf}
    response = session.post(f"{base}login", data=form, allow_redirects=False, timeout=30)
    if response.status_code != 302:
        return None
    me = session.get(f"{base}api/user", headers={"X-XSRFToken": xsrf}, timeout=30)
    me.raise_for_status()
    return me.json()["name"]


@pytest.mark.parametrize("name", ["Admin", "ADMIN", "admin", " aDmin "])
def test_an_admin_name_never_logs_in_with_the_user_password(shared_hub: tuple[str, str, Path], name: str) -> None:
    """Upstream compares the typed name with admin_users before the hub lowercases it: "Admin" with the user
    password came back as the session of "admin" (its servers, its notebooks)."""
    assert login(shared_hub, name, USER_PASSWORD) is None


def test_shared_password_logins_that_stay_allowed(shared_hub: tuple[str, str, Path]) -> None:
    assert login(shared_hub, "Admin", ADMIN_PASSWORD) == "admin"
    assert login(shared_hub, "ann", USER_PASSWORD) == "ann"
    assert login(shared_hub, "ANN", USER_PASSWORD) == "ann"
    assert login(shared_hub, "ann", ADMIN_PASSWORD) is None, "the admin password is for admin names only"
    assert login(shared_hub, "eve", USER_PASSWORD) is None, "not an allowed user"


def test_failed_logins_pause_the_name(tmp_path: Path) -> None:
    """Five wrong passwords under the admin name: the right one is refused for a while too, and says so in
    the hub's log; other names log in as before."""
    values = _values(
        mode="shared-password",
        sharedPassword=USER_PASSWORD,
        allowedUsers=["ann"],
        adminUsers=["admin"],
        adminPassword=ADMIN_PASSWORD,
    )
    auth = f"for _section, _traits in {values['hub']['config']!r}.items():\n    c[_section].update(_traits)"
    env = {"GPU_JUPYTERHUB_SHARED_PASSWORD": USER_PASSWORD, "GPU_JUPYTERHUB_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with contextlib.contextmanager(_run_hub)(tmp_path, values, auth, env) as hub:
        for _ in range(5):
            assert login(hub, "admin", f"guess-{secrets.token_hex(4)}") is None
        assert login(hub, "Admin", ADMIN_PASSWORD) is None, "the right password, after five failures"
        assert "refused a login under the name 'admin': too many failed logins" in hub[2].read_text()
        assert login(hub, "ann", USER_PASSWORD) == "ann"
