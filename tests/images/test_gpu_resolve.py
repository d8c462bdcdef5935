"""The GPU images are too big to build in CI (several GB of CUDA wheels); instead check that
what they would install resolves. The merged locks along each FROM chain are resolved
again by uv for the images' own interpreter and platform (CPython 3.11.2, glibc 2.36,
x86_64), wheels only, from the index's metadata (seconds, no multi-GB downloads; a pip
``--dry-run --require-hashes`` downloads every wheel to check it). The check proves that
every pin exists as a wheel for that platform (nothing would compile), that the set is
closed under dependencies and consistent, and that every hash in the locks is one the
index publishes for that file. Needs the package index.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.images.docker_env import IMAGES
from tests.images.test_dockerfiles import chain

ENTRY = re.compile(r"\n(?=[A-Za-z0-9])")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        pytest.fail("uv not found: pip install -r requirements-images.txt")
    return found


def parse(text: str) -> dict[str, tuple[str, set[str]]]:
    """name -> (version, hashes) of a pip-style lock."""
    out: dict[str, tuple[str, set[str]]] = {}
    for entry in ENTRY.split(text):
        lines = [ln for ln in entry.strip().splitlines() if ln.strip() and not ln.strip().startswith("#")]
        if not lines or lines[0].startswith("-"):
            continue
        name, version = lines[0].split(" ")[0].split("==", 1)
        out[name.lower().replace("_", "-")] = (version, set(HASH.findall(entry)))
    return out


def merged_lock(locks: list[str], suffix: str = "") -> dict[str, tuple[str, set[str]]]:
    """One lock from several; the same package must be pinned alike along the chain. ``suffix``
    selects a CUDA variant's locks (requirements-cu12.txt) where a folder has one."""
    merged: dict[str, tuple[str, set[str]]] = {}
    for lock in locks:
        path = IMAGES / lock / f"requirements{suffix}.txt"
        if not path.exists():
            path = IMAGES / lock / "requirements.txt"
        for name, (version, hashes) in parse(path.read_text()).items():
            if name in merged:
                assert merged[name][0] == version, f"{lock}: {name} {version} != {merged[name][0]}"
            merged[name] = (version, merged.get(name, (version, set()))[1] | hashes)
    return merged


def resolve(pins: dict[str, tuple[str, set[str]]], tmp: Path) -> subprocess.CompletedProcess[str]:
    req = tmp / "pins.txt"
    req.write_text("".join(f"{n}=={v}\n" for n, (v, _) in sorted(pins.items())))
    cmd = [
        uv(),
        "pip",
        "compile",
        str(req),
        "--generate-hashes",
        "--python-version",
        "3.11.2",
        "--python-platform",
        "x86_64-manylinux_2_36",
        "--only-binary",
        ":all:",
        "--no-header",
        "--quiet",
        "--output-file",
        str(tmp / "resolved.txt"),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def check_resolves(pins: dict[str, tuple[str, set[str]]], tmp: Path) -> dict[str, tuple[str, set[str]]]:
    proc = resolve(pins, tmp)
    assert proc.returncode == 0, proc.stderr[-5000:]
    resolved = parse((tmp / "resolved.txt").read_text())
    extra = sorted(set(resolved) - set(pins))
    assert not extra, f"dependencies missing from the locks: {extra}"
    for name, (version, hashes) in pins.items():
        assert resolved[name][0] == version, name
        unknown = hashes - resolved[name][1]
        assert not unknown, f"{name}=={version}: hashes not published by the index: {sorted(unknown)}"
    return resolved


@pytest.mark.parametrize("suffix", ["", "-cu12"])
@pytest.mark.parametrize("name", ["jupyter-ml-gpu", "jupyter-fine-tuning"])
def test_gpu_image_dependency_set_resolves(name: str, suffix: str, tmp_path: Path) -> None:
    pins = merged_lock(chain(name), suffix)
    check_resolves(pins, tmp_path)
    assert any(n.endswith("-cu12") for n in pins) == (suffix == "-cu12"), "the variant's CUDA runtime wheels"
    assert pins["torch"][0].startswith("2.")
    assert pins["jupyterhub"][0].startswith("5.5.")
    # CUDA comes as wheels torch depends on: why the images need no CUDA base image
    assert any(n.startswith("nvidia-") for n in pins), "torch without its CUDA runtime wheels"
    if name == "jupyter-fine-tuning":
        for pkg in ("unsloth", "trl", "peft", "xformers"):
            assert pkg in pins, pkg
        assert "flash-attn" not in pins


@pytest.mark.parametrize("suffix", ["", "-cu12"])
@pytest.mark.parametrize("name", ["jupyter-jax", "jupyter-rapids"])
def test_jax_and_rapids_dependency_sets_resolve(name: str, suffix: str, tmp_path: Path) -> None:
    """The two torch-free GPU images: the CUDA runtime comes as wheels of the variant's CUDA major."""
    pins = merged_lock(chain(name), suffix)
    check_resolves(pins, tmp_path)
    assert "torch" not in pins
    cuda = "12" if suffix else "13"
    runtime = next(v for n, (v, _) in pins.items() if n.startswith("nvidia-cuda-runtime"))
    assert runtime.startswith(cuda + "."), runtime
    main = {"jupyter-jax": f"jax-cuda{cuda}-plugin", "jupyter-rapids": f"cudf-cu{cuda}"}[name]
    assert main in pins, f"{main} not in the lock"


def test_resolve_check_catches_a_missing_dependency_and_a_bad_hash(tmp_path: Path) -> None:
    """The check above must be able to fail."""
    pins = merged_lock(["common"])
    without_dep = {n: v for n, v in pins.items() if n != "tornado"}
    (tmp_path / "a").mkdir()
    with pytest.raises(AssertionError, match="tornado"):
        check_resolves(without_dep, tmp_path / "a")
    version, hashes = pins["jupyterhub"]
    bad = dict(pins, jupyterhub=(version, hashes | {"0" * 64}))
    (tmp_path / "b").mkdir()
    with pytest.raises(AssertionError, match="not published"):
        check_resolves(bad, tmp_path / "b")
