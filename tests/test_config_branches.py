"""Every rejecting branch of the config checks, each with the key it names and what is allowed (issue: the
checks in components/core/config.py that no test ran). A branch that stops rejecting fails its case here."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.core.config import ConfigError
from components.core.config_load import load_stack_file, namespace_keys, parse_config
from tests.conftest import BASE_CONFIG

CPU = {"cpuGuarantee": 1, "cpuLimit": 2, "memGuarantee": "1G", "memLimit": "2G"}


def patched(path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE_CONFIG)
    node = raw
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("chart.repository", "http://charts.lab.example/", "gpu-jupyterhub:chart.repository: an https:// chart"),
        ("hub.host", "jupyter", "gpu-jupyterhub:hub.host: a fully qualified DNS name such as jupyter.lab.example"),
        ("hub.host", "Jupyter_Lab.example", "gpu-jupyterhub:hub.host: a fully qualified DNS name"),
        ("auth.oidc.issuer", "http://keycloak.lab.example/realms/lab", "gpu-jupyterhub:auth.oidc.issuer: an https://"),
        ("auth", {"mode": "oidc"}, "mode oidc needs auth.oidc (issuer, clientId, clientSecret)"),
        (
            "auth",
            {"mode": "shared-password", "sharedPassword": "a-long-enough-password-1"},
            "mode shared-password needs auth.allowedUsers (who may log in)",
        ),
        ("auth", {"mode": "native"}, "mode native needs auth.adminUsers (who approves sign-ups)"),
        ("profiles.cpu", {**CPU, "cpuGuarantee": 3}, "gpu-jupyterhub:profiles.cpu: need 0 < cpuGuarantee <= cpuLimit"),
        ("profiles.cpu", {**CPU, "cpuGuarantee": 0}, "need 0 < cpuGuarantee <= cpuLimit"),
        ("profiles.sizing.fractions", [], "gpu-jupyterhub:profiles.sizing.fractions: at least one fraction"),
        ("profiles.sizing.fractions", [0.5, 1.5], "fractions must be in (0, 1], not [1.5]"),
        ("profiles.sizing.maxShare", 0, "gpu-jupyterhub:profiles.sizing.maxShare: must be in (0, 1]"),
        ("profiles.sizing.reserveCpu", -1, "gpu-jupyterhub:profiles.sizing.reserveCpu: must be 0 or more"),
        (
            "profiles.gpuTolerations",
            [{"key": "gpu", "operator": "Exists", "tolerationSeconds": "5"}],
            "toleration keys must be among ['effect', 'key', 'operator', 'value'], not ['tolerationSeconds']",
        ),
        (
            "profiles.gpuTolerations",
            [{"key": "gpu", "operator": "Exists", "effect": "NoScheduleAtAll"}],
            "toleration effect must be NoSchedule, PreferNoSchedule or NoExecute",
        ),
        (
            "images",
            {"build": False, "refs": {"jupyter-ml-tpu": "h/x@sha256:" + "0" * 64}},
            "gpu-jupyterhub:images.refs: unknown image(s) ['jupyter-ml-tpu']; allowed: ['jupyter-ml-cpu'",
        ),
        (
            "registry",
            {"host": "harbor.lab.example", "project": "jupyter"},
            "images.build is true, so registry.username and registry.password (the push robot account) are needed",
        ),
    ],
)
def test_each_rejecting_branch_names_its_key(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(patched(path, value))
    assert message in str(err.value), str(err.value)


def test_accepted_values_pass_through_normalised() -> None:
    cfg = parse_config(patched("profiles.sizing.fractions", [0.5, 0.25, 0.5]))
    assert cfg.profiles.sizing.fractions == [0.25, 0.5]
    cfg = parse_config(patched("auth.oidc.issuer", "https://keycloak.lab.example/realms/lab/"))
    assert cfg.auth.oidc is not None and cfg.auth.oidc.issuer == "https://keycloak.lab.example/realms/lab"


def test_stack_file_shape_errors_and_key_prefixes() -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping with a `config:` key"):
        load_stack_file(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="`config:` must be a mapping of namespace:key to value"):
        load_stack_file({"config": ["x"]})
    keys = namespace_keys(
        {"gpu-jupyterhub:config:namespace": "lab", "other:key": 1, "gpu-jupyterhub:hub": '{"host": "a.b"}'},
        decode_json=True,
    )
    assert keys == {"namespace": "lab", "hub": {"host": "a.b"}}
    assert namespace_keys({"gpu-jupyterhub:hub": "{not json"}, decode_json=True) == {"hub": "{not json"}
