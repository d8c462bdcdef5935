"""Backups as the program registers them: config checks, hardened CronJobs, secrets kept secret, restore CLI."""

from __future__ import annotations

import copy
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cli.restore import main as restore_main
from components.core import backup_spec
from components.core.backup_spec import (
    BACKUP_CRONJOB,
    BACKUP_GUARD,
    CHECK_CRONJOB,
    CONFIGMAP_NAME,
    SCRIPTS,
    SECRET_NAME,
    backup_cronjobs,
    backup_guard,
    configmap,
    restore_job,
    user_pod_claims,
)
from components.core.config import NOTEBOOKS_CLAIM, ConfigError
from components.core.config_load import parse_config
from components.core.storage_spec import CLAIM_NAME
from tests.conftest import BASE_CONFIG
from tests.k8s import manifest_from_inputs, validate
from tests.program import SECRET_SIG, plain_strings, run_program
from tests.pss import restricted_violations
from tests.test_program import nodes_json

IMAGE = "harbor.lab.example/proxy/restic/restic@sha256:" + "1" * 64
PASSWORD = "backup-password-value-3c9d-long"
ACCESS, SECRET = "backup-access-key-77", "backup-secret-key-value-41ab"


def raw(**backup: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE_CONFIG)
    out["backup"] = {
        "enabled": True,
        "target": "s3:https://s3.lab.example/notebook-backups/hub",
        "credentials": {"accessKey": ACCESS, "secretKey": SECRET},
        "password": PASSWORD,
        "image": IMAGE,
        **backup,
    }
    return out


NAMESPACE = parse_config(raw()).namespace


