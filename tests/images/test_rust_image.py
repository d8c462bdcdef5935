"""jupyter-rust built for real (Debian trixie base, Debian's Rust toolchain from trixie-backports, evcxr_jupyter
compiled in its own stage), pushed to the local registry that requires a login, removed locally, pulled back and
run with no network: a Rust cell goes through the kernel as JupyterLab would send it and answers 55. Prints the
build time and size (images/README.md keeps the figures). Needs the engine and registry of
scripts/docker/setup.sh, like tests/images/test_docker_build.py; GPU_JUPYTERHUB_SKIP_DOCKER=1 opts out."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.images import docker_env as de

pytestmark = pytest.mark.docker
NAME = "jupyter-rust"
# One cell through the kernel, as a notebook sends it (jupyter_client from the image's own venv).
CELL = r'''
from jupyter_client.manager import start_new_kernel

km, kc = start_new_kernel(kernel_name="rust", startup_timeout=120)
try:
    msg_id = kc.execute("let x: u64 = (1..=10).sum(); x")
    result = None
    while True:
        msg = kc.get_iopub_msg(timeout=600)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "execute_result":
            result = msg["content"]["data"]["text/plain"]
        elif kind == "error":
            raise SystemExit("cell failed: " + "\n".join(msg["content"]["traceback"]))
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            break
    print("RESULT", result)
finally:
    km.shutdown_kernel(now=True)
'''


@pytest.fixture(scope="module")
def rust_ref(env: de.DockerEnv, docker_config: Path) -> Iterator[str]:
    repo = f"{env.registry}/gpu-jupyterhub-test/{NAME}"
    tag = f"{repo}:0.0.0-test.{uuid.uuid4().hex[:8]}"
    de.login(env, docker_config)
    started = time.monotonic()
    de.build(NAME, tag, env.trixie_base_image, config_dir=docker_config, timeout=3600)
    seconds = time.monotonic() - started
    print(f"\n{NAME}: built in {seconds:.0f} s, {de.image_size(tag) / 1e9:.2f} GB uncompressed")
    de.docker("push", tag, config_dir=docker_config)
    ref = de.repo_digest(tag, repo)
    de.docker("image", "rm", tag, ref, check=False)
    de.docker("pull", ref, config_dir=docker_config)
    try:
        yield ref
    finally:
        de.docker("image", "rm", ref, check=False)


def test_a_rust_cell_runs_offline_and_answers_55(rust_ref: str) -> None:
    out = de.run_offline(rust_ref, "python3", "-c", CELL, timeout=900)
    assert out.strip().splitlines()[-1] == "RESULT 55", out


def test_the_kernel_is_offered_beside_python_and_the_image_is_a_hub_server(rust_ref: str) -> None:
    kernels = de.run_offline(rust_ref, "jupyter", "kernelspec", "list")
    assert re.search(r"^\s+rust\s+/opt/venv/share/jupyter/kernels/rust$", kernels, re.M), kernels
    assert re.search(r"^\s+python3\s", kernels, re.M), kernels
    singleuser = de.run_offline(rust_ref, "jupyterhub-singleuser", "--version").strip().splitlines()[-1]
    assert re.fullmatch(r"5\.5\.\d+\S*", singleuser), singleuser
    rustc = de.run_offline(rust_ref, "rustc", "--version")
    major, minor = (int(n) for n in re.match(r"rustc (\d+)\.(\d+)", rustc).groups())  # type: ignore[union-attr]
    assert (major, minor) >= (1, 95), rustc  # evcxr 0.22's minimum
    assert de.run_offline(rust_ref, "id", "-u").strip() == "1000"
    labels = de.docker("image", "inspect", "--format", "{{json .Config.Labels}}", rust_ref).stdout
    assert '"io.gpu-jupyterhub.gpu-required":"false"' in labels
