"""Image build benchmark: cold build, no-change rebuild, notebook-only-change rebuild, sizes.

    python benchmarks/images_bench.py [--images jupyter-ml-cpu,jupyter-agent-dev] [--prune]

Needs the engine and base image of scripts/docker/setup.sh (no registry: images stay
local). Builds from a temporary copy of the build context, so the notebook change never
touches the repository. "Cold" means no layer cache (--no-cache); pip's BuildKit cache
mount may still be warm unless --prune empties the whole build cache first (slow, and
it makes the next test run download everything again). Prints figures; asserts nothing
about time.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.image_specs import specs_by_name
from tests.images import docker_env as de

STEP = re.compile(r"^#\d+ \[(?:[^\]]*?)(\d+)/(\d+)\] (.*)$")


def base_image() -> str:
    try:
        return de.load_env().base_image
    except KeyError:
        return "gpu-jupyterhub/debian-bookworm:minbase"


def copy_context(dest: Path) -> Path:
    """The parts of the repository a build sends (see .dockerignore)."""
    for name in ("images", "notebooks"):
        src = de.REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    shutil.copy2(de.REPO / ".dockerignore", dest / ".dockerignore")
    return dest


def change_a_notebook(context: Path) -> str:
    """Change one notebook's content (a touch alone changes no checksum BuildKit uses)."""
    notebooks = sorted((context / "notebooks").glob("*.ipynb"))
    if notebooks:
        path = notebooks[0]
        doc = json.loads(path.read_text())
        doc.setdefault("metadata", {})["images_bench"] = time.time()
        path.write_text(json.dumps(doc, indent=1))
    else:
        path = context / "notebooks" / "bench.ipynb"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path.name


def timed_build(name: str, tag: str, base: str, context: Path, *extra: str) -> tuple[float, list[str]]:
    """Seconds, and the steps BuildKit actually ran (not CACHED)."""
    start = time.monotonic()
    proc = de.build(name, tag, base, context=context, extra=extra)
    seconds = time.monotonic() - start
    log = proc.stderr.splitlines()
    ran: list[str] = []
    for i, line in enumerate(log):
        m = STEP.match(line)
        if not m:
            continue
        step_id = line.split(" ", 1)[0]
        cached = any(later.startswith(step_id + " CACHED") for later in log[i + 1 : i + 4]) or line.endswith("CACHED")
        if not cached and not m.group(3).startswith(("FROM", "[internal]")):
            ran.append(f"{m.group(1)}/{m.group(2)} {m.group(3)[:70]}")
    return seconds, ran


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--images", default="jupyter-ml-cpu,jupyter-agent-dev")
    parser.add_argument("--prune", action="store_true", help="empty the whole build cache first")
    args = parser.parse_args()
    problem = de.engine_problem()
    if problem:
        print(f"no Docker engine: {problem}; run scripts/docker/setup.sh as root", file=sys.stderr)
        return 2
    names = args.images.split(",")
    specs = specs_by_name()
    if args.prune:
        de.docker("builder", "prune", "--all", "--force")
    base = base_image()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="images-bench-") as tmp:
        context = copy_context(Path(tmp))
        tags = {n: f"gpu-jupyterhub-bench/{n}:bench" for n in names}
        built_ids: set[str] = set()  # every image a phase made: a rebuild leaves the old one untagged

        def base_of(n: str) -> str:
            # a derived image builds on the benchmark's own build of its parent
            return tags.get(specs[n].base or "", base)

        for phase in ("cold", "no-change", "notebook-only"):
            if phase == "notebook-only":
                changed = change_a_notebook(context)
                print(f"changed notebooks/{changed} in the temporary context", file=sys.stderr)
            for n in names:
                extra = ("--no-cache",) if phase == "cold" else ()
                seconds, ran = timed_build(n, tags[n], base_of(n), context, *extra)
                built_ids.add(de.docker("image", "inspect", "--format", "{{.Id}}", tags[n]).stdout.strip())
                rows.append((phase, n, f"{seconds:7.1f} s"))
                print(f"{phase:14} {n:22} {seconds:7.1f} s  steps run: {len(ran)}", flush=True)
                if phase != "cold":
                    for step in ran:
                        print(f"{'':38}ran {step}")
        print()
        print(f"{'image':22} {'size':>10}  layers")
        for n in names:
            size = de.image_size(tags[n])
            layers = json.loads(de.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", tags[n]).stdout)
            print(f"{n:22} {human(size):>10}  {len(layers)}")
        history = de.docker("history", "--format", "{{.Size}}\t{{.CreatedBy}}", tags[names[0]]).stdout
        print(f"\nlayers of {names[0]} with content, newest first:")
        for line in history.splitlines():
            size_text, _, created = line.partition("\t")
            if size_text.strip() not in ("0B", "0"):
                print(f"  {size_text:>9}  {created[:90]}")
        de.docker("image", "rm", *tags.values(), check=False)
        de.docker("image", "rm", *built_ids, check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
