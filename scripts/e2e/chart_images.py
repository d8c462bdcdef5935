"""Build the e2e tier's stand-ins for the chart's hub and proxy images (and the node's pause image) and push them.

The real node of the e2e tier (kubelet + containerd) reaches no public registry, so the two images the chart
runs with our values (quay.io/jupyterhub/k8s-hub:4.4.0 and quay.io/jupyterhub/configurable-http-proxy:5.2.0)
are built here from Debian's, PyPI's and npm's packages (scripts/e2e/images/{hub,proxy}/Dockerfile) and pushed
to the registry that scripts/docker/setup.sh runs. An air-gapped cluster mirrors the published images into
its Harbor instead. The real node's sandbox image (scripts/e2e/images/pause) is built and pushed with them.

    python scripts/e2e/chart_images.py build [--registry-env .work/docker/registry.env] [--out refs.json]

prints (and with --out writes) the pushed images by digest, as the registry reports them:

    {"hub": "127.0.0.1:5055/jupyter/k8s-hub@sha256:...",
     "proxy": "127.0.0.1:5055/jupyter/configurable-http-proxy@sha256:...",
     "pause": "127.0.0.1:5055/jupyter/pause@sha256:..."}

Idempotent: BuildKit's layer cache makes an unchanged rebuild a no-op and the registry already has every layer,
so a second run takes seconds and reports the same digests. The registry login goes to a private, temporary
DOCKER_CONFIG (the password on stdin), never to ~/.docker. Other code imports ``build_and_push``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGES_DIR = Path(__file__).resolve().parent / "images"
DEFAULT_BASE_IMAGE = "gpu-jupyterhub/debian-bookworm:minbase"
# Debian's docker.io client matches the engine setup.sh starts and builds with BuildKit on its own; a newer
# client elsewhere on PATH may insist on the buildx plugin, which this machine does not have.
DOCKER = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else (shutil.which("docker") or "docker")
# Passed to the builds as the optional `cacert` secret: the host's CA bundle, which includes the CA of a
# TLS-intercepting proxy in front of PyPI and npm where there is one.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LOG_TAIL_LINES = 25


@dataclass(frozen=True)
class ChartImage:
    """One stand-in image: its key in the JSON, its Dockerfile folder and where it goes in the registry."""

    key: str
    folder: Path
    repository: str  # path in the registry, without the host
    tag: str


CHART_IMAGES: tuple[ChartImage, ...] = (
    ChartImage("hub", IMAGES_DIR / "hub", "jupyter/k8s-hub", "4.4.0-e2e"),
    ChartImage("proxy", IMAGES_DIR / "proxy", "jupyter/configurable-http-proxy", "5.2.0-e2e"),
    # The real node's sandbox image (containerd's sandbox_image), at the chart's registry.k8s.io/pause tag.
    ChartImage("pause", IMAGES_DIR / "pause", "jupyter/pause", "3.10.1-e2e"),
)


class ChartImageError(RuntimeError):
    """A build, login, push or inspect failed; the message names the image and ends with docker's last lines."""


@dataclass(frozen=True)
class Registry:
    host: str
    user: str
    password: str
    base_image: str


def default_registry_env() -> Path:
    """Where scripts/docker/setup.sh writes registry.env ($GPU_JUPYTERHUB_WORK_DIR, default <repo>/.work)."""
    return Path(os.environ.get("GPU_JUPYTERHUB_WORK_DIR") or REPO / ".work") / "docker" / "registry.env"


