"""Fixtures of the image tests that build for real: the Docker engine and registry of scripts/docker/setup.sh."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.images import docker_env as de


@pytest.fixture(scope="module")
def env() -> de.DockerEnv:
    if os.environ.get(de.SKIP_ENV) == "1":
        pytest.skip(f"{de.SKIP_ENV}=1: Docker image builds opted out explicitly")
    problem = de.engine_problem()
    if problem:
        pytest.fail(
            f"Docker engine not available: {problem}. Run `sudo scripts/docker/setup.sh` first "
            f"(scripts/test.sh does this as root), or set {de.SKIP_ENV}=1 to opt out explicitly.",
            pytrace=False,
        )
    try:
        return de.load_env()
    except KeyError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def docker_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docker-config")
