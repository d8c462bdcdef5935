"""The image guard and the GPU quota through the REST API of a real JupyterHub 5.5 (127.0.0.1) running the deployed
hub.extraConfig with KubeSpawner 7.0.0: a spawn request with a foreign image is refused before any pod
is made, whatever the request holds; an allowed request gets past the guard (the fake API server then
makes it wait, which is all this test needs to see)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from components.config import parse_config
from components.nodes import parse_nodes
from components.values import build_values
from tests import fakeapi
from tests.cluster.localhub import chp_binary, free_port, running_hub
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "http://127.0.0.1:%d"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: jupyterhub}}]
current-context: none
"""

CONFIG = """
import json
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///" + {workdir!r} + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {workdir!r} + "/cookie_secret"
c.JupyterHub.cleanup_servers = False
c.JupyterHub.allow_named_servers = True
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 2}}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "provisioner", "api_token": {admin_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["provisioner"]}}]
c.KubeSpawner.namespace = "jupyterhub"
c.KubeSpawner.image = {image!r}
c.KubeSpawner.profile_list = json.loads(open({profiles!r}).read())
c.KubeSpawner.k8s_api_request_timeout = 2
exec(open({guards!r}).read())
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    workdir = tmp_path_factory.mktemp("guardhub")
    values = build_values(
        parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}}),
        parse_nodes(SCENARIOS["mixed"]),
        GIVEN_REFS,
    )
    (workdir / "profiles.json").write_text(json.dumps(values["singleuser"]["profileList"]))
    (workdir / "guards.py").write_text(values["hub"]["extraConfig"]["05-guards"])
    # a fake API server: empty lists, open watches, pods accepted and never running, so a spawn past
    # the guards stays pending (active), as on a busy cluster
    api = fakeapi.start()
    (workdir / "kubeconfig").write_text(KUBECONFIG % api.server_address[1])
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
    )
    try:
        with running_hub(workdir, config, port, {"KUBECONFIG": str(workdir / "kubeconfig")}) as log:
            yield f"http://127.0.0.1:{port}/hub/api/", token, log
    finally:
        api.shutdown()


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