def read_registry_env(path: Path) -> Registry:
    """REGISTRY, REGISTRY_USER, REGISTRY_PASSWORD and (optionally) BASE_IMAGE from KEY=VALUE lines."""
    if not path.is_file():
        raise ChartImageError(f"{path} does not exist (run scripts/docker/setup.sh as root)")
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().strip("'\"")
    missing = [k for k in ("REGISTRY", "REGISTRY_USER", "REGISTRY_PASSWORD") if not values.get(k)]
    if missing:
        raise ChartImageError(f"{path} has no {', '.join(missing)}")
    return Registry(
        host=values["REGISTRY"],
        user=values["REGISTRY_USER"],
        password=values["REGISTRY_PASSWORD"],
        base_image=values.get("BASE_IMAGE") or DEFAULT_BASE_IMAGE,
    )


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _docker(
    what: str,
    *args: str,
    config_dir: Path,
    input_text: str | None = None,
    timeout: float = 1800,
) -> str:
    """Run the docker client (BuildKit on, the private config dir); return stdout and stderr together.

    ``what`` names the image and the step for the error message."""
    env = dict(os.environ, DOCKER_BUILDKIT="1", DOCKER_CONFIG=str(config_dir))
    step = " ".join(args[:2]) if args[0] == "image" else args[0]
    try:
        proc = subprocess.run(
            [DOCKER, *args],
            input=input_text,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ChartImageError(f"{what}: {DOCKER} not found (Debian package docker.io)") from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(errors="replace")
        raise ChartImageError(f"{what}: docker {step} took over {timeout:.0f} s; last lines:\n{_tail(out)}") from exc
    if proc.returncode != 0:
        raise ChartImageError(f"{what}: docker {step} exited {proc.returncode}; last lines:\n{_tail(proc.stdout)}")
    return proc.stdout


def _log(message: str) -> None:
    print(f"chart_images: {message}", file=sys.stderr, flush=True)


def _build(image: ChartImage, ref: str, base_image: str, config_dir: Path, *, no_cache: bool) -> None:
    args = [
        "build",
        "--network",
        "host",  # apt, pip and npm fetch during the build; no container network exists here
        "--progress",
        "plain",
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "-t",
        ref,
    ]
    if CA_BUNDLE.is_file():
        args += ["--secret", f"id=cacert,src={CA_BUNDLE}"]
    if no_cache:
        args.append("--no-cache")
    _docker(f"{image.key} image ({ref})", *args, str(image.folder), config_dir=config_dir)


def _repo_digest(image: ChartImage, ref: str, repository: str, config_dir: Path) -> str:
    out = _docker(
        f"{image.key} image ({ref})",
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        ref,
        config_dir=config_dir,
        timeout=120,
    )
    digests = json.loads(out.strip().splitlines()[-1]) or []
    for digest in digests:
        if digest.startswith(repository + "@sha256:"):
            return str(digest)
    raise ChartImageError(f"{image.key} image ({ref}): pushed, but no digest in {repository} (RepoDigests: {digests})")


def build_and_push(registry_env: Path, *, base_image: str | None = None, no_cache: bool = False) -> dict[str, str]:
    """Build the images, push them and return ``{"hub": "<registry>/jupyter/k8s-hub@sha256:...", "proxy": ...}``.

    ``registry_env``: the registry.env that scripts/docker/setup.sh writes; ``base_image`` overrides its
    BASE_IMAGE; ``no_cache`` rebuilds every layer (pip's and npm's download caches stay).
    Raises ChartImageError naming the image and the last lines of docker's output."""
    registry = read_registry_env(registry_env)
    base = base_image or registry.base_image
    refs: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="chart-images-docker-") as tmp:
        config_dir = Path(tmp)
        # A missing base fails here, not as a pull from a registry this machine cannot reach.
        _docker(f"base image {base} (made by scripts/docker/setup.sh)", "image", "inspect", base, config_dir=config_dir)
        _docker(
            f"registry {registry.host}",
            "login",
            "--username",
            registry.user,
            "--password-stdin",
            registry.host,
            config_dir=config_dir,
            input_text=registry.password,
            timeout=120,
        )
        for image in CHART_IMAGES:
            repository = f"{registry.host}/{image.repository}"
            ref = f"{repository}:{image.tag}"
            started = time.monotonic()
            _build(image, ref, base, config_dir, no_cache=no_cache)
            built = time.monotonic()
            _docker(f"{image.key} image ({ref})", "push", ref, config_dir=config_dir)
            refs[image.key] = _repo_digest(image, ref, repository, config_dir)
            _log(
                f"{image.key}: {refs[image.key]} (build {built - started:.1f} s, push {time.monotonic() - built:.1f} s)"
            )
    return refs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build and push the images; print their digests as JSON")
    build.add_argument(
        "--registry-env",
        type=Path,
        default=default_registry_env(),
        help="registry.env written by scripts/docker/setup.sh (default: %(default)s)",
    )
    build.add_argument("--base-image", help="base image (default: BASE_IMAGE in the registry.env)")
    build.add_argument("--out", type=Path, help="also write the JSON to this file")
    build.add_argument("--no-cache", action="store_true", help="rebuild every layer (docker build --no-cache)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    try:
        refs = build_and_push(args.registry_env, base_image=args.base_image, no_cache=args.no_cache)
    except ChartImageError as exc:
        _log(f"error: {exc}")
        return 1
    text = json.dumps(refs, indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    sys.stdout.write(text)
    _log(f"done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
