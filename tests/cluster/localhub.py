"""A real JupyterHub 5.5 on 127.0.0.1 with a local-process spawner, to test the verification client on."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
CHP_INSTALLER = REPO / "scripts" / "notebooks" / "install-chp.sh"

# The start of every test hub's jupyterhub_config.py: hub and proxy on 127.0.0.1, state in the work dir (a
# str.format template: {port}, {hub_port}, {proxy_api_port}, {chp}, {workdir}).
HUB_ON_LOOPBACK = """
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///" + {workdir!r} + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {workdir!r} + "/cookie_secret"
"""

HUB_CONFIG = """
import os
""" + HUB_ON_LOOPBACK + """
c.ConfigurableHTTPProxy.pid_file = {workdir!r} + "/proxy.pid"
c.JupyterHub.pid_file = {workdir!r} + "/jupyterhub.pid"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "provisioner", "api_token": {admin_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["provisioner"]}}]

c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {workdir!r} + "/homes/{{username}}"
c.Spawner.notebook_dir = {workdir!r} + "/homes/{{username}}/notebooks"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = ["--ServerApp.allow_root=True"]  # CI runs as root
c.Spawner.ip = "127.0.0.1"
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
c.Spawner.default_url = "/tree"


def _home(spawner):
    return os.path.join({workdir!r}, "homes", spawner.user.name)


def pre_spawn_hook(spawner):
    # As on the cluster: persistent notebooks and scratch dirs; an unknown profile slug fails the spawn.
    if spawner.user_options.get("profile") == "broken":
        raise ValueError("unknown profile 'broken'")
    for sub in ("notebooks", "scratch"):
        os.makedirs(os.path.join(_home(spawner), sub), exist_ok=True)


c.Spawner.pre_spawn_hook = pre_spawn_hook
c.Spawner.environment = {{
    "GPU_JUPYTERHUB_NOTEBOOKS_DIR": lambda s: os.path.join(_home(s), "notebooks"),
    "GPU_JUPYTERHUB_SCRATCH_DIR": lambda s: os.path.join(_home(s), "scratch"),
    "GPU_JUPYTERHUB_PROFILE": lambda s: str(s.user_options.get("profile") or ""),
    # stands in for the node a pod lands on: chosen by a node-selection user option, as on the cluster
    "NODE_NAME": lambda s: s.user_options.get("node", "local-node"),
    "NVIDIA_VISIBLE_DEVICES": "void",
    "CUDA_VISIBLE_DEVICES": "",
}}
"""


@contextlib.contextmanager
def running_hub(workdir: Path, config: str, port: int, env: dict[str, str] | None = None) -> Iterator[Path]:
    """Run ``jupyterhub`` (next to this Python) with ``config`` in ``workdir`` until it answers on ``port``;
    yield its log file; stop it at the end (SIGTERM: it stops its proxy and servers; then SIGKILL)."""
    jupyterhub = Path(sys.executable).parent / "jupyterhub"
    (workdir / "jupyterhub_config.py").write_text(config)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "GPU_JUPYTERHUB_"))}
    run_env.update(env or {})
    run_env["PATH"] = f"{jupyterhub.parent}{os.pathsep}{run_env.get('PATH', '')}"
    log = workdir / "jupyterhub.log"
    with open(log, "w") as out:
        hub = subprocess.Popen(
            [str(jupyterhub), "-f", str(workdir / "jupyterhub_config.py")],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=run_env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            if hub.poll() is not None:
                pytest.fail(f"jupyterhub exited ({hub.returncode}):\n{log.read_text()[-3000:]}", pytrace=False)
            try:
                if requests.get(f"http://127.0.0.1:{port}/hub/api/", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyterhub not up after 90 s:\n{log.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.5)
        yield log
    finally:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
            hub.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chp_binary() -> str:
    """configurable-http-proxy: $CONFIGURABLE_HTTP_PROXY, or .work/chp (the script installs it if missing)."""
    if os.environ.get("CONFIGURABLE_HTTP_PROXY"):
        return os.environ["CONFIGURABLE_HTTP_PROXY"]
    local = REPO / ".work" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
    if not local.exists():
        done = subprocess.run(["bash", str(CHP_INSTALLER)], capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not local.exists():
            pytest.fail(
                f"configurable-http-proxy is missing and `bash {CHP_INSTALLER}` failed (needs node >= 20 "
                f"and npm):\n{done.stderr[-2000:]}",
                pytrace=False,
            )
    return str(local)


@dataclass
class LocalHub:
    """A running hub: its URL, an admin (service) token, and helpers to make test users."""

    url: str
    admin_token: str
    log: Path

    def admin(self, method: str, path: str, **kwargs: object) -> requests.Response:
        headers = {"Authorization": f"token {self.admin_token}"}
        response = requests.request(method, f"{self.url}hub/api/{path}", headers=headers, timeout=30, **kwargs)
        response.raise_for_status()
        return response

    def new_user(self, name: str) -> str:
        """Create a user and return an API token of that user's own (what the cluster check is given)."""
        self.admin("POST", f"users/{name}")
        return self.admin("POST", f"users/{name}/tokens", json={"note": "verify tests"}).json()["token"]
