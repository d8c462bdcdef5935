"""Shared fixtures: a valid base config and node documents."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.core.config import ImagesConfig  # noqa: E402
from tests.fixtures.nodefactory import SCENARIOS  # noqa: E402
from tests.hubconfig import CHART_DIR  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """The z2jh chart is a declared dependency (README, "The chart"): without it the run stops with one message,
    rather than chart tests skipping and hub-config tests erroring one by one."""
    chart = Path(str(CHART_DIR))
    if not CHART_DIR or not (chart / "Chart.yaml").is_file():
        raise pytest.UsageError(
            f"the z2jh chart (jupyterhub 4.4.0, unpacked) is not at {CHART_DIR or ROOT.parent / 'shared/z2jh/chart'}:"
            " set GPU_JUPYTERHUB_CHART_DIR to its directory (README, 'The chart')"
        )

DIGEST = "sha256:" + "0123456789abcdef" * 4
SECRETS = {
    "client": "oidc-client-secret-value-7f3a",
    "registry": "harbor-robot-token-value-91c2",
    "shared": "shared-password-value-55aa",
}

BASE_CONFIG: dict[str, Any] = {
    "kubeContext": "homelab",
    "namespace": "jupyterhub",
    "hub": {"host": "jupyter.lab.example", "tls": {"clusterIssuer": "lab-ca"}},
    "auth": {
        "mode": "oidc",
        "oidc": {
            "issuer": "https://keycloak.lab.example/realms/lab",
            "clientId": "jupyterhub",
            "clientSecret": SECRETS["client"],
            "allowedGroups": ["jupyter-users"],
            "adminGroups": ["jupyter-admins"],
        },
    },
    "registry": {
        "host": "harbor.lab.example",
        "project": "jupyter",
        "username": "robot$jupyter+builder",
        "password": SECRETS["registry"],
    },
}

# every image of the default stack (with the optional images that are on by default)
GIVEN_REFS = {name: f"harbor.lab.example/jupyter/{name}@{DIGEST}" for name in [s.name for s in ImagesConfig().specs()]}
RUST_REF = f"harbor.lab.example/jupyter/jupyter-rust@{DIGEST}"


@pytest.fixture
def base_config() -> dict[str, Any]:
    return copy.deepcopy(BASE_CONFIG)


@pytest.fixture
def prebuilt_config() -> dict[str, Any]:
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["images"] = {"build": False, "refs": dict(GIVEN_REFS)}
    return cfg


def nodes_json(scenario: str) -> str:
    return json.dumps(SCENARIOS[scenario])


def plan_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The plan command as a user runs it, from the repository root."""
    command = [sys.executable, "-m", "components.cli.plan", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def plan_values(stack_file: str | Path, nodes: str | Path) -> dict[str, Any]:
    """``plan --output values`` parsed; fails the test on a non-zero exit."""
    out = plan_cli("--stack-file", str(stack_file), "--nodes", str(nodes), "--output", "values")
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)
