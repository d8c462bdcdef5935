"""The backup, restore and check scripts run for real: restic (from the toolchain) against a local repository
and against the SeaweedFS S3 gateway, on a tree of notebooks the test builds.

The scripts are the files the ConfigMap ships (``components/shipped/backup_scripts``), run with ``/bin/sh`` and the
environment the CronJob gives them (``components/core/backup_spec``), with only the paths moved to temporary ones.
"""

from __future__ import annotations

import copy
import filecmp
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.core.backup_spec import SCRIPTS_DIR, backup_cronjobs, restore_job
from components.core.config_load import parse_config
from tests.conftest import BASE_CONFIG
from tests.storage.seaweed import TOOLCHAIN_BIN, SeaweedFS, free_port

PASSWORD = "correct horse battery staple 42"
HOST = "notebooks-jupyterhub"


@pytest.fixture(scope="module")
def restic(weed: Path) -> Path:
    path = shutil.which("restic", path=f"{TOOLCHAIN_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        pytest.fail(f"restic is not in {TOOLCHAIN_BIN}: run scripts/e2e/setup.sh")
    return Path(path)


def cfg_env(**backup: Any) -> dict[str, str]:
    """The plain env of the backup CronJob's container, as the program renders it."""
    raw = copy.deepcopy(BASE_CONFIG)
    raw["backup"] = {
        "enabled": True,
        "target": "s3:http://s3.lab.example:8333/notebook-backups",
        "credentials": {"accessKey": "a", "secretKey": "b"},
        "password": PASSWORD,
        "image": "harbor.lab.example/proxy/restic/restic@sha256:" + "1" * 64,
        **backup,
    }
    job = backup_cronjobs(parse_config(raw))[0]
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def build_tree(root: Path) -> None:
    """Two users' folders: files of several sizes, unicode names, a checkpoint directory, an empty file."""
    rnd = random.Random(7)
    for user in ("alice", "bob"):
        home = root / user
        (home / ".ipynb_checkpoints").mkdir(parents=True)
        (home / "data").mkdir()
        (home / "analysis.ipynb").write_text(json.dumps({"cells": [], "metadata": {"user": user}, "nbformat": 4}))
        (home / ".ipynb_checkpoints" / "analysis-checkpoint.ipynb").write_text('{"checkpoint": true}')
        (home / "data" / "weights.bin").write_bytes(rnd.randbytes(3_000_000))
        (home / "data" / "small.csv").write_text("a,b\n1,2\n")
        (home / "empty.txt").write_bytes(b"")
        (home / "résumé ünïcode.ipynb").write_text('{"naïve": "日本語"}')
        (home / "数据 🚀.txt").write_bytes(rnd.randbytes(70_000))


def same_tree(a: Path, b: Path) -> list[str]:
    """Differences between two trees, byte for byte (empty: identical)."""
    out: list[str] = []

    def walk(cmp: filecmp.dircmp[str], rel: str) -> None:
        out.extend(f"{rel}{n}: only on one side" for n in cmp.left_only + cmp.right_only)
        for name in cmp.common_files:
            if not filecmp.cmp(Path(cmp.left) / name, Path(cmp.right) / name, shallow=False):
                out.append(f"{rel}{name}: content differs")
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{rel}{name}/")

    walk(filecmp.dircmp(a, b), "")
    return out


class Runner:
    """Runs a script as the pod would: ``/bin/sh /scripts/<name>`` with the container's env."""

    def __init__(self, restic: Path, data: Path, repo: str, tmp: Path, extra: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.env = {
            "PATH": f"{restic.parent}{os.pathsep}/usr/bin:/bin",
            **cfg_env(),
            "DATA": str(data),
            "RESTIC_REPOSITORY": repo,
            "RESTIC_PASSWORD": PASSWORD,
            "RESTIC_CACHE_DIR": str(tmp / "cache"),
            "HOME": str(tmp / "cache"),
            "TMPDIR": str(tmp),
            "TERMINATION_LOG": str(tmp / "termination-log"),
            **(extra or {}),
        }

    def __call__(self, script: str, **env: str) -> subprocess.CompletedProcess[str]:
        (self.tmp / "termination-log").unlink(missing_ok=True)
        return subprocess.run(
            ["/bin/sh", str(SCRIPTS_DIR / script)],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )

    def snapshots(self) -> list[dict[str, Any]]:
        out = subprocess.run(
            ["restic", "snapshots", "--json", "--host", HOST], env=self.env, capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout)

    @property
    def message(self) -> str:
        f = self.tmp / "termination-log"
        return f.read_text().strip() if f.exists() else ""


def test_the_cronjob_env_is_what_the_scripts_read() -> None:
    env = cfg_env(keep={"last": 2, "daily": 3, "weekly": 0, "monthly": 1})
    assert env["BACKUP_HOST"] == HOST and env["DATA"] == "/data"
    assert (env["KEEP_LAST"], env["KEEP_DAILY"], env["KEEP_WEEKLY"], env["KEEP_MONTHLY"]) == ("2", "3", "0", "1")
    assert env["RESTIC_REPOSITORY"] == "s3:http://s3.lab.example:8333/notebook-backups"
    text = (SCRIPTS_DIR / "backup.sh").read_text()
    for key in ("KEEP_LAST", "KEEP_DAILY", "KEEP_WEEKLY", "KEEP_MONTHLY", "BACKUP_HOST", "DATA"):
        assert f"${{{key}" in text or f"${key}" in text, key


def backup_change_restore(run: Runner, data: Path, tmp: Path) -> None:
    """Back up, change and delete files, back up again, restore the first snapshot; compare byte for byte."""
    build_tree(data)
    original = tmp / "original"
    shutil.copytree(data, original)
    first = run("backup.sh")
    assert first.returncode == 0, first.stderr
    assert "creating it" in first.stdout
    # a day's work: one notebook changed, a folder deleted, a file added
    (data / "alice" / "analysis.ipynb").write_text('{"changed": true}')
    shutil.rmtree(data / "bob" / "data")
    (data / "alice" / "new.ipynb").write_text("{}")
    second = run("backup.sh")
    assert second.returncode == 0, second.stderr
    snaps = run.snapshots()
    assert len(snaps) == 2 and all(s["hostname"] == HOST for s in snaps)
    first_id = sorted(snaps, key=lambda s: s["time"])[0]["short_id"]

    restored = run("restore.sh", RESTORE_USER="alice", RESTORE_SNAPSHOT=first_id)
    assert restored.returncode == 0, restored.stderr
    [dest] = [p for p in data.iterdir() if p.name.startswith(f"alice.restored-{first_id}-")]
    assert same_tree(original / "alice", dest) == []
    assert (data / "alice" / "analysis.ipynb").read_text() == '{"changed": true}', "the live folder is untouched"
    home = run("restore.sh", RESTORE_USER="alice", RESTORE_SNAPSHOT=first_id, RESTORE_INTO="home")
    assert home.returncode == 0, home.stderr
    [inside] = [p for p in (data / "alice").iterdir() if p.name.startswith(f"restored-{first_id}-")]
    assert same_tree(original / "alice", inside) == []
    shutil.rmtree(inside)

    everything = run("restore.sh", RESTORE_USER="*")  # latest: the second snapshot
    assert everything.returncode == 0, everything.stderr
    [whole] = [p for p in data.iterdir() if p.name.startswith(".restored-")]
    assert not (whole / "bob" / "data").exists() and (whole / "alice" / "new.ipynb").exists()
    assert same_tree(data / "bob", whole / "bob") == []

    check = run("check.sh", CHECK_SUBSET="100%")
    assert check.returncode == 0, check.stderr


def test_local_repository_backup_change_restore(restic: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    run = Runner(restic, data, str(tmp_path / "repo"), tmp_path)
    backup_change_restore(run, data, tmp_path)


def test_s3_gateway_backup_change_restore(restic: Path, seaweed: SeaweedFS, tmp_path: Path) -> None:
    seaweed.start_s3("backup-key", "backup-secret-value")
    data = tmp_path / "data"
    data.mkdir()
    repo = f"s3:{seaweed.s3_url}/notebook-backups/lab"
    run = Runner(
        restic,
        data,
        repo,
        tmp_path,
        # restic retries a missing bucket like an outage: the first run finds out after OPEN_TIMEOUT
        {"AWS_ACCESS_KEY_ID": "backup-key", "AWS_SECRET_ACCESS_KEY": "backup-secret-value", "OPEN_TIMEOUT": "10"},
    )
    backup_change_restore(run, data, tmp_path)
    # a wrong secret key is refused by the gateway, and said so
    bad = run("backup.sh", AWS_SECRET_ACCESS_KEY="not-the-key")
    assert bad.returncode == 1, bad.stderr
    assert run.message.startswith(f"backup failed: repository at {repo} not reachable within 10s (last error: ")
    print("wrong S3 key:", run.message)


def test_wrong_password_and_unreachable_target_fail_with_a_clear_message(restic: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "alice").mkdir(parents=True)
    (data / "alice" / "a.ipynb").write_text("{}")
    repo = str(tmp_path / "repo")
    run = Runner(restic, data, repo, tmp_path)
    assert run("backup.sh").returncode == 0
    wrong = run("backup.sh", RESTIC_PASSWORD="not the password at all")
    assert wrong.returncode == 1
    assert run.message == f"backup failed: wrong password for the repository at {repo} (backup.password)"
    assert "not the password" not in wrong.stdout + wrong.stderr
    restore = run("restore.sh", RESTORE_USER="alice", RESTIC_PASSWORD="nope nope nope nope")
    assert restore.returncode == 1 and "wrong password" in run.message

    closed = f"s3:http://127.0.0.1:{free_port()}/notebook-backups"
    gone = run(
        "backup.sh", RESTIC_REPOSITORY=closed, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s", OPEN_TIMEOUT="8"
    )
    assert gone.returncode == 1
    assert run.message.startswith(f"backup failed: repository at {closed} not reachable within 8s") or (
        run.message.startswith(f"backup failed: cannot open the repository at {closed}")
    ), run.message

    missing = run("restore.sh", RESTORE_USER="alice", RESTORE_SNAPSHOT="deadbeef")
    assert missing.returncode == 1 and "no snapshot 'deadbeef'" in run.message
    sneaky = run("restore.sh", RESTORE_USER="../etc")
    assert sneaky.returncode == 1 and "must be a user name" in run.message


def racing_user(restic: Path, tmp: Path, data: Path, user: str, victim: str) -> Path:
    """A PATH directory whose ``restic`` and ``mv`` let ``user`` (server running, writing in their folder) win
    every race of a restore. restic 0.18 replaces a link it finds where it restores, so the user swaps a
    directory for a link to ``victim``'s folder after restic made it: restic is paused (SIGSTOP) the moment
    ``<target>/data`` appears inside the user's folder, the swap done, restic resumed. And just before anything is
    moved to a name inside the folder, that name becomes such a link. Then the real command goes on."""
    bin_dir = tmp / "racing-user"
    bin_dir.mkdir()
    home, other = data / user, data / victim
    (bin_dir / "restic").write_text(f"""#!{sys.executable}
import os, signal, subprocess, sys
args = sys.argv[1:]
target = args[args.index("--target") + 1] if args[:1] == ["restore"] else ""
if not target.startswith({str(home)!r} + "/"):
    os.execv({str(restic)!r}, [{str(restic)!r}, *args])
proc = subprocess.Popen([{str(restic)!r}, *args])
sub = os.path.join(target, "data")
while proc.poll() is None and not os.path.isdir(sub):
    pass
if proc.poll() is None:
    os.kill(proc.pid, signal.SIGSTOP)
    os.rename(sub, sub + ".moved")
    os.symlink({str(other)!r}, sub)
    os.kill(proc.pid, signal.SIGCONT)
sys.exit(proc.wait())
""")
    (bin_dir / "mv").write_text(f"""#!/bin/sh
for last in "$@"; do :; done
case $last in {home}/*) rm -rf "$last"; ln -s {other} "$last" ;; esac
exec /bin/mv "$@"
""")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def test_a_user_racing_a_restore_into_their_home_cannot_redirect_it(restic: Path, tmp_path: Path) -> None:
    """Issue 25.6: restore.sh made a directory inside alice's folder and restored into it; alice swapped it for a
    link to bob's folder and restic wrote alice's files there. Now restic writes only out of every user's reach,
    and the one rename into alice's folder does not follow her link: the restore fails, saying where the files
    are, and bob's folder is untouched."""
    data = tmp_path / "data"
    build_tree(data)
    run = Runner(restic, data, str(tmp_path / "repo"), tmp_path)
    assert run("backup.sh").returncode == 0
    bob = tmp_path / "bob-before"
    shutil.copytree(data / "bob", bob)
    evil = racing_user(restic, tmp_path, data, "alice", "bob")
    home = run("restore.sh", RESTORE_USER="alice", RESTORE_INTO="home", PATH=f"{evil}{os.pathsep}{run.env['PATH']}")
    assert same_tree(bob, data / "bob") == [], "restic wrote through alice's link into bob's folder"
    assert home.returncode == 1, home.stdout
    staged = [p for p in data.iterdir() if p.name.startswith(".restore-alice-")]
    assert len(staged) == 1 and (staged[0] / "analysis.ipynb").is_file()
    assert run.message.startswith(f"restore failed: cannot move the restored files to {data}/alice/restored-")
    assert run.message.endswith(f"they are in {staged[0]}")
    # not raced, the same restore lands in alice's folder, and nothing is left behind
    shutil.rmtree(staged[0])
    ok = run("restore.sh", RESTORE_USER="alice", RESTORE_INTO="home")
    assert ok.returncode == 0, ok.stderr
    [link] = [p for p in (data / "alice").iterdir() if p.name.startswith("restored-") and p.is_symlink()]
    assert link.resolve() == data / "bob", "alice's own link stays hers"
    [inside] = [p for p in (data / "alice").iterdir() if p.name.startswith("restored-") and not p.is_symlink()]
    assert same_tree(bob, data / "bob") == [] and (inside / "analysis.ipynb").is_file()
    assert not [p for p in data.iterdir() if p.name.startswith(".restore-")]


@pytest.mark.parametrize("snapshot", ["--no-lock", "--host=other", "4f2a9c1", "LATEST", ""])
def test_restore_refuses_a_snapshot_that_is_not_an_id(restic: Path, tmp_path: Path, snapshot: str) -> None:
    data = tmp_path / "data"
    (data / "alice").mkdir(parents=True)
    run = Runner(restic, data, str(tmp_path / "repo"), tmp_path)
    bad = run("restore.sh", RESTORE_USER="alice", RESTORE_SNAPSHOT=snapshot)
    if snapshot == "":  # unset or empty: latest, and there is no repository here
        assert bad.returncode == 1 and "no repository" in run.message
        return
    assert bad.returncode == 1
    assert run.message == "restore failed: RESTORE_SNAPSHOT must be a snapshot ID (8 or 64 hex characters) or latest"


def test_retention_and_a_corrupted_repository(restic: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "alice").mkdir(parents=True)
    repo = tmp_path / "repo"
    run = Runner(restic, data, str(repo), tmp_path, {"KEEP_LAST": "2", "KEEP_DAILY": "0", "KEEP_WEEKLY": "0",
                                                     "KEEP_MONTHLY": "0"})  # fmt: skip
    for i in range(3):
        (data / "alice" / "n.ipynb").write_text(json.dumps({"version": i}))
        assert run("backup.sh").returncode == 0
    assert len(run.snapshots()) == 2, "keep-last 2 after three backups"
    packs = sorted((repo / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    victim = packs[-1]
    victim.chmod(0o644)
    blob = bytearray(victim.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    victim.write_bytes(bytes(blob))
    bad = run("check.sh", CHECK_SUBSET="100%")
    assert bad.returncode == 1
    assert run.message == f"repository check failed (restic check status 1) for {repo}"


def test_restore_job_writes_beside_the_live_folder_and_backups_only_read() -> None:
    raw = copy.deepcopy(BASE_CONFIG)
    raw["backup"] = {"enabled": True, "target": "claim:backup-disk", "password": PASSWORD,
                     "image": "harbor.lab.example/proxy/restic/restic@sha256:" + "1" * 64}  # fmt: skip
    cfg = parse_config(raw)
    from datetime import UTC, datetime

    job = restore_job(cfg, "alice", "latest", datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC))
    pod = job["spec"]["template"]["spec"]
    notebooks = next(v for v in pod["volumes"] if v["name"] == "notebooks")
    assert notebooks["persistentVolumeClaim"]["readOnly"] is False
    assert job["metadata"]["name"] == "notebook-restore-alice-20261128010203"
    for cron in backup_cronjobs(cfg):
        spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
        assert mounts.get("notebooks", {"readOnly": True})["readOnly"] is True
        assert mounts["repository"]["mountPath"] == "/repository"
