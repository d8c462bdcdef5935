"""Notebook backups as plain Kubernetes objects: restic CronJobs over the notebooks claim, and restore Jobs.

The scripts (``components/shipped/backup_scripts``) ship in a ConfigMap, so the image only needs restic and a shell,
and the tests run the very same files against a real repository. Backup and check pods mount the claim
read-only, run as uid 1000 with the "restricted" Pod Security profile, and get no service-account token;
a restore pod mounts it read-write, because it writes a new directory next to the live one (restore.sh
writes only where no user pod reaches, then renames into a user's folder without following links). No
repository may live on a claim that user pods mount (``check_target``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from components import shipped
from components.core.config import ConfigError, StackConfig, backup_target_refusal
from components.core.storage_spec import (
    CLAIM_NAME,
    job_pod_security_context,
    shared_code_mounts,
    singleuser_storage_values,
)

SCRIPTS_DIR = shipped.BACKUP_DIR
SCRIPTS = shipped.BACKUP_SCRIPTS
SECRET_NAME = "notebook-backup"
CONFIGMAP_NAME = "notebook-backup-scripts"
BACKUP_CRONJOB = "notebook-backup"
CHECK_CRONJOB = "notebook-backup-check"
PASSWORD_KEY = "RESTIC_PASSWORD"
ACCESS_KEY = "AWS_ACCESS_KEY_ID"
SECRET_KEY = "AWS_SECRET_ACCESS_KEY"
DATA = "/data"
REPO_MOUNT = "/repository"
LABELS = {"app.kubernetes.io/part-of": "gpu-jupyterhub", "app.kubernetes.io/component": "notebook-backup"}
# restic snapshot IDs: the short form or the whole one; anything else (a value starting with `--`) is refused
SNAPSHOT_ID = re.compile(r"latest|[0-9a-f]{8}|[0-9a-f]{64}")
SNAPSHOT_HELP = "a snapshot ID from `restic snapshots` (8 or 64 hex characters) or latest"


def scripts() -> dict[str, str]:
    """The ConfigMap's data: file name to script text."""
    return {name: shipped.text(name) for name in SCRIPTS}


def backup_host(cfg: StackConfig) -> str:
    """The host name on every snapshot: stable across pods, distinct per namespace sharing a repository."""
    return f"notebooks-{cfg.namespace}"


def user_pod_claims(cfg: StackConfig) -> set[str]:
    """Every claim a user pod can mount: the notebooks claim (each user's subPath) and any claim among the
    volumes the chart values and the profiles add (shared code, when it is a claim)."""
    storage = singleuser_storage_values(cfg)
    volumes = list(storage["extraVolumes"])
    if cfg.storage.sharedCode is not None:
        volumes.append(shared_code_mounts(cfg)[0])
    claims = {storage["static"]["pvcName"]}
    return claims | {v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v}


def check_target(cfg: StackConfig) -> None:
    """Refuse a repository on a claim that user pods mount (ConfigError naming ``backup.target``)."""
    target = cfg.backup.target or ""
    claim = target.removeprefix("claim:")
    if target.startswith("claim:") and claim in user_pod_claims(cfg):
        raise ConfigError([f"gpu-jupyterhub:backup.target: {backup_target_refusal(claim)}"])


def repository(cfg: StackConfig) -> str:
    """``RESTIC_REPOSITORY``: the s3: URL as restic spells it, or the path where the target claim is mounted."""
    target = cfg.backup.target or ""
    return f"{REPO_MOUNT}/restic" if target.startswith("claim:") else target


def secret_keys(cfg: StackConfig) -> list[str]:
    """Keys of the backup Secret; the values stay Pulumi secrets (wired in components/backup.py)."""
    keys = [PASSWORD_KEY]
    if cfg.backup.credentials is not None and not (cfg.backup.target or "").startswith("claim:"):
        keys += [ACCESS_KEY, SECRET_KEY]
    return keys


def configmap(cfg: StackConfig) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP_NAME, "namespace": cfg.namespace, "labels": LABELS},
        "data": scripts(),
    }


