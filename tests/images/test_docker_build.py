"""Real builds of jupyter-ml-cpu and jupyter-agent-dev (FROM the first's stack stage, by digest),
pushed to a local registry that requires a login, removed locally, pulled back and run with no
network: every module each image promises (components.core.image_imports) is imported inside it.
Needs the engine and registry of scripts/docker/setup.sh. The GPU images (GBs each) get the
same smoke test from `python benchmarks/images_bench.py --images all`.

These tests are never skipped silently: without an engine they fail and say how to get
one; GPU_JUPYTERHUB_SKIP_DOCKER=1 opts out explicitly (e.g. a laptop without root).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.core import image_imports
from components.core.image_specs import STACK_TARGET, specs_by_name
from tests.images import docker_env as de

pytestmark = pytest.mark.docker
NAMES = ("jupyter-ml-cpu", "jupyter-agent-dev")


@dataclass(frozen=True)
class Pushed:
    name: str
    ref: str  # <registry>/<project>/<name>@sha256:...
    version: str
    base: str  # what it was built FROM


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
        stacks: dict[str, str] = {}
        for name in NAMES:
            spec = specs_by_name()[name]
            base = stacks[spec.base] if spec.base else env.base_image
            repo = f"{env.registry}/{project}/{name}"
            if name == "jupyter-ml-cpu":
                # the stage derived images build FROM (no examples), pushed as ImageBuilds does
                stack_tag = f"{repo}:{version}-stack"
                de.build(name, stack_tag, base, version=version, config_dir=docker_config, target=STACK_TARGET)
                local.append(stack_tag)
                de.docker("push", stack_tag, config_dir=docker_config)
                stacks[name] = de.repo_digest(stack_tag, repo)
            tag = f"{repo}:{version}"
            de.build(name, tag, base, version=version, config_dir=docker_config)
            local.append(tag)
            de.docker("push", tag, config_dir=docker_config)
            out[name] = Pushed(name, de.repo_digest(tag, repo), version, base)
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


@pytest.mark.parametrize("name", NAMES)
def test_every_promised_module_imports_offline(pushed: dict[str, Pushed], name: str) -> None:
    """The smoke test: each module the image promises (its base's too) imports with no network."""
    modules = image_imports.promised(specs_by_name()[name])
    proc = de.docker(
        "run",
        "--rm",
        "--network",
        "none",
        pushed[name].ref,
        "python",
        "-c",
        image_imports.smoke_script(modules),
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.stdout.count("\nok ") + proc.stdout.startswith("ok ") == len(modules), proc.stdout


@pytest.mark.parametrize("name", NAMES)
def test_jupyterlab_has_the_language_server_extension(pushed: dict[str, Pushed], name: str) -> None:
    ansi = re.compile(r"\x1b\[[0-9;]*m")  # the list is coloured even without a terminal
    listed = ansi.sub("", de.run_offline(pushed[name].ref, "sh", "-c", "jupyter labextension list 2>&1"))
    assert re.search(r"@jupyter-lsp/jupyterlab-lsp\S* v\S+ enabled OK", listed), listed
    servers = ansi.sub("", de.run_offline(pushed[name].ref, "sh", "-c", "jupyter server extension list 2>&1"))
    assert re.search(r"jupyter_lsp \S*\s*enabled|jupyter_lsp enabled", servers), servers


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


def layers(ref: str) -> list[str]:
    return json.loads(de.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref).stdout)


def test_derived_image_builds_on_the_pushed_stack_stage(pushed: dict[str, Pushed]) -> None:
    """agent-dev's layers start with all of jupyter-ml-cpu's but its examples layer: it was built FROM
    the stack stage's digest, which is jupyter-ml-cpu without the examples."""
    cpu, agent = pushed["jupyter-ml-cpu"], pushed["jupyter-agent-dev"]
    assert agent.base.startswith(cpu.ref.split("@")[0] + "@sha256:") and agent.base != cpu.ref
    base, derived = layers(cpu.ref), layers(agent.ref)
    assert derived[: len(base) - 1] == base[:-1], "all but the base's examples layer are shared"
    # then its own layers: the lock COPY, the pip RUN and its own copy of the examples
    assert len(derived) >= len(base) + 2


def test_a_notebook_change_reruns_no_package_layer(
    pushed: dict[str, Pushed], env: de.DockerEnv, docker_config: Path, tmp_path: Path
) -> None:
    """After a notebook-only change, jupyter-ml-cpu's stack stage is the same image (so the digest
    jupyter-agent-dev builds FROM does not move), and each image reruns only its examples COPY."""
    context = de.copy_context(tmp_path)
    cpu, agent = pushed["jupyter-ml-cpu"], pushed["jupyter-agent-dev"]
    version = cpu.version
    before = f"gpu-jupyterhub-test/stack-before:{version}"
    after = f"gpu-jupyterhub-test/stack-after:{version}"
    tags = [before, after, "gpu-jupyterhub-test/cpu-after:x", "gpu-jupyterhub-test/agent-after:x"]
    try:
        de.build("jupyter-ml-cpu", before, env.base_image, version=version, context=context, target=STACK_TARGET)
        de.change_a_notebook(context)
        rebuilt = de.build(
            "jupyter-ml-cpu", after, env.base_image, version=version, context=context, target=STACK_TARGET
        )
        assert de.steps_run(rebuilt.stderr) == [], "the stack stage has no examples: nothing to rerun"

        def image_id(ref: str) -> str:
            return de.docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()

        assert image_id(before) == image_id(after), "same stack image: the children's BASE_IMAGE stays put"
        final = de.build("jupyter-ml-cpu", tags[2], env.base_image, version=version, context=context)
        ran = de.steps_run(final.stderr)
        assert len(ran) == 1 and "COPY" in ran[0] and "examples" in ran[0], ran
        derived = de.build(
            "jupyter-agent-dev", tags[3], agent.base, version=version, context=context, config_dir=docker_config
        )
        ran = de.steps_run(derived.stderr)
        assert len(ran) == 1 and "COPY" in ran[0] and "examples" in ran[0], f"the pip layer reran: {ran}"
        listed = de.run_offline(tags[3], "ls", "/home/jovyan/examples")
        assert set((context / "notebooks").glob("*.ipynb")) and "README.md" in listed
    finally:
        de.docker("image", "rm", *tags, check=False)
