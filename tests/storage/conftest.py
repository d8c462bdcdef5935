"""Fixtures of the storage tier: a real SeaweedFS, the project's PV mounted twice (two nodes), a Jupyter
server on each.

scripts/test.sh sets GPU_JUPYTERHUB_STORAGE=required when it has built ``weed`` and runs as root, so in CI a
missing piece fails the tier; elsewhere it skips with a reason naming what is missing.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.core.config_load import parse_config
from components.core.storage_spec import persistent_volume
from tests.conftest import BASE_CONFIG
from tests.storage.jupyter import JupyterServer
from tests.storage.seaweed import SeaweedFS, missing_requirements, weed_binary

USER = "alice"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.storage)


def project_pv(**storage: Any) -> dict[str, Any]:
    """The PersistentVolume the program creates, from the base stack config plus ``storage`` keys."""
    raw = copy.deepcopy(BASE_CONFIG)
    raw["storage"] = {**raw.get("storage", {}), **storage}
    return persistent_volume(parse_config(raw))


@pytest.fixture(scope="session")
def weed() -> Path:
    missing = missing_requirements()
    if missing:
        why = "storage tier needs " + "; ".join(missing)
        if os.environ.get("GPU_JUPYTERHUB_STORAGE") == "required":
            pytest.fail(why)
        pytest.skip(why)
    path = weed_binary()
    assert path is not None
    return path


@pytest.fixture(scope="module")
def seaweed(weed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    fs = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"), weed)
    try:
        fs.start()
        yield fs
    finally:
        fs.close()


class Node:
    """One simulated node: its mount of the notebooks volume and the user's Jupyter server on it."""

    def __init__(self, fs: SeaweedFS, name: str, pv: dict[str, Any], server_name: str = "") -> None:
        self.mount = fs.mount(name, pv)
        self.home = self.mount.path / USER  # z2jh static storage: subPath {username}
        label = f"{name}-{server_name}" if server_name else name
        self.server = JupyterServer(
            node=name, root_dir=self.home, state_dir=fs.root / "local" / label, log=fs.root / "logs" / f"{label}.log"
        )
        self.server.start()

    def close(self) -> None:
        self.server.stop()
        self.mount.stop()


def two_nodes(fs: SeaweedFS, pv: dict[str, Any], tag: str) -> tuple[Node, Node]:
    a = Node(fs, f"{tag}-a", pv)
    try:
        b = Node(fs, f"{tag}-b", pv)
    except Exception:
        a.close()
        raise
    return a, b