def _pod_spec(cfg: StackConfig, script: str, env: list[dict[str, Any]], data_writable: bool, data: bool) -> dict:
    volumes: list[dict[str, Any]] = [
        {"name": "scripts", "configMap": {"name": CONFIGMAP_NAME, "defaultMode": 0o555}},
        {"name": "cache", "emptyDir": {"sizeLimit": "10Gi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "scripts", "mountPath": "/scripts", "readOnly": True},
        {"name": "cache", "mountPath": "/cache"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if data:
        volumes.append(
            {"name": "notebooks", "persistentVolumeClaim": {"claimName": CLAIM_NAME, "readOnly": not data_writable}}
        )
        mounts.append({"name": "notebooks", "mountPath": DATA, "readOnly": not data_writable})
    target = cfg.backup.target or ""
    if target.startswith("claim:"):
        volumes.append({"name": "repository", "persistentVolumeClaim": {"claimName": target.removeprefix("claim:")}})
        mounts.append({"name": "repository", "mountPath": REPO_MOUNT})
    secret_env = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": key}}} for key in secret_keys(cfg)
    ]
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": job_pod_security_context(),
        "containers": [
            {
                "name": "restic",
                "image": cfg.backup.image,
                "command": ["/bin/sh", f"/scripts/{script}"],
                "env": [
                    {"name": "RESTIC_REPOSITORY", "value": repository(cfg)},
                    {"name": "RESTIC_CACHE_DIR", "value": "/cache"},
                    {"name": "HOME", "value": "/cache"},
                    {"name": "TMPDIR", "value": "/tmp"},
                    {"name": "DATA", "value": DATA},
                    {"name": "BACKUP_HOST", "value": backup_host(cfg)},
                    *secret_env,
                    *env,
                ],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "256Mi"},
                    "limits": {"cpu": "2", "memory": "2Gi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }


def _cronjob(cfg: StackConfig, name: str, schedule: str, script: str, env: list[dict[str, Any]], data: bool) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": cfg.namespace, "labels": LABELS},
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 5,
            "jobTemplate": {
                "metadata": {"labels": LABELS},
                "spec": {
                    # a failure is final and visible (Job Failed, CronJob's lastSuccessfulTime stays behind)
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": cfg.backup.timeoutSeconds,
                    "template": {
                        "metadata": {"labels": {**LABELS, "gpu-jupyterhub/backup": script.removesuffix(".sh")}},
                        "spec": _pod_spec(cfg, script, env, data_writable=False, data=data),
                    },
                },
            },
        },
    }


def backup_cronjobs(cfg: StackConfig) -> list[dict[str, Any]]:
    """The nightly backup (with retention) and the periodic repository check."""
    check_target(cfg)
    keep = cfg.backup.keep
    env = [
        {"name": "KEEP_LAST", "value": str(keep.last)},
        {"name": "KEEP_DAILY", "value": str(keep.daily)},
        {"name": "KEEP_WEEKLY", "value": str(keep.weekly)},
        {"name": "KEEP_MONTHLY", "value": str(keep.monthly)},
    ]
    return [
        _cronjob(cfg, BACKUP_CRONJOB, cfg.backup.schedule, "backup.sh", env, data=True),
        _cronjob(cfg, CHECK_CRONJOB, cfg.backup.checkSchedule, "check.sh", [], data=False),
    ]


def _label(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:30].strip("-") or "all"


def restore_job(cfg: StackConfig, user: str, snapshot: str, now: datetime, into_home: bool = False) -> dict[str, Any]:
    """A one-off Job restoring ``user``'s directory (``*``: everything) as of ``snapshot`` into a new directory
    beside the live one, or with ``into_home`` inside the user's own folder, where they see it (restore.sh
    restores out of every user's reach first, then renames the result into place without following links)."""
    check_target(cfg)
    if not SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"snapshot: {SNAPSHOT_HELP}, not {snapshot!r}")
    env = [
        {"name": "RESTORE_USER", "value": user},
        {"name": "RESTORE_SNAPSHOT", "value": snapshot},
        {"name": "RESTORE_INTO", "value": "home" if into_home else "beside"},
    ]
    name = f"notebook-restore-{_label(user if user != '*' else 'all')}-{now.strftime('%Y%m%d%H%M%S')}"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": cfg.namespace, "labels": LABELS},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": cfg.backup.timeoutSeconds,
            "ttlSecondsAfterFinished": 7 * 24 * 3600,
            "template": {
                "metadata": {"labels": {**LABELS, "gpu-jupyterhub/backup": "restore"}},
                "spec": _pod_spec(cfg, "restore.sh", env, data_writable=True, data=True),
            },
        },
    }


