"""Shared fixtures: a valid base config and node documents."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.nodefactory import SCENARIOS  # noqa: E402

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

GIVEN_REFS = {
    name: f"harbor.lab.example/jupyter/{name}@{DIGEST}"
    for name in ("jupyter-ml-cpu", "jupyter-ml-gpu", "jupyter-fine-tuning", "jupyter-agent-dev")
}


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