@pytest.mark.parametrize(
    ("backup", "message"),
    [
        ({"target": None}, "gpu-jupyterhub:backup: backup.enabled needs backup.target"),
        ({"credentials": None}, "backup.enabled needs backup.credentials (accessKey, secretKey)"),
        ({"password": None, "image": None}, "backup.enabled needs backup.password, backup.image"),
        ({"password": "short"}, "backup.password: at least 16 characters (the value is a secret and not shown)"),
        ({"schedule": "every night"}, "gpu-jupyterhub:backup.schedule: a five-field cron schedule"),
        ({"checkSchedule": "0 4 * *"}, "gpu-jupyterhub:backup.checkSchedule: a five-field cron schedule"),
        ({"target": "https://s3.lab.example/b"}, "gpu-jupyterhub:backup.target: s3:http(s)://host[:port]/bucket"),
        ({"target": "s3:https://s3.lab.example/B_ucket"}, "gpu-jupyterhub:backup.target: s3:http(s)://"),
        ({"target": "claim:Not_A_Label"}, "gpu-jupyterhub:backup.target: a DNS label"),
        ({"image": "restic/restic:latest"}, "gpu-jupyterhub:backup.image: 'restic/restic:latest' is not digest-pinned"),
        ({"keep": {"last": 0, "daily": 0, "weekly": 0, "monthly": 0}}, "keep at least one snapshot"),
        ({"keep": {"hourly": 3}}, "gpu-jupyterhub:backup.keep.hourly: unknown key; allowed here: daily, last"),
    ],
)
def test_bad_backup_config_names_the_key(backup: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(raw(**backup))
    assert message in str(err.value)
    assert PASSWORD not in str(err.value) and "short" not in str(err.value).replace("shorter", "")


@pytest.mark.parametrize("target", ["claim:jupyterhub-notebooks", "claim:jupyterhub-notebooks\n"])
def test_the_notebooks_claim_cannot_hold_the_backups(target: str) -> None:
    """Its top-level folders are users' homes: `claim:jupyterhub-notebooks` put the repository in the home of a
    user named `restic`, who could delete every backup, and each backup copied the repository into itself."""
    with pytest.raises(ConfigError) as err:
        parse_config(raw(target=target))
    (problem,) = err.value.problems
    assert problem.startswith("gpu-jupyterhub:backup.target: ")
    assert "jupyterhub-notebooks" in problem or "line break" in problem
    if "line break" not in problem:
        assert "mounted by user pods" in problem and "use an s3: target" in problem
    assert NOTEBOOKS_CLAIM == CLAIM_NAME and user_pod_claims(parse_config(raw())) == {CLAIM_NAME}


def test_no_claim_that_user_pods_mount_can_hold_the_backups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever claim reaches user pods (here shared code, were it a claim) is refused as a target, by the
    program (CronJobs), the plan's check and the restore command alike."""
    volume = {"name": "shared-code", "persistentVolumeClaim": {"claimName": "team-code", "readOnly": True}}
    monkeypatch.setattr(backup_spec, "shared_code_mounts", lambda cfg: (volume, {"name": "shared-code"}))
    r = raw(target="claim:team-code")
    r["storage"] = {**r.get("storage", {}), "sharedCode": {"hostPath": "/srv/code"}}
    cfg = parse_config(r)
    assert user_pod_claims(cfg) == {CLAIM_NAME, "team-code"}
    for build in (backup_cronjobs, lambda c: restore_job(c, "alice", "latest", datetime.now(UTC))):
        with pytest.raises(ConfigError) as err:
            build(cfg)
        assert "gpu-jupyterhub:backup.target: claim:team-code is mounted by user pods" in str(err.value)
    monkeypatch.setattr(backup_spec, "shared_code_mounts", lambda cfg: (volume | {"name": "x"}, {}))
    r["backup"]["target"] = "claim:backup-disk"
    assert len(backup_cronjobs(parse_config(r))) == 2


def test_disabled_by_default_and_complete_when_on() -> None:
    assert parse_config(BASE_CONFIG).backup.enabled is False
    cfg = parse_config(raw())
    assert cfg.backup.keep.model_dump() == {"last": 3, "daily": 7, "weekly": 4, "monthly": 6}


@pytest.mark.parametrize("target", ["s3:https://s3.lab.example/notebook-backups/hub", "claim:backup-disk"])
def test_cronjobs_are_valid_hardened_and_read_only(target: str) -> None:
    cfg = parse_config(raw(target=target))
    jobs = backup_cronjobs(cfg)
    assert [j["metadata"]["name"] for j in jobs] == [BACKUP_CRONJOB, CHECK_CRONJOB]
    cm = configmap(cfg)
    validate(cm)
    for job in jobs:
        validate(job)
        spec = job["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0
        assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] == cfg.backup.timeoutSeconds
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        assert restricted_violations(pod) == []
        assert pod["automountServiceAccountToken"] is False
        (c,) = pod["containers"]
        assert c["image"] == IMAGE
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        # the script it runs is in the ConfigMap it mounts
        script = c["command"][1].removeprefix("/scripts/")
        assert script in cm["data"] and set(cm["data"]) == set(SCRIPTS)
        scripts_volume = next(v for v in pod["volumes"] if v["name"] == "scripts")
        assert scripts_volume["configMap"]["name"] == CONFIGMAP_NAME
        # the notebooks are mounted read-only, or not at all (the check reads only the repository)
        for v in pod["volumes"]:
            if v.get("persistentVolumeClaim", {}).get("claimName") == "jupyterhub-notebooks":
                assert v["persistentVolumeClaim"]["readOnly"] is True
        assert all(m["readOnly"] for m in c["volumeMounts"] if m["name"] == "notebooks")
        refs = {e["valueFrom"]["secretKeyRef"]["key"] for e in c["env"] if "valueFrom" in e}
        names = {e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
        assert names == {SECRET_NAME}
        expected = {"RESTIC_PASSWORD"} | (
            set() if target.startswith("claim:") else {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        )
        assert refs == expected
        plain = {e["name"]: e["value"] for e in c["env"] if "value" in e}
        assert plain["RESTIC_REPOSITORY"] == ("/repository/restic" if target.startswith("claim:") else target)
    assert "notebooks" not in json.dumps(jobs[1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"])


def test_the_program_registers_backups_with_secrets_kept_secret() -> None:
    r = run_program(raw(), nodes_json=nodes_json("mixed"), secret_keys=("auth", "registry", "backup"))
    secret = next(x for x in r.of_type("kubernetes:core/v1:Secret") if x.inputs["metadata"]["name"] == SECRET_NAME)
    assert set(secret.inputs["stringData"]) == {"RESTIC_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert secret.inputs["stringData"]["RESTIC_PASSWORD"] == PASSWORD
    assert SECRET_SIG in json.dumps(secret.raw["stringData"])
    for res in r.resources:
        for s in plain_strings(res.raw):
            assert PASSWORD not in s and SECRET not in s and ACCESS not in s, res.name
    assert PASSWORD not in json.dumps(r.outputs, default=str)
    crons = r.of_type("kubernetes:batch/v1:CronJob")
    assert sorted(c.inputs["metadata"]["name"] for c in crons) == [BACKUP_CRONJOB, CHECK_CRONJOB]
    component = next(x for x in r.resources if x.type == "gpu-jupyterhub:backup:NotebookBackup")
    scripts = next(x for x in r.of_type("kubernetes:core/v1:ConfigMap") if x.name.endswith("backup-scripts"))
    guard = [
        *r.of_type("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"),
        *r.of_type("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"),
    ]
    assert [g.inputs["metadata"]["name"] for g in guard] == [f"{BACKUP_GUARD}-{NAMESPACE}"] * 2
    for child in [*crons, secret, scripts, *guard]:
        assert child.parent == component.urn_name or child.parent.endswith(component.name)
        validate(manifest_from_inputs(child.type, child.inputs))
    assert r.outputs["backup"]["last_success"].endswith("-o jsonpath='{.status.lastSuccessfulTime}'")
    plain = run_program(copy.deepcopy(BASE_CONFIG), nodes_json=nodes_json("mixed"), secret_keys=("auth", "registry"))
    assert plain.of_type("kubernetes:batch/v1:CronJob") == [] and "backup" not in plain.outputs
    assert plain.of_type("kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy") == []


def test_the_guard_keeps_the_secret_and_the_repository_claim_from_the_namespaces_accounts() -> None:
    """What the API server enforces (tests/e2e/test_engine.py tries each way in); here: what it is told."""
    policy, binding = backup_guard(parse_config(raw(target="claim:restic-repo", credentials=None)))
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    [condition] = spec["matchConditions"]
    assert condition["expression"] == f"request.userInfo.username.startsWith('system:serviceaccount:{NAMESPACE}:')"
    assert spec["matchConstraints"]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": NAMESPACE}
    assert spec["matchConstraints"]["resourceRules"][0]["operations"] == ["CREATE", "UPDATE"]
    rule = spec["validations"][0]["expression"]
    for field in ("v.secret.secretName", "s.secret.name", "secretKeyRef.name", "f.secretRef.name", "claimName"):
        assert field in rule
    assert "['restic-repo']" in rule and rule.count(f"'{SECRET_NAME}'") == 2 + 2 * 3
    s3 = backup_guard(parse_config(raw()))[0]["spec"]["validations"][0]["expression"]
    assert "claimName in []" in s3


def stack_file(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(yaml.safe_dump({"config": {f"gpu-jupyterhub:{k}": v for k, v in cfg.items()}}))
    return path


def test_restore_dry_run_prints_the_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert restore_main(["--stack-file", str(stack_file(tmp_path, raw())), "--user", "alice", "--dry-run"]) == 0
    job = yaml.safe_load(capsys.readouterr().out)
    validate(job)
    (c,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert (env["RESTORE_USER"], env["RESTORE_SNAPSHOT"]) == ("alice", "latest")
    assert c["command"] == ["/bin/sh", "/scripts/restore.sh"]


def fake_kubectl(tmp_path: Path, outcome: str) -> Path:
    """A kubectl that records its calls and reports the Job as ``outcome`` (succeeded or failed)."""
    log = tmp_path / "calls.jsonl"
    exe = tmp_path / "kubectl"
    exe.write_text(
        f"""#!/usr/bin/env python3
import json, sys
args = sys.argv[1:]
stdin = sys.stdin.read() if "-f" in args else ""
open({str(log)!r}, "a").write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
if "get" in args:
    print(json.dumps({{"status": {{{outcome!r}: 1}}}}))
elif "logs" in args:
    print("restored abcd1234:/data/alice into /data/alice.restored-abcd1234-20261128T010203Z" if {outcome!r} ==
          "succeeded" else "restore failed: no snapshot 'x' of notebooks-jupyterhub in s3:...")
"""
    )
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_restore_creates_waits_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str], outcome: str) -> None:
    exe = fake_kubectl(tmp_path, outcome)
    argv = ["--stack-file", str(stack_file(tmp_path, raw())), "--all", "--snapshot", "abcd1234"]
    rc = restore_main([*argv, "--kubectl", str(exe), "--poll", "0"])
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert calls[0]["args"][:4] == ["--context", "homelab", "-n", "jupyterhub"]
    created = json.loads(calls[0]["stdin"])
    env = {e["name"]: e.get("value") for e in created["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["RESTORE_USER"], env["RESTORE_SNAPSHOT"]) == ("*", "abcd1234")
    out = capsys.readouterr()
    if outcome == "succeeded":
        assert rc == 0 and "into /data/alice.restored-abcd1234" in out.out
    else:
        assert rc == 1 and "restore failed" in out.err


def test_restore_refuses_a_stack_without_backups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = restore_main(["--stack-file", str(stack_file(tmp_path, copy.deepcopy(BASE_CONFIG))), "--user", "a"])
    assert rc == 2
    assert "backup.enabled is false" in capsys.readouterr().err
    assert restore_main(["--stack-file", str(tmp_path / "nope.yaml"), "--user", "a"]) == 2
    assert os.path.exists(tmp_path / "Pulumi.lab.yaml")


@pytest.mark.parametrize("snapshot", ["--no-lock", "--target=/data/bob", "4f2a9c1", "4F2A9C1E", "latest ", "x" * 64])
def test_restore_refuses_a_snapshot_that_is_not_an_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], snapshot: str
) -> None:
    """The value reaches restic's command line: `--snapshot=--no-lock` used to become a restic flag."""
    argv = ["--stack-file", str(stack_file(tmp_path, raw())), "--user", "alice", f"--snapshot={snapshot}"]
    assert restore_main([*argv, "--dry-run"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("error: --snapshot: a snapshot ID from `restic snapshots` (8 or 64")
    with pytest.raises(ValueError, match="snapshot: a snapshot ID"):
        restore_job(parse_config(raw()), "alice", snapshot, datetime.now(UTC))
    for good in ("latest", "4f2a9c1e", "0123456789abcdef" * 4):
        assert restore_main([*argv[:-1], f"--snapshot={good}", "--dry-run"]) == 0
    capsys.readouterr()
