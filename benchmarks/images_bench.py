"""Image benchmark: for every image, cold build, no-op rebuild, notebook-only rebuild, uncompressed and
compressed (pushed) size, and the time a node with none of its layers takes to pull it.

    python benchmarks/images_bench.py [--images jupyter-ml-cpu,jupyter-agent-dev] [--cold-pip]
    python benchmarks/images_bench.py --images all --cold-pip      # every image, GPU ones too (GBs)

Needs the engine and base image of scripts/docker/setup.sh (root). It starts its own throwaway
registry (Debian's docker-registry, no login, 127.0.0.1) and its own second Docker engine with an
empty data root for the pulls, so a pull is what a fresh node does: every layer downloaded and
unpacked. Builds use a temporary copy of the build context, so the notebook change never touches
the checkout. Images are benchmarked one FROM family at a time (a root and the images built on
its stack stage) and removed afterwards, with the build cache trimmed, so the GPU images fit on a
small disk. "Cold" is --no-cache; --cold-pip also empties pip's BuildKit cache mount first, so
every wheel is downloaded (the next test run then downloads them again). Prints figures; asserts
nothing about time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.core import image_imports
from components.core.image_specs import IMAGE_SPECS, STACK_TARGET, ImageSpec, build_order, parents, specs_by_name
from tests.images import docker_env as de

LINK_BYTES_PER_S = 1e9 / 8  # 1 Gb/s
PULL_TARGET_S = 120  # the plan's image-pull target


@dataclass
class Row:
    name: str
    times: dict[str, float] = field(default_factory=dict)
    ran: dict[str, list[str]] = field(default_factory=dict)
    size: int = 0
    compressed: int = 0
    layers: int = 0
    pull_s: float = 0.0
    smoke_s: float = 0.0
    smoke: str = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not come up")


@contextmanager
def throwaway_registry(root: Path) -> Iterator[str]:
    """docker-registry on 127.0.0.1 with its data under ``root``; yields host:port."""
    port = free_port()
    config = root / "registry.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:

        def up() -> bool:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).status == 200
            except OSError:
                return False

        wait_for(up, "the benchmark registry")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def pull_engine(root: Path) -> Iterator[list[str]]:
    """A second dockerd with an empty data root: a node that has none of the layers. Yields the docker CLI
    prefix that talks to it."""
    sock = root / "docker.sock"
    proc = subprocess.Popen(
        [
            "dockerd",
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "--pidfile",
            str(root / "docker.pid"),
            "--host",
            f"unix://{sock}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
        ],
        stdout=(root / "dockerd.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    cli = ["docker", "-H", f"unix://{sock}"]
    try:
        wait_for(lambda: subprocess.run([*cli, "info"], capture_output=True).returncode == 0, "the pull engine")
        yield cli
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(root / "data", ignore_errors=True)


def compressed_size(registry: str, repo: str, tag: str) -> tuple[int, int]:
    """(bytes a pull downloads: config and compressed layers, number of layers) from the manifest."""
    req = urllib.request.Request(
        f"http://{registry}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    manifest = json.loads(urllib.request.urlopen(req, timeout=30).read())
    layers = manifest["layers"]
    return manifest["config"]["size"] + sum(layer["size"] for layer in layers), len(layers)


def timed_build(spec: ImageSpec, tag: str, base: str, context: Path, *extra: str, target: str | None = None):
    start = time.monotonic()
    proc = de.build(
        spec.dockerfile_dir,
        tag,
        base,
        context=context,
        extra=extra,
        target=target,
        lock_suffix=spec.lock_suffix,
        timeout=5400,
    )
    return time.monotonic() - start, de.steps_run(proc.stderr)


def smoke(spec: ImageSpec, tag: str) -> tuple[float, str]:
    """The smoke test of tests/images/test_docker_build.py on any image (GPU ones too, on CPU): every
    promised module imported offline, plus the single-user server's and JupyterLab's versions."""
    modules = image_imports.promised(spec)
    start = time.monotonic()
    proc = de.docker(
        "run",
        "--rm",
        "--network",
        "none",
        tag,
        "python",
        "-c",
        image_imports.smoke_script(modules),
        check=False,
        timeout=1800,
    )
    if proc.returncode == 0:
        versions = de.docker(
            "run",
            "--rm",
            "--network",
            "none",
            tag,
            "sh",
            "-c",
            "jupyterhub-singleuser --version && jupyter lab --version",
            check=False,
        )
        proc = subprocess.CompletedProcess(
            proc.args, versions.returncode, proc.stdout + versions.stdout, versions.stderr
        )
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAIL")]
        return seconds, f"FAILED {failed or proc.stderr[-500:]}"
    versions = proc.stdout.strip().splitlines()[-2:]
    return seconds, f"{len(modules)} modules imported, versions {versions}"


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def families(names: list[str]) -> list[list[str]]:
    """The requested images grouped by FROM root, in build order; a derived image needs its root built."""
    specs = specs_by_name(IMAGE_SPECS)
    groups: dict[str, list[str]] = {}
    for name in build_order(IMAGE_SPECS):
        root = name
        while specs[root].base:
            root = specs[root].base
        if name in names:
            members = groups.setdefault(root, [] if root == name else [root])
            if name not in members:
                members.append(name)
    return list(groups.values())


def bench_family(members: list[str], registry: str, puller: list[str], context: Path, base: str) -> list[Row]:
    specs = specs_by_name(IMAGE_SPECS)
    with_children = parents(IMAGE_SPECS)
    tags = {n: f"{registry}/bench/{n}:bench" for n in members}
    stacks = {n: f"{registry}/bench/{n}:bench-stack" for n in members if n in with_children}
    rows = {n: Row(n) for n in members}

    def base_of(n: str) -> str:
        return stacks[specs[n].base] if specs[n].base else base

    for phase in ("cold", "no-op", "notebook-only"):
        if phase == "notebook-only":
            print(f"  changed notebooks/{de.change_a_notebook(context)} in the temporary context", flush=True)
        extra = ("--no-cache",) if phase == "cold" else ()
        for n in members:
            spent = 0.0
            steps = [(tags[n], None)]
            if n in stacks:  # cold: the final build (no cache) also makes the stack stage, then cached
                pair = (stacks[n], STACK_TARGET)
                steps = [*steps, pair] if phase == "cold" else [pair, *steps]
            for tag, target in steps:
                seconds, ran = timed_build(
                    specs[n], tag, base_of(n), context, *(extra if not target else ()), target=target
                )
                spent += seconds
                if target is None:
                    rows[n].ran[phase] = ran
                elif phase != "cold" and ran:
                    print(f"  {phase}: {n} stack stage ran {ran}")
            rows[n].times[phase] = spent
            ran = rows[n].ran[phase]
            print(f"  {phase:14} {n:26} {spent:8.1f} s  steps run: {ran if phase != 'cold' else len(ran)}", flush=True)
    for n in members:
        row = rows[n]
        row.smoke_s, row.smoke = smoke(specs[n], tags[n])
        print(f"  smoke {n}: {row.smoke} in {row.smoke_s:.1f} s", flush=True)
        row.size = de.image_size(tags[n])
        for tag in ([stacks[n]] if n in stacks else []) + [tags[n]]:
            de.docker("push", tag, timeout=3600)
        row.compressed, row.layers = compressed_size(registry, f"bench/{n}", "bench")
        start = time.monotonic()
        subprocess.run([*puller, "pull", "-q", tags[n]], check=True, capture_output=True, timeout=3600)
        row.pull_s = time.monotonic() - start
        subprocess.run([*puller, "image", "rm", tags[n]], capture_output=True)
        subprocess.run([*puller, "image", "prune", "-af"], capture_output=True)
        print(
            f"  {n:26} {human(row.size):>9} uncompressed, {human(row.compressed):>9} pushed in {row.layers} "
            f"layers, pulled into an empty engine in {row.pull_s:.1f} s",
            flush=True,
        )
    de.docker("image", "rm", *tags.values(), *stacks.values(), check=False)
    de.docker("image", "prune", "-f", check=False)
    return [rows[n] for n in members]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--images", default="jupyter-ml-cpu,jupyter-agent-dev", help="comma-separated, or all")
    parser.add_argument("--cold-pip", action="store_true", help="empty pip's BuildKit cache mount first")
    args = parser.parse_args()
    problem = de.engine_problem()
    if problem:
        print(f"no Docker engine: {problem}; run scripts/docker/setup.sh as root", file=sys.stderr)
        return 2
    names = [s.name for s in IMAGE_SPECS] if args.images == "all" else args.images.split(",")
    try:
        base = de.load_env().base_image
    except KeyError:
        base = "gpu-jupyterhub/debian-bookworm:minbase"
    rows: list[Row] = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="images-bench-", dir=de.work_dir()) as tmp:
        work = Path(tmp)
        (work / "registry").mkdir()
        (work / "puller").mkdir()
        with throwaway_registry(work / "registry") as registry, pull_engine(work / "puller") as puller:
            for members in families(names):
                if args.cold_pip:
                    de.docker("builder", "prune", "-f", "--filter", "type=exec.cachemount", check=False)
                print(f"family {' -> '.join(members)}", flush=True)
                context = de.copy_context(work / f"context-{members[0]}")
                rows += bench_family(members, registry, puller, context, base)
                # keep the disk in bounds between families (the GPU layers are GBs)
                de.docker("builder", "prune", "-f", "--keep-storage", "8GB", check=False)
    print(
        f"\nimages_bench, {started}, {de.docker('version', '--format', '{{.Server.Version}}').stdout.strip()} "
        f"engine, pip cache {'cold' if args.cold_pip else 'as found'}"
    )
    head = (
        "image",
        "cold build",
        "no-op",
        "notebook-only",
        "size",
        "pushed",
        "pull (empty node)",
        "1 Gb/s link",
        "smoke test",
    )
    print("| " + " | ".join(head) + " |\n|" + " --- |" * len(head))
    for r in rows:
        link = r.compressed / LINK_BYTES_PER_S
        print(
            f"| `{r.name}` | {r.times['cold']:.0f} s | {r.times['no-op']:.1f} s | {r.times['notebook-only']:.1f} s | "
            f"{human(r.size)} | {human(r.compressed)} | {r.pull_s:.0f} s | {link:.0f} s "
            f"({'within' if link <= PULL_TARGET_S else 'over'} {PULL_TARGET_S} s) | "
            f"{r.smoke_s:.0f} s{'' if not r.smoke.startswith('FAILED') else ' FAILED'} |"
        )
    for r in rows:
        if r.smoke.startswith("FAILED"):
            print(f"smoke test of {r.name}: {r.smoke}")
        extra = [s for s in r.ran.get("notebook-only", []) if "examples" not in s]
        if extra:
            print(f"note: {r.name}'s notebook-only rebuild ran more than the examples copy: {extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
