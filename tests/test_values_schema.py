"""Helm values validate against the z2jh 4.4.0 schema, merged with the chart's defaults as Helm does."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.core.config_load import parse_config
from components.core.nodes import parse_nodes
from components.core.values import build_values
from tests.conftest import BASE_CONFIG, GIVEN_REFS, plan_values
from tests.fixtures.nodefactory import SCENARIOS, node, node_list

# beside the checkout (CI), or where GPU_JUPYTERHUB_Z2JH_DIR says (scripts/mutation.sh runs from a copy)
Z2JH = Path(os.environ.get("GPU_JUPYTERHUB_Z2JH_DIR") or Path(__file__).resolve().parents[2] / "shared" / "z2jh")
SCHEMA = Z2JH / "values.schema.json"
pytestmark = pytest.mark.skipif(not SCHEMA.exists(), reason=f"z2jh 4.4.0 schema not found at {SCHEMA}")


def helm_merge(defaults: Any, values: Any) -> Any:
    """Helm's coalescing: maps merge recursively, your keys win, lists and scalars replace whole."""
    if isinstance(defaults, dict) and isinstance(values, dict):
        out = dict(defaults)
        for k, v in values.items():
            out[k] = helm_merge(defaults.get(k), v) if k in defaults else v
        return out
    return copy.deepcopy(values)


def validate(values: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    defaults = yaml.safe_load((Z2JH / "values.yaml").read_text())
    merged = helm_merge(defaults, json.loads(json.dumps(values)))
    jsonschema.Draft7Validator(schema).validate(merged)


def values_for(document: dict[str, Any], **patch: Any) -> dict[str, Any]:
    cfg = parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}, **patch})
    return build_values(cfg, parse_nodes(json.dumps(document)), GIVEN_REFS)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_values_validate_for_every_fixture(scenario: str) -> None:
    validate(values_for(SCENARIOS[scenario]))


@pytest.mark.parametrize(
    "patch",
    [
        {"auth": {"mode": "native", "adminUsers": ["ann"], "adminPassword": "correct-horse-battery"}},
        {"auth": {"mode": "shared-password", "sharedPassword": "x" * 12, "allowedUsers": ["ann"]}},
        {"hub": {"host": "jh.lab.example", "tls": {"secretName": "jh-tls"}, "ingressClassName": "traefik"}},
        {"network": {"userEgressCidrs": ["10.20.0.0/16"]}, "culling": {"enabled": False}},
        {"profiles": {"liveAvailability": False}},
        {"storage": {"sharedCode": {"hostPath": "/srv/code"}}},
        {"chart": {"images": {"registry": "harbor.lab.example/jupyterhub-mirror"}}},
        {
            "chart": {
                "images": {
                    "registry": "harbor.lab.example/jupyterhub-mirror",
                    "hub": "harbor.lab.example/jupyterhub-mirror/k8s-hub@sha256:" + "1" * 64,
                    "proxy": "127.0.0.1:5055/jupyter/configurable-http-proxy@sha256:" + "2" * 64,
                }
            }
        },
    ],
)
def test_values_validate_for_config_variants(patch: dict[str, Any]) -> None:
    validate(values_for(SCENARIOS["mixed"], **patch))


def test_the_check_can_fail() -> None:
    values = values_for(SCENARIOS["mixed"])
    values["singleuser"]["storage"]["homeMountpath"] = "/x"
    with pytest.raises(jsonschema.ValidationError):
        validate(values)


_gpu_node = st.builds(
    lambda i, gpus, product, mem, replicas, ready, cordoned, tainted: node(
        f"n-{i}",
        gpus=gpus,
        product=product,
        memory_mib=mem,
        replicas=replicas,
        ready=ready,
        cordoned=cordoned,
        taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}] if tainted else None,
    ),
    st.integers(0, 10_000),
    st.integers(0, 8),
    st.sampled_from(["NVIDIA-GeForce-RTX-4090", "NVIDIA-A100-SXM4-80GB", "Tesla-T4", "NVIDIA-L4"]),
    st.integers(1, 200_000),
    st.sampled_from([1, 1, 2, 4]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_gpu_node, max_size=12))
def test_any_node_list_gives_valid_values(nodes: list[dict[str, Any]]) -> None:
    validate(values_for(node_list(*nodes)))


def test_dev_stack_plan_validates() -> None:
    validate(plan_values("Pulumi.dev.yaml", "tests/fixtures/nodes/mixed.json"))
