"""Config that used to be accepted and should not be: each is an error naming the key, in the plan (exit 2,
no traceback) as in `pulumi up`; secrets never appear in a message; deploy.sh keeps secrets off argv."""

from __future__ import annotations

import copy
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.core.config import ConfigError
from components.core.config_load import parse_config
from components.core.nodes import parse_nodes
from components.core.values import build_values
from tests.conftest import BASE_CONFIG, GIVEN_REFS, ROOT, plan_cli
from tests.fixtures.nodefactory import SCENARIOS


def raw_with(path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE_CONFIG)
    raw["images"] = {"build": False, "refs": GIVEN_REFS}
    node = raw
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "key", "words"),
    [
        (
            "profiles.cpu",
            {"cpuGuarantee": float("nan"), "cpuLimit": 2, "memGuarantee": "1G", "memLimit": "2G"},
            "profiles.cpu",
            "finite",
        ),
        (
            "profiles.gpu",
            {"cpuGuarantee": 1, "cpuLimit": 1e308, "memGuarantee": "1G", "memLimit": "2G"},
            "profiles.gpu",
            "4096",
        ),
        (
            "profiles.cpu",
            {"cpuGuarantee": 1, "cpuLimit": 2, "memGuarantee": "16G", "memLimit": "8G"},
            "profiles.cpu",
            "above memLimit",
        ),
        (
            "profiles.cpu",
            {"cpuGuarantee": 1, "cpuLimit": 2, "memGuarantee": "1G", "memLimit": "999Pi"},
            "profiles.cpu",
            "64Ti",
        ),
        ("registry.host", "harbor", "registry.host", "dot or a port"),
        ("chart.repository", "http://charts.lab.example/", "chart.repository", "https://"),
        ("storage.sharedCode", {"hostPath": "/"}, "storage.sharedCode.hostPath", "not / itself"),
        ("storage.sharedCode", {"hostPath": "/srv/{username}"}, "storage.sharedCode.hostPath", "letters, digits"),
        ("storage.sharedCode", {"hostPath": "/srv/<img src=x>"}, "storage.sharedCode.hostPath", "letters, digits"),
        ("auth", {"mode": "shared-password", "sharedPassword": "short", "allowedUsers": ["a"]}, "auth", "8 characters"),
        (
            "auth",
            {"mode": "shared-password", "sharedPassword": "long-enough", "allowedUsers": ["a"], "adminUsers": ["root"]},
            "auth",
            "needs auth.adminPassword",
        ),
        (
            "auth",
            {
                "mode": "shared-password",
                "sharedPassword": "long-enough",
                "allowedUsers": ["a"],
                "adminUsers": ["root"],
                "adminPassword": "x" * 31,
            },
            "auth",
            "32 characters",
        ),
        (
            "auth",
            {
                "mode": "shared-password",
                "sharedPassword": "y" * 40,
                "allowedUsers": ["a"],
                "adminUsers": ["root"],
                "adminPassword": "y" * 40,
            },
            "auth",
            "must differ",
        ),
        ("auth", {"mode": "native", "adminUsers": ["root"]}, "auth", "needs auth.adminPassword"),
        ("auth", {"mode": "native", "adminUsers": ["root"], "adminPassword": "short"}, "auth", "12 characters"),
        ("hub.namedServerLimitPerUser", 0, "hub.namedServerLimitPerUser", "greater than or equal to 1"),
    ],
)
def test_bad_config_is_an_error_that_names_the_key(path: str, value: Any, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(raw_with(path, value))
    text = str(err.value)
    assert f"gpu-jupyterhub:{key}" in text and words in text, text


def test_a_secret_is_never_echoed() -> None:
    raw = raw_with("auth", {"mode": "shared-password", "sharedPassword": 987654321, "allowedUsers": ["a"]})
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert "987654321" not in str(err.value) and "secret and not shown" in str(err.value)


def test_hub_database_claim_is_kept_and_servers_are_limited() -> None:
    values = build_values(
        parse_config(raw_with("hub.namedServerLimitPerUser", 3)), parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS
    )
    assert values["hub"]["db"]["pvc"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert values["hub"]["namedServerLimitPerUser"] == 3


def test_shared_code_path_is_escaped_in_the_form() -> None:
    from components.core.config import SharedCodeConfig
    from components.core.profiles import build_profiles

    cfg = parse_config(raw_with("storage.sharedCode", {"hostPath": "/srv/code"}))
    # the config refuses such a path; the form escapes it anyway (defence in depth): bypass the validation
    shared = SharedCodeConfig.model_construct(hostPath="/srv/a&b", mountPath="/home/jovyan/shared-code")
    cfg = cfg.model_copy(update={"storage": cfg.storage.model_copy(update={"sharedCode": shared})})
    plan = build_profiles(cfg, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)
    option = plan.profiles[0]["profile_options"]["sharedCode"]["choices"]["on"]
    assert option["display_name"].startswith("With /srv/a&amp;b read-only")


def _stack_file(tmp_path: Path, text: bytes) -> Path:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_bytes(text)
    return path


def test_plan_rejects_duplicate_keys_and_non_utf8_stack_files(tmp_path: Path) -> None:
    good = (ROOT / "Pulumi.dev.yaml").read_text()
    dup = good.replace(
        "config:\n", "config:\n  gpu-jupyterhub:namespace: first\n  gpu-jupyterhub:namespace: second\n", 1
    )
    proc = plan_cli(
        "--stack-file", str(_stack_file(tmp_path, dup.encode())), "--nodes", "tests/fixtures/nodes/mixed.json"
    )
    assert proc.returncode == 2 and "'gpu-jupyterhub:namespace' appears twice" in proc.stderr, proc.stderr
    proc = plan_cli("--stack-file", str(_stack_file(tmp_path, b"config:\n  x: \xff\xfe\n")), "--nodes", "x.json")
    assert proc.returncode == 2 and "not UTF-8" in proc.stderr and "Traceback" not in proc.stderr
    yaml.safe_load(good)  # the example itself is fine


@pytest.mark.no_mutation  # scripts/deploy.sh, not the core that scripts/mutation.sh mutates; slow
def test_deploy_script_passes_secrets_on_stdin_not_argv(tmp_path: Path) -> None:
    """A fake `pulumi` records its arguments and stdin; the secrets must only be in the latter."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    fake = bindir / "pulumi"
    fake.write_text(
        f'#!/bin/sh\necho "ARGV $*" >> {log}\nif [ "$1" = config ]; then echo "STDIN $(cat)" >> {log}; fi\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    venv = ROOT / ".venv"
    assert (venv / "bin" / "python").exists()
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "PULUMI_CONFIG_PASSPHRASE": "p",
        "GPU_JUPYTERHUB_REGISTRY_PASSWORD": "registry-token-123",
        "GPU_JUPYTERHUB_OIDC_CLIENT_SECRET": "oidc-secret-456",
        "GPU_JUPYTERHUB_ADMIN_PASSWORD": "admin-secret-789",
        "PULUMI_BACKEND_URL": f"file://{tmp_path}/state",
    }
    proc = subprocess.run(["scripts/deploy.sh", "dev"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text()
    argv = "\n".join(line for line in calls.splitlines() if line.startswith("ARGV"))
    stdin = "\n".join(line for line in calls.splitlines() if line.startswith("STDIN"))
    for secret in ("registry-token-123", "oidc-secret-456", "admin-secret-789"):
        assert secret not in argv and secret in stdin
    assert "ARGV up" in calls