def backup_summary(cfg: StackConfig) -> dict[str, str]:
    """The stack output: where backups go, when, and the commands that show and use them."""
    ns = cfg.namespace
    return {
        "repository": repository(cfg) if not (cfg.backup.target or "").startswith("claim:") else cfg.backup.target,
        "schedule": cfg.backup.schedule,
        "check_schedule": cfg.backup.checkSchedule,
        "last_success": f"kubectl -n {ns} get cronjob {BACKUP_CRONJOB} -o jsonpath='{{.status.lastSuccessfulTime}}'",
        "run_now": f"kubectl -n {ns} create job --from=cronjob/{BACKUP_CRONJOB} {BACKUP_CRONJOB}-manual",
        "restore": "python -m components.cli.restore --stack <stack> --user <name> [--snapshot <id>|latest]",
    }


BACKUP_GUARD = "gpu-jupyterhub-backup-guard"


def _refs_expression(secret: str, claims: list[str]) -> str:
    """CEL: true when a pod refers to neither the backup Secret nor the repository claim, by any field a pod
    can use to read them (secret and projected volumes, claims, env and envFrom of every container)."""
    quoted = ", ".join(f"'{c}'" for c in claims)
    volume = (
        f"(!has(v.secret) || v.secret.secretName != '{secret}')"
        f" && (!has(v.persistentVolumeClaim) || !(v.persistentVolumeClaim.claimName in [{quoted}]))"
        " && (!has(v.projected) || !has(v.projected.sources)"
        f" || v.projected.sources.all(s, !has(s.secret) || s.secret.name != '{secret}'))"
    )
    container = (
        "(!has(c.env) || c.env.all(e, !has(e.valueFrom) || !has(e.valueFrom.secretKeyRef)"
        f" || e.valueFrom.secretKeyRef.name != '{secret}'))"
        f" && (!has(c.envFrom) || c.envFrom.all(f, !has(f.secretRef) || f.secretRef.name != '{secret}'))"
    )
    return (
        f"(!has(object.spec.volumes) || object.spec.volumes.all(v, {volume}))"
        f" && object.spec.containers.all(c, {container})"
        f" && (!has(object.spec.initContainers) || object.spec.initContainers.all(c, {container}))"
        f" && (!has(object.spec.ephemeralContainers) || object.spec.ephemeralContainers.all(c, {container}))"
    )


def backup_guard_objects(namespace: str, claim: str | None) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy and its binding: no service account of the namespace (the hub's above all,
    which creates user pods) may create or change a pod that mounts the backup Secret or the repository claim.
    The backup Jobs' pods are made by the Job controller and restores by the admin, so they pass; without this,
    whoever controlled the hub could read the restic password or delete the backups through a pod of its own."""
    claims = [claim] if claim else []
    name = f"{BACKUP_GUARD}-{namespace}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": dict(LABELS)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods", "pods/ephemeralcontainers"],
                    }
                ],
            },
            "matchConditions": [
                {
                    "name": "a-service-account-of-the-namespace",
                    "expression": f"request.userInfo.username.startsWith('system:serviceaccount:{namespace}:')",
                }
            ],
            "validations": [
                {
                    "expression": _refs_expression(SECRET_NAME, claims),
                    "message": f"pods made by service accounts of {namespace} may not use the backup Secret "
                    f"{SECRET_NAME}" + (f" or the repository claim {claim}" if claim else ""),
                    "reason": "Forbidden",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": dict(LABELS)},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    return [policy, binding]


def backup_guard(cfg: StackConfig) -> list[dict[str, Any]]:
    """``backup_guard_objects`` for this stack's namespace and ``claim:`` target."""
    target = cfg.backup.target or ""
    return backup_guard_objects(cfg.namespace, target.removeprefix("claim:") if target.startswith("claim:") else None)
