"""Docker engine, local registry and build helpers shared by the image tests and
benchmarks/images_bench.py.

Where things come from (first match wins):
  registry       $GPU_JUPYTERHUB_REGISTRY            else REGISTRY in the env file
  user/password  $GPU_JUPYTERHUB_REGISTRY_USER/_PASSWORD  else REGISTRY_USER/_PASSWORD
  base image     $GPU_JUPYTERHUB_BASE_IMAGE          else BASE_IMAGE
  env file       $GPU_JUPYTERHUB_WORK_DIR/docker/registry.env (default .work/), written by
                 scripts/docker/setup.sh
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
# Debian's docker.io client: it matches the engine setup.sh starts (another client on
# PATH may speak a newer API than that engine).
DOCKER = "/usr/bin/docker"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SKIP_ENV = "GPU_JUPYTERHUB_SKIP_DOCKER"


@dataclass(frozen=True)
class DockerEnv:
    registry: str
    user: str
    password: str
    base_image: str
    # Debian trixie's, for jupyter-rust (scripts/docker/setup.sh imports it under this tag)
    trixie_base_image: str = "gpu-jupyterhub/debian-trixie:minbase"


def work_dir() -> Path:
    return Path(os.environ.get("GPU_JUPYTERHUB_WORK_DIR") or REPO / ".work")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (no quoting) as written by setup.sh."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def load_env() -> DockerEnv:
    """Registry, credentials and base image; KeyError names what is missing."""
    path = work_dir() / "docker" / "registry.env"
    file_values = read_env_file(path) if path.is_file() else {}

    def pick(env: str, key: str) -> str:
        value = os.environ.get(env) or file_values.get(key)
        if not value:
            raise KeyError(f"{env} is not set and {path} has no {key} (run scripts/docker/setup.sh)")
        return value

    return DockerEnv(
        registry=pick("GPU_JUPYTERHUB_REGISTRY", "REGISTRY"),
        user=pick("GPU_JUPYTERHUB_REGISTRY_USER", "REGISTRY_USER"),
        password=pick("GPU_JUPYTERHUB_REGISTRY_PASSWORD", "REGISTRY_PASSWORD"),
        base_image=pick("GPU_JUPYTERHUB_BASE_IMAGE", "BASE_IMAGE"),
        trixie_base_image=os.environ.get("GPU_JUPYTERHUB_TRIXIE_BASE_IMAGE") or DockerEnv.trixie_base_image,
    )


def engine_problem() -> str | None:
    """None when the engine answers, else why not."""
    if not os.access(DOCKER, os.X_OK):
        return f"{DOCKER} is missing (Debian package docker.io)"
    proc = subprocess.run([DOCKER, "info"], capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        return f"`{DOCKER} info` failed: {proc.stderr.strip()[-300:]}"
    return None


def docker(
    *args: str,
    config_dir: Path | None = None,
    input_text: str | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run the docker client with BuildKit on and, if given, a private DOCKER_CONFIG (so a
    test's registry login never lands in the user's ~/.docker)."""
    env = dict(os.environ, DOCKER_BUILDKIT="1")
    if config_dir is not None:
        env["DOCKER_CONFIG"] = str(config_dir)
    proc = subprocess.run(
        [DOCKER, *args],
        capture_output=True,
        text=True,
        env=env,
        input=input_text,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args[:3])} ... exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def build(
    name: str,
    tag: str,
    base_image: str,
    *,
    context: Path = REPO,
    version: str = "0.0.0-test",
    config_dir: Path | None = None,
    extra: Sequence[str] = (),
    timeout: float = 1200,
    target: str | None = None,
    lock_suffix: str = "",
) -> subprocess.CompletedProcess[str]:
    """Build images/<name> the way CI and the benchmark do: repository root as context,
    host network for the RUN steps, the host CA bundle as the optional `cacert` secret;
    ``target="stack"``: the stage derived images build on (ImageBuilds pushes it as <version>-stack)."""
    args = [
        "build",
        "--network",
        "host",
        "--progress",
        "plain",
        "-f",
        str(context / "images" / name / "Dockerfile"),
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--build-arg",
        f"IMAGE_VERSION={version}",
        "--build-arg",
        f"LOCK_SUFFIX={lock_suffix}",
        "-t",
        tag,
    ]
    if target:
        args += ["--target", target]
    if CA_BUNDLE.is_file():
        args += ["--secret", f"id=cacert,src={CA_BUNDLE}"]
    return docker(*args, *extra, str(context), config_dir=config_dir, timeout=timeout)


def login(env: DockerEnv, config_dir: Path) -> None:
    docker(
        "login",
        "-u",
        env.user,
        "--password-stdin",
        env.registry,
        config_dir=config_dir,
        input_text=env.password,
    )


def repo_digest(ref: str, repository: str) -> str:
    """The ``repository@sha256:...`` of a pushed local image."""
    digests = json.loads(docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref).stdout)
    for d in digests or []:
        if d.startswith(repository + "@sha256:"):
            return d
    raise RuntimeError(f"{ref} has no digest in {repository} (RepoDigests: {digests})")


def labels(ref: str) -> Mapping[str, str]:
    return json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", ref).stdout) or {}


def run_offline(ref: str, *command: str, timeout: float = 300) -> str:
    """Run a command in the image with no network at all; return its stdout."""
    return docker("run", "--rm", "--network", "none", ref, *command, timeout=timeout).stdout


def image_size(ref: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())


STEP = re.compile(r"^#\d+ \[(?:[^\]]*?)(\d+)/(\d+)\] (.*)$")


def steps_run(build_log: str) -> list[str]:
    """The Dockerfile steps a BuildKit build (``--progress plain``) actually ran, not CACHED:
    "<n>/<total> <instruction>"; FROM and context transfers are left out."""
    log = build_log.splitlines()
    ran: list[str] = []
    for i, line in enumerate(log):
        m = STEP.match(line)
        if not m:
            continue
        step_id = line.split(" ", 1)[0]
        cached = any(later.startswith(step_id + " CACHED") for later in log[i + 1 : i + 4]) or line.endswith("CACHED")
        if not cached and not m.group(3).startswith(("FROM", "[internal]")):
            ran.append(f"{m.group(1)}/{m.group(2)} {m.group(3)[:70]}")
    return ran


def copy_context(dest: Path) -> Path:
    """The parts of the repository a build sends (see .dockerignore), to change without touching the checkout."""
    for name in ("images", "notebooks"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    shutil.copy2(REPO / ".dockerignore", dest / ".dockerignore")
    return dest


def change_a_notebook(context: Path) -> str:
    """Change one notebook's content (a touch alone changes no checksum BuildKit uses)."""
    path = sorted((context / "notebooks").glob("*.ipynb"))[0]
    doc = json.loads(path.read_text())
    doc.setdefault("metadata", {})["images_bench"] = time.time()
    path.write_text(json.dumps(doc, indent=1))
    return path.name
