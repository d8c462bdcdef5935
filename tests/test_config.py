"""Typed stack config: strict keys, every problem at once, exit 2 from the plan command."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cli.config_reference import markdown_table
from components.core.config import ConfigError
from components.core.config_load import load_stack_file, parse_config
from tests.conftest import GIVEN_REFS, ROOT, SECRETS, nodes_json, plan_cli


def stack_file(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(yaml.safe_dump({"config": {f"gpu-jupyterhub:{k}": v for k, v in config.items()}}))
    return path


def test_dev_stack_file_is_valid() -> None:
    cfg = load_stack_file(yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text()))
    assert cfg.kubeContext and cfg.chart.version == "4.4.0"
    assert cfg.registry.password.get_secret_value() == "[secret]", "ciphertext is never treated as a value"


def test_typo_wrong_type_and_missing_key_exit_2_naming_all(base_config: dict[str, Any], tmp_path: Path) -> None:
    cfg = copy.deepcopy(base_config)
    cfg["hub"]["hostt"] = cfg["hub"].pop("host")  # misspelled key (and so host is missing)
    cfg["culling"] = {"timeoutSeconds": "an hour"}  # wrong type
    del cfg["kubeContext"]  # missing required key
    nodes = tmp_path / "nodes.json"
    nodes.write_text(nodes_json("mixed"))
    result = plan_cli("--stack-file", str(stack_file(tmp_path, cfg)), "--nodes", str(nodes))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stdout == ""
    for expected in (
        "gpu-jupyterhub:hub.hostt: unknown key; allowed here: allowNamedServers, concurrentSpawnLimit, host",
        "gpu-jupyterhub:culling.timeoutSeconds: Input should be a valid integer",
        "gpu-jupyterhub:kubeContext: required key is missing",
        "gpu-jupyterhub:hub.host: required key is missing",
    ):
        assert expected in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"storage": {"capacity": "100"}}, "storage.capacity: a Kubernetes quantity with a unit"),
        ({"storage": {"replication": "9x9"}}, "storage.replication: three digits XYZ"),
        ({"storage": {"path": "buckets/jupyterhub"}}, "storage.path: an absolute path"),
        ({"storage": {"path": "/buckets/jh"}}, "storage.path: 'jh' under /buckets is an S3 bucket name"),
        ({"storage": {"path": "/buckets/Lab_Notebooks"}}, "storage.path: 'Lab_Notebooks' under /buckets"),
        ({"storage": {"cacheMetaTtlSec": 0}}, "storage.cacheMetaTtlSec: Input should be greater than or equal to 1"),
        (
            {"storage": {"cacheMetaTtlSec": 120, "verifyTimeoutSeconds": 90}},
            "storage.verifyTimeoutSeconds (90) must exceed the mounts' metadata TTL (storage.cacheMetaTtlSec, 120 s)",
        ),
        ({"storage": {"mode": "dynamic"}}, "mode dynamic needs storage.storageClass"),
        ({"storage": {"mode": "nfs"}}, "storage.mode: Input should be 'static' or 'dynamic'"),
        ({"images": {"build": False}}, "images.build is false, so images.refs needs"),
        (
            {"images": {"build": False, "refs": {"jupyter-ml-cpu": "harbor.lab.example/j/x:latest"}}},
            "not digest-pinned",
        ),
        ({"auth": {"mode": "shared-password"}}, "mode shared-password needs auth.sharedPassword"),
        ({"hub": {"host": "jupyter.lab.example", "tls": {}}}, "set exactly one of secretName"),
        ({"chart": {"oci": "harbor.lab/charts/jupyterhub"}}, "chart.oci: an OCI reference"),
        ({"profiles": {"gpuTolerations": [{"key": "x", "operator": "Maybe"}]}}, "operator must be Equal or Exists"),
        ({"network": {"userEgressCidrs": ["10.0.0.0/33"]}}, "is not a CIDR"),
        (
            {"registry": {"host": "https://harbor.lab", "username": "u", "password": "p"}},
            "registry.host: a registry host",
        ),
    ],
)
def test_bad_values_name_key_and_what_is_allowed(
    base_config: dict[str, Any], patch: dict[str, Any], message: str
) -> None:
    cfg = {**copy.deepcopy(base_config), **patch}
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    assert message in str(err.value)


def test_bad_inputs_of_plan_exit_2(base_config: dict[str, Any], tmp_path: Path) -> None:
    good = stack_file(tmp_path, base_config)
    bad_nodes = tmp_path / "bad.json"
    bad_nodes.write_text('{"kind": "NodeList"}')
    cases = [
        ("--stack-file", str(tmp_path / "missing.yaml"), "--nodes", str(bad_nodes)),
        ("--stack-file", str(good), "--nodes", str(bad_nodes)),
        ("--stack-file", str(good), "--nodes", str(tmp_path / "nope.json")),
        ("--stack-file", str(good)),
    ]
    (tmp_path / "broken.yaml").write_text("config: [unclosed")
    cases.append(("--stack-file", str(tmp_path / "broken.yaml"), "--nodes", str(bad_nodes)))
    for args in cases:
        result = plan_cli(*args)
        assert result.returncode == 2, args
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") >= 1
        assert "Traceback" not in result.stderr


def test_readme_config_reference_is_in_sync() -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- config-reference:start -->", "<!-- config-reference:end -->"
    assert start in readme and end in readme
    current = readme.split(start, 1)[1].split(end, 1)[0].strip()
    assert current == markdown_table().strip(), "run: python -m components.cli.config_reference --write"


def test_plan_never_prints_secrets(base_config: dict[str, Any], tmp_path: Path) -> None:
    """Even secrets written in clear into a stack file (a mistake) never reach the plan's output."""
    cfg = copy.deepcopy(base_config)
    cfg["images"] = {"build": False, "refs": dict(GIVEN_REFS)}
    nodes = tmp_path / "nodes.json"
    nodes.write_text(nodes_json("mixed"))
    for output in ("values", "table", "json"):
        result = plan_cli("--stack-file", str(stack_file(tmp_path, cfg)), "--nodes", str(nodes), "--output", output)
        assert result.returncode == 0, result.stderr
        for secret in SECRETS.values():
            assert secret not in result.stdout + result.stderr
