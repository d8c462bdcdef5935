"""The shell scripts CI and maintainers run: syntax, and the contract the tests rely on."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.images.docker_env import IMAGES, REPO, read_env_file

SCRIPTS = [REPO / "scripts" / "docker" / "setup.sh", IMAGES / "lock.sh"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_syntax(script: Path) -> None:
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert script.stat().st_mode & 0o111, f"{script} is not executable"
    assert "set -euo pipefail" in script.read_text()


def test_setup_writes_what_the_tests_read() -> None:
    text = (REPO / "scripts" / "docker" / "setup.sh").read_text()
    for key in ("REGISTRY=", "REGISTRY_USER=", "REGISTRY_PASSWORD=", "BASE_IMAGE="):
        assert key in text
    # loopback only, and a login is required
    assert "addr: 127.0.0.1:" in text and "htpasswd -B" in text


def test_read_env_file(tmp_path: Path) -> None:
    f = tmp_path / "registry.env"
    f.write_text("# comment\nREGISTRY=127.0.0.1:5055\nREGISTRY_PASSWORD=a=b\n\n")
    assert read_env_file(f) == {"REGISTRY": "127.0.0.1:5055", "REGISTRY_PASSWORD": "a=b"}
