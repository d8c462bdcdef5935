"""scripts/e2e/setup.sh uses installed tools whose versions fit and builds only what the step needs (issue 28):
prebuilt stand-ins on PATH, a `go` that records every call, and the real script."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "scripts" / "e2e" / "setup.sh"
ENV_LINES = (ROOT / "scripts/e2e/versions.env").read_text().splitlines()
VERSIONS = dict(line.split("=", 1) for line in ENV_LINES if re.match(r"^\w+=", line))
BASICS = ("awk", "basename", "cat", "cut", "dirname", "find", "grep", "head", "ln", "mkdir", "rm", "sed", "sort")
BASICS += ("sha256sum", "touch", "xargs")
# each stand-in prints what the real tool's version command prints
OUTPUTS = {
    "pulumi": "v3.274.1",
    "pulumi-language-python": "",
    "pulumi-language-python-exec": "",
    "etcd": "etcd Version: 3.6.16\nGit SHA: 0\nGo Version: go1.26.0",
    "kwokctl": "kwokctl version v0.8.0 go1.26.0 (linux/amd64)",
    "kwok": "kwok version v0.8.0 go1.26.0 (linux/amd64)",
    "kube-apiserver": "Kubernetes v1.34.4",
    "kube-controller-manager": "Kubernetes v1.34.4",
    "kube-scheduler": "Kubernetes v1.34.4",
    "kubectl": "Client Version: v1.34.4\nKustomize Version: v5.7.1",
}


def stand_in(folder: Path, name: str, output: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\ncat <<'OUT'\n{output}\nOUT\n")
    path.chmod(0o755)
    return path


def run_setup(tmp_path: Path, *args: str, go: bool = True) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """setup.sh with only the stand-ins (and the system's basic commands) on PATH; returns the `go` calls."""
    calls = tmp_path / "go-calls"
    if go:
        stand_in(tmp_path / "go-bin", "go", "")
        (tmp_path / "go-bin" / "go").write_text(
            f'#!/bin/sh\necho "$*" >> {calls}\n[ "$1 $2" = "env GOVERSION" ] && echo go1.26.0 && exit 0\nexit 1\n'
        )
    system = tmp_path / "system"  # the basic commands the script uses, and no Go however the machine is set up
    system.mkdir(exist_ok=True)
    for command in BASICS:
        found = shutil.which(command)
        assert found, command
        if not (system / command).exists():
            (system / command).symlink_to(found)
    path = [str(tmp_path / "tools"), str(tmp_path / "go-bin"), str(system)]
    env = {
        "PATH": os.pathsep.join(path),
        "HOME": str(tmp_path / "home"),
        "PULUMI_HOME": str(tmp_path / "pulumi-home"),
        "GPU_JUPYTERHUB_TOOLCHAIN": str(tmp_path / "cache"),
    }
    command = [shutil.which("bash") or "bash", str(SETUP), *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    made = calls.read_text().splitlines() if calls.exists() else []
    return proc, [c for c in made if c != "env GOVERSION"]


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    for name, output in OUTPUTS.items():
        stand_in(tmp_path / "tools", name, output)
    plugin = tmp_path / "pulumi-home" / "plugins" / f"resource-kubernetes-v{VERSIONS['K8S_PROVIDER_VERSION']}"
    stand_in(plugin, "pulumi-resource-kubernetes", "")
    return tmp_path


def test_the_demo_step_uses_installed_tools_and_builds_nothing(installed: Path) -> None:
    proc, go_calls = run_setup(installed, "demo")
    assert proc.returncode == 0, proc.stderr
    assert go_calls == [], "nothing built"
    assert "building" not in proc.stdout
    bin_dir = installed / "cache" / "bin"
    for name in OUTPUTS:
        assert (bin_dir / name).resolve() == (installed / "tools" / name).resolve(), name
    assert "pulumi-home/plugins" in str((bin_dir / "pulumi-resource-kubernetes").resolve())
    assert not (bin_dir / "weed").exists() and not (bin_dir / "restic").exists(), "the demo needs neither"
    assert "setup.sh: pulumi: using the installed 3.274.1" in proc.stdout


def test_a_tool_too_old_is_built_and_only_that_one(installed: Path) -> None:
    stand_in(installed / "tools", "kube-apiserver", "Kubernetes v1.29.9")
    proc, go_calls = run_setup(installed, "demo")
    assert "kube-apiserver is 1.29.9, older than 1.30.0: not used" in proc.stdout
    assert proc.returncode != 0 and "FAILED to build kubernetes" in proc.stderr
    assert go_calls and all("k8s.io/kubernetes/cmd" in c for c in go_calls if c.startswith("build")), go_calls
    assert "etcd: using the installed 3.6.16" in proc.stdout and "kwok: using the installed 0.8.0" in proc.stdout


def test_the_test_tiers_need_more_than_the_demo(installed: Path) -> None:
    """kubelet and kube-proxy (the real node) are missing, so the full step builds Kubernetes."""
    proc, go_calls = run_setup(installed, "all")
    assert proc.returncode != 0 and "FAILED to build kubernetes" in proc.stderr
    assert any(c.startswith("build") and "cmd/kubelet" in c for c in go_calls), go_calls


def test_without_go_a_missing_tool_is_one_clear_message(installed: Path) -> None:
    (installed / "tools" / "etcd").unlink()
    proc, _ = run_setup(installed, "demo", go=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"setup.sh: etcd {VERSIONS['ETCD_VERSION']} is needed and neither installed in a fitting version nor built; "
        "building it needs Go >= 1.26, which is not installed"
    )


def test_an_unknown_step_names_the_choices(installed: Path) -> None:
    proc, _ = run_setup(installed, "kubelet")
    assert proc.returncode == 2 and "unknown step or tool 'kubelet'" in proc.stderr and "demo, all" in proc.stderr


def preflight(step: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = f"source scripts/preflight.sh {step} && echo chart=$GPU_JUPYTERHUB_CHART_DIR"
    return subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def test_preflight_names_every_missing_thing_before_anything_is_built(tmp_path: Path) -> None:
    proc = preflight("test", GPU_JUPYTERHUB_CHART_DIR=str(tmp_path / "nowhere"), PYTHON=str(tmp_path / "python9"))
    assert proc.returncode == 1 and "chart=" not in proc.stdout
    lines = proc.stderr.splitlines()
    assert lines[0] == "test: stopped before building anything; missing:"
    assert lines[1].startswith(f"  - the z2jh chart (jupyterhub 4.4.0, unpacked) at {tmp_path / 'nowhere'}: put it")
    assert "GPU_JUPYTERHUB_CHART_DIR" in lines[1]
    assert lines[2] == f"  - Python >= 3.11 as '{tmp_path / 'python9'}' (set PYTHON to another interpreter)"


def test_preflight_refuses_another_chart_or_version(tmp_path: Path) -> None:
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: jupyterhub\nversion: 3.3.8\n")
    proc = preflight("demo", GPU_JUPYTERHUB_CHART_DIR=str(tmp_path))
    assert proc.returncode == 1 and f"the z2jh chart at {tmp_path} is 3.3.8, not 4.4.0" in proc.stderr
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: binderhub\nversion: 4.4.0\n")
    assert "the z2jh chart (jupyterhub 4.4.0" in preflight("demo", GPU_JUPYTERHUB_CHART_DIR=str(tmp_path)).stderr


def test_preflight_exports_the_chart_it_found() -> None:
    from tests.hubconfig import CHART_DIR

    proc = preflight("demo", GPU_JUPYTERHUB_CHART_DIR=str(CHART_DIR))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"chart={Path(str(CHART_DIR)).resolve()}"
