"""Fixtures: a real local JupyterHub for the client tests, and the figures table printed at the end."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from localhub import HUB_CONFIG, LocalHub, chp_binary, free_port

TABLES = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    """JupyterHub 5.5 and configurable-http-proxy on 127.0.0.1, stopped (with its servers) at the end."""
    bindir = Path(sys.executable).parent
    jupyterhub, singleuser = bindir / "jupyterhub", bindir / "jupyterhub-singleuser"
    if not (jupyterhub.exists() and singleuser.exists()):
        pytest.fail(f"jupyterhub not installed next to {sys.executable}: pip install -r requirements-notebooks.txt")
    workdir = tmp_path_factory.mktemp("hub")
    port = free_port()
    admin_token = secrets.token_hex(16)
    config = HUB_CONFIG.format(
        port=port,
        hub_port=free_port(),
        proxy_api_port=free_port(),
        chp=chp_binary(),
        workdir=str(workdir),
        admin_token=admin_token,
        singleuser=str(singleuser),
    )
    (workdir / "jupyterhub_config.py").write_text(config)
    log = workdir / "jupyterhub.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "GPU_JUPYTERHUB_"))}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    with open(log, "w") as out:
        hub = subprocess.Popen(
            [str(jupyterhub), "-f", str(workdir / "jupyterhub_config.py")],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            if hub.poll() is not None:
                pytest.fail(f"jupyterhub exited ({hub.returncode}):\n{log.read_text()[-3000:]}", pytrace=False)
            try:
                if requests.get(f"{url}hub/api/", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyterhub not up after 90 s:\n{log.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.5)
        yield LocalHub(url, admin_token, log)
    finally:
        hub.send_signal(signal.SIGTERM)  # the hub stops its proxy and the servers it spawned
        try:
            hub.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
            hub.wait()
        shutil.rmtree(workdir / "homes", ignore_errors=True)


@pytest.fixture
def figures_table(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """Add a titled table to the session's closing summary (shown even without -s)."""

    def add(title: str, table: str) -> None:
        request.config.stash.setdefault(TABLES, []).append(f"{title}\n{table}")

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    tables = config.stash.get(TABLES, [])
    if tables:
        terminalreporter.section("post-deploy figures")
        for table in tables:
            terminalreporter.write_line(table + "\n")
