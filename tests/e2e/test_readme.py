"""The README's try-it commands, run literally on a fresh copy of the repository, so the README cannot drift
from what works: the virtual environment, the offline plan on a shipped node list, and the demo."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import CHART_DIR, ROOT

TRY_IT = re.compile(r"^## Try it.*?(?=^## )", re.S | re.M)


def readme_commands() -> list[str]:
    section = TRY_IT.search((ROOT / "README.md").read_text())
    assert section, "README has a 'Try it' section"
    blocks = re.findall(r"```bash\n(.*?)```", section.group(0), re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files as a clone would have them (tracked and new, not ignored), nothing built."""
    dest = tmp_path_factory.mktemp("readme") / "gpu-jupyterhub"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_the_try_it_commands_work_as_written(toolchain: Path, fresh_copy: Path) -> None:
    commands = readme_commands()
    assert any("components.cli.plan" in c for c in commands) and "./scripts/demo.sh" in commands
    env = {**os.environ, "GPU_JUPYTERHUB_CHART_DIR": str(CHART_DIR)}
    outputs = []
    for command in commands:
        proc = subprocess.run(
            ["bash", "-c", command], cwd=fresh_copy, env=env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, f"README command failed: {command}\n{proc.stdout}\n{proc.stderr}"
        outputs.append(proc.stdout)
    text = "\n".join(outputs)
    assert "GPU Environment (auto-select)" in text  # the plan's table
    assert "Spawn form (deployed, with the GPUs free now" in text and "GPU nodes offered: gpu-4090" in text  # the demo
    # the deployed form with the free/total GPUs the hub's code computes from the cluster's nodes and pods
    assert "    Node: *Any of 1 node(s) - 1 free | gpu-4090: 1 x NVIDIA GeForce RTX 4090, 24 GiB - 1/1 free" in text
    assert "    Size: 0.5 CPU · 3 GiB | *1.5 CPU · 6 GiB | 3 CPU · 12 GiB | 6 CPU · 24 GiB" in text
    assert "building" not in text, "the toolchain the tier uses is reused, nothing rebuilt"
    assert "GPU node left out: gpu-ws-off: NotReady" in text
