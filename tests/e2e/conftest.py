"""Fixtures of the e2e tier: the toolchain, simulated clusters and Pulumi project copies.

The tier needs the toolchain that scripts/e2e/setup.sh builds. scripts/test.sh builds it whenever Go is
installed and then sets GPU_JUPYTERHUB_E2E=required, so in CI a missing tool fails the tier instead of
skipping it; elsewhere (no Go) the tier skips with a reason naming the setup command.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import CHART_DIR, PulumiProject, cluster, missing_tools

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nodes"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def toolchain() -> Path:
    missing = missing_tools()
    if missing or not CHART_DIR.is_dir():
        why = (
            f"e2e toolchain incomplete ({', '.join(missing)} missing in {cluster.toolchain_bin()}): "
            "run scripts/e2e/setup.sh (needs Go >= 1.26)"
            if missing
            else f"the z2jh chart is not at {CHART_DIR}"
        )
        if os.environ.get("GPU_JUPYTERHUB_E2E") == "required":
            pytest.fail(why)
        pytest.skip(why)
    return cluster.toolchain_bin()


@pytest.fixture(scope="module")
def homelab(toolchain: Path) -> Iterator[str]:
    """The simulated home lab (tests/fixtures/nodes/homelab.json); always torn down."""
    try:
        yield cluster.up("homelab", [FIXTURES / "homelab.json"])
    finally:
        cluster.down("homelab")


@pytest.fixture(scope="module")
def project(toolchain: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulumiProject]:
    project = PulumiProject.create(tmp_path_factory.mktemp("pulumi"))
    try:
        yield project
    finally:
        project.close()
