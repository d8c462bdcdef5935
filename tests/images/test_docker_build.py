"""Real builds of jupyter-ml-cpu and jupyter-agent-dev (FROM the first, by digest), pushed
to a local registry that requires a login, removed locally, pulled back and run with no
network. Needs the engine and registry of scripts/docker/setup.sh.

These tests are never skipped silently: without an engine they fail and say how to get
one; GPU_JUPYTERHUB_SKIP_DOCKER=1 opts out explicitly (e.g. a laptop without root).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.images import docker_env as de

pytestmark = pytest.mark.docker

CPU_IMPORTS = (
    "numpy pandas scipy matplotlib seaborn sklearn plotly transformers datasets mlflow pyarrow "
    "jupyterlab jupyterhub ipywidgets jupyterlab_git"
)
AGENT_IMPORTS = "langchain langchain_community langchain_openai langgraph faiss qdrant_client ddgs tavily"


@dataclass(frozen=True)
class Pushed:
    name: str
    ref: str  # <registry>/<project>/<name>@sha256:...
    version: str


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


@pytest.fixture(scope="module")
def pushed(env: de.DockerEnv, docker_config: Path) -> Iterator[dict[str, Pushed]]:
    """Build, push, forget locally; yields the pushed digests. Cleans up its local tags."""
    run = uuid.uuid4().hex[:8]
    # one repository per image across runs (layers dedupe in the registry); the tag is per run
    project = "gpu-jupyterhub-test"
    version = f"0.0.0-test.{run}"
    de.login(env, docker_config)
    out: dict[str, Pushed] = {}
    local: list[str] = []
    try:
        base = env.base_image
        for name in ("jupyter-ml-cpu", "jupyter-agent-dev"):
            repo = f"{env.registry}/{project}/{name}"
            tag = f"{repo}:{version}"
            de.build(name, tag, base, version=version, config_dir=docker_config)
            local.append(tag)
            de.docker("push", tag, config_dir=docker_config)
            ref = de.repo_digest(tag, repo)
            out[name] = Pushed(name, ref, version)
            base = ref  # the derived image builds FROM the pushed digest, as ImageBuilds does
        # forget the local copies: what the tests run must come back from the registry
        de.docker("image", "rm", *local, check=False)
        for p in out.values():
            de.docker("image", "rm", p.ref, check=False)
            assert de.docker("image", "inspect", p.ref, check=False).returncode != 0
            de.docker("pull", p.ref, config_dir=docker_config)
        yield out
    finally:
        de.docker("image", "rm", *local, *[p.ref for p in out.values()], check=False)


def test_registry_requires_login(env: de.DockerEnv, tmp_path: Path) -> None:
    try:
        urllib.request.urlopen(f"http://{env.registry}/v2/", timeout=10)
        status = 200
    except urllib.error.HTTPError as e:
        status = e.code
    assert status == 401, "the local registry must require a login"
    # and a client without credentials cannot pull what the tests push
    anon = de.docker("pull", f"{env.registry}/nope/nothing:x", config_dir=tmp_path, check=False)
    assert anon.returncode != 0 and re.search(r"unauthorized|authentication required|no basic auth", anon.stderr, re.I)


@pytest.mark.parametrize("name", ["jupyter-ml-cpu", "jupyter-agent-dev"])
def test_singleuser_matches_hub_major(pushed: dict[str, Pushed], name: str) -> None:
    out = de.run_offline(pushed[name].ref, "jupyterhub-singleuser", "--version").strip()
    assert re.fullmatch(r"5\.\d+\.\d+\S*", out.splitlines()[-1]), out
    lab = de.run_offline(pushed[name].ref, "jupyter", "lab", "--version").strip()
    assert lab.startswith("4."), lab


@pytest.mark.parametrize("name", ["jupyter-ml-cpu", "jupyter-agent-dev"])
def test_runs_as_jovyan_with_home_layout(pushed: dict[str, Pushed], name: str) -> None:
    ref = pushed[name].ref
    assert de.run_offline(ref, "id", "-u").strip() == "1000"
    assert de.run_offline(ref, "id", "-g").strip() == "100"
    assert de.run_offline(ref, "sh", "-c", "echo $HOME; pwd").split() == ["/home/jovyan", "/home/jovyan"]
    owners = de.run_offline(
        ref,
        "stat",
        "-c",
        "%n %u:%g",
        "/home/jovyan",
        "/home/jovyan/notebooks",
        "/home/jovyan/scratch",
        "/home/jovyan/examples",
        "/opt/venv",
    )
    for line in owners.strip().splitlines():
        assert line.endswith(" 1000:100"), line
    # jovyan can write where it needs to (volumes are mounted over these at run time)
    de.run_offline(ref, "sh", "-c", "touch ~/scratch/x ~/notebooks/x && pip --version >/dev/null")


@pytest.mark.parametrize("name", ["jupyter-ml-cpu", "jupyter-agent-dev"])
def test_examples_are_the_repository_notebooks(pushed: dict[str, Pushed], name: str) -> None:
    listed = set(de.run_offline(pushed[name].ref, "ls", "-1", "/home/jovyan/examples").split())
    expected = {p.name for p in (de.REPO / "notebooks").glob("*.ipynb")}
    assert expected <= listed, f"missing in ~/examples: {expected - listed}"
    assert "README.md" in listed


def test_cpu_packages_import(pushed: dict[str, Pushed]) -> None:
    code = f"import {', '.join(CPU_IMPORTS.split())}; print('ok')"
    assert de.run_offline(pushed["jupyter-ml-cpu"].ref, "python", "-c", code).strip().endswith("ok")


def test_agent_packages_import_on_top_of_cpu(pushed: dict[str, Pushed]) -> None:
    code = f"import {', '.join((CPU_IMPORTS + ' ' + AGENT_IMPORTS).split())}; print('ok')"
    assert de.run_offline(pushed["jupyter-agent-dev"].ref, "python", "-c", code).strip().endswith("ok")


@pytest.mark.parametrize("name", ["jupyter-ml-cpu", "jupyter-agent-dev"])
def test_installed_set_is_consistent(pushed: dict[str, Pushed], name: str) -> None:
    proc = de.docker("run", "--rm", "--network", "none", pushed[name].ref, "pip", "check", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["jupyter-ml-cpu", "jupyter-agent-dev"])
def test_labels(pushed: dict[str, Pushed], name: str) -> None:
    labels = de.labels(pushed[name].ref)
    assert labels.get("org.opencontainers.image.title") == name
    assert labels.get("org.opencontainers.image.version") == pushed[name].version
    assert labels.get("org.opencontainers.image.source", "").endswith(f"images/{name}")
    assert labels.get("org.opencontainers.image.description")
    assert labels.get("io.gpu-jupyterhub.gpu-required") == "false"
    assert labels.get("io.gpu-jupyterhub.jupyter-compatible") == "true"


def test_derived_image_builds_on_pushed_base(pushed: dict[str, Pushed]) -> None:
    """agent-dev's layers start with all of jupyter-ml-cpu's: it was built FROM that digest."""

    def layers(ref: str) -> list[str]:
        return json.loads(de.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref).stdout)

    base, derived = layers(pushed["jupyter-ml-cpu"].ref), layers(pushed["jupyter-agent-dev"].ref)
    assert derived[: len(base)] == base and len(derived) > len(base)
