"""Fixtures of the node tier: the program deployed by the real Pulumi engine to an e2e cluster with a real node.

scripts/test.sh sets GPU_JUPYTERHUB_NODE=required when it runs as root with Go (the toolchain built, Debian's node
packages installed, Docker and the local registry up), so in CI a missing piece fails the tier with "no real
node: ..."; elsewhere the tier skips with that reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import PulumiProject, cluster
from tests.images import docker_env as de
from tests.node import realnode


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.node)


@pytest.fixture(scope="session")
def node_ready() -> None:
    missing = realnode.missing()
    if missing:
        why = "no real node: this machine lacks " + "; ".join(missing)
        if os.environ.get(realnode.REQUIRED_ENV) == "required":
            pytest.fail(why, pytrace=False)
        pytest.skip(why)


@pytest.fixture(scope="module")
def images(node_ready: None, tmp_path_factory: pytest.TempPathFactory) -> realnode.Images:
    return realnode.build_images(de.load_env(), tmp_path_factory.mktemp("docker-config"))


@pytest.fixture(scope="module")
def real_cluster(images: realnode.Images) -> Iterator[str]:
    """The cluster with the real node; always torn down (node processes, containers, rules, bridge)."""
    try:
        yield realnode.up_cluster(images)
    finally:
        cluster.down(realnode.CLUSTER)


@pytest.fixture(scope="module")
def stack(
    real_cluster: str, images: realnode.Images, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[realnode.Stack]:
    """The stack, destroyed (protection lifted) before the cluster goes, whatever the tests did."""
    project = PulumiProject.create(tmp_path_factory.mktemp("pulumi"))
    config, secrets, password = realnode.stack_config(real_cluster, images, de.load_env())
    project.init_stack(realnode.STACK, config, secrets)
    try:
        yield realnode.Stack(project, config, secrets, password)
    finally:
        project.pulumi("state", "unprotect", "--stack", realnode.STACK, "--all", "--yes", check=False)
        project.pulumi("destroy", "--stack", realnode.STACK, "--yes", check=False, timeout=realnode.UP_TIMEOUT)
        project.close()
