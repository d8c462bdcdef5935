"""Fixtures: a real local JupyterHub for the client tests, and the figures table printed at the end."""

from __future__ import annotations

import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from localhub import HUB_CONFIG, LocalHub, chp_binary, free_port, running_hub

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
    try:
        with running_hub(workdir, config, port) as log:
            yield LocalHub(f"http://127.0.0.1:{port}/", admin_token, log)
    finally:
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
