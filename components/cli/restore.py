"""Restore notebooks from the restic backups with one command.

    python -m components.cli.restore --stack homelab --user alice [--snapshot <id>|latest] [--dry-run]
    python -m components.cli.restore --stack homelab --all --snapshot 1a2b3c4d
    python -m components.cli.restore --stack homelab --user alice --into-home   (inside ~/notebooks, for the user)

Creates a one-off Job in the stack's namespace (through ``kubectl --context <kubeContext>``, the stack's
own context) that restores the user's directory, or the whole volume, as of the snapshot into a NEW
directory next to the live one (``<user>.restored-<snapshot>-<time>``); nothing existing is overwritten.
Waits for it and prints where the files are, or why it failed. ``--dry-run`` prints the Job instead.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from components.core.backup_spec import SNAPSHOT_HELP, SNAPSHOT_ID, check_target, restore_job
from components.core.config import ConfigError, StackConfig
from components.core.config_load import StackFileError, read_stack_file

ROOT = Path(__file__).resolve().parents[2]


class RestoreError(Exception):
    pass


def load(stack: str | None, stack_file: Path | None) -> StackConfig:
    path = stack_file or ROOT / f"Pulumi.{stack}.yaml"
    try:
        cfg = read_stack_file(path)
    except StackFileError as e:
        raise RestoreError(str(e)) from None
    if not cfg.backup.enabled:
        raise RestoreError(f"{path.name}: backup.enabled is false, so there are no backups to restore from")
    try:
        check_target(cfg)
    except ConfigError as e:
        raise RestoreError(f"{path.name}: {e}") from None
    return cfg


def kubectl(cfg: StackConfig, *args: str, stdin: str | None = None, exe: str = "kubectl") -> str:
    proc = subprocess.run(
        [exe, "--context", cfg.kubeContext, "-n", cfg.namespace, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RestoreError(f"kubectl {' '.join(args[:2])} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def wait(cfg: StackConfig, name: str, timeout: float, exe: str, poll: float) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while True:
        job = json.loads(kubectl(cfg, "get", "job", name, "-o", "json", exe=exe))
        status = job.get("status") or {}
        if status.get("succeeded") or status.get("failed"):
            return job
        if time.monotonic() > end:
            raise RestoreError(f"job {name} still running after {timeout:.0f}s; follow it: kubectl logs -f job/{name}")
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.cli.restore", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="stack name: reads Pulumi.<stack>.yaml beside the program")
    where.add_argument("--stack-file", type=Path, help="a stack file elsewhere")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the user whose notebooks folder to restore")
    who.add_argument("--all", action="store_true", help="every user's folder")
    parser.add_argument("--snapshot", default="latest", help=SNAPSHOT_HELP)
    parser.add_argument(
        "--into-home", action="store_true", help="restore inside the user's folder (they see it), not beside it"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the Job, create nothing")
    parser.add_argument("--kubectl", default="kubectl", help=argparse.SUPPRESS)
    parser.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        # checked before anything else: the value reaches restic's command line
        if not SNAPSHOT_ID.fullmatch(args.snapshot):
            raise RestoreError(f"--snapshot: {SNAPSHOT_HELP}, not {args.snapshot!r}")
        cfg = load(args.stack, args.stack_file)
        if args.all and args.into_home:
            raise RestoreError("--into-home restores one user's folder; use --user")
        job = restore_job(cfg, "*" if args.all else args.user, args.snapshot, datetime.now(UTC), args.into_home)
        if args.dry_run:
            sys.stdout.write(yaml.safe_dump(job, sort_keys=False))
            return 0
        name = job["metadata"]["name"]
        kubectl(cfg, "create", "-f", "-", stdin=json.dumps(job), exe=args.kubectl)
        print(f"job {name} created in {cfg.namespace}; waiting ...", file=sys.stderr)
        done = wait(cfg, name, cfg.backup.timeoutSeconds, args.kubectl, args.poll)
        logs = kubectl(cfg, "logs", f"job/{name}", "--tail=20", exe=args.kubectl)
        if done["status"].get("succeeded"):
            print(logs.strip().splitlines()[-1] if logs.strip() else f"job {name} succeeded")
            return 0
        print(f"restore failed; the job's last lines:\n{logs.rstrip()}", file=sys.stderr)
        return 1
    except RestoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
