"""Backup time and repository size for 1 GB of notebooks, first and second run, with the project's scripts.

Builds a tree of ~1 GB (20 users: notebooks with outputs, CSVs, model checkpoints; partly compressible, like
real notebook folders), runs ``backup.sh`` twice against a local repository and against the SeaweedFS S3
gateway on 127.0.0.1 (the second run after changing 1 % of the files), then restores one user. Prints
wall time and repository size per run. Needs restic and weed from scripts/e2e/setup.sh. Asserts nothing.

    python -m benchmarks.backup_bench [--gb 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.storage.seaweed import TOOLCHAIN_BIN, SeaweedFS, weed_binary  # noqa: E402
from tests.storage.test_backup import Runner  # noqa: E402


def make_tree(root: Path, total: int, rnd: random.Random) -> list[Path]:
    files: list[Path] = []
    per_user = total // 20
    for u in range(20):
        home = root / f"user{u:02d}"
        (home / "data").mkdir(parents=True)
        written = 0
        i = 0
        while written < per_user:
            kind = i % 4
            if kind == 0:  # a notebook with text outputs (compresses well)
                cells = [{"cell_type": "code", "source": f"x = {j}", "outputs": [{"text": "row " * 500}]}
                         for j in range(200)]  # fmt: skip
                blob = json.dumps({"cells": cells, "nbformat": 4}).encode()
                path = home / f"nb{i}.ipynb"
            elif kind == 1:  # a CSV
                blob = "\n".join(f"{j},{rnd.random():.6f},{rnd.randint(0, 99)}" for j in range(40_000)).encode()
                path = home / "data" / f"table{i}.csv"
            else:  # checkpoints / embeddings (incompressible)
                blob = rnd.randbytes(8_000_000)
                path = home / "data" / f"weights{i}.bin"
            path.write_bytes(blob)
            files.append(path)
            written += len(blob)
            i += 1
    return files


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=1.0)
    args = ap.parse_args()
    restic = TOOLCHAIN_BIN / "restic"
    weed = weed_binary()
    if not restic.exists() or weed is None:
        sys.exit("backup_bench needs restic and weed: run scripts/e2e/setup.sh")
    print(f"backup_bench: {platform.node()}, {os.cpu_count()} CPUs, restic {restic}")
    with tempfile.TemporaryDirectory(prefix="backup-bench-") as tmp:
        t = Path(tmp)
        data = t / "data"
        rnd = random.Random(1)
        start = time.monotonic()
        files = make_tree(data, int(args.gb * 1e9), rnd)
        print(f"tree: {du(data) / 1e9:.2f} GB in {len(files)} files, made in {time.monotonic() - start:.0f} s")
        fs = SeaweedFS(t / "seaweedfs", weed)
        try:
            fs.start()
            fs.start_s3("bench", "bench-secret-key")
            targets = {
                "local repository": (str(t / "repo"), {}),
                "SeaweedFS S3 gateway": (
                    f"s3:{fs.s3_url}/notebook-backups/bench",
                    {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret-key", "OPEN_TIMEOUT": "10"},
                ),
            }
            for label, (repo, extra) in targets.items():
                work = t / label.replace(" ", "-")
                work.mkdir()
                run = Runner(restic, data, repo, work, extra)
                print(f"\n{label}")
                for n in (1, 2):
                    if n == 2:
                        for f in rnd.sample(files, max(1, len(files) // 100)):
                            f.write_bytes(f.read_bytes()[:-64] + rnd.randbytes(64))
                    start = time.monotonic()
                    done = run("backup.sh")
                    took = time.monotonic() - start
                    if done.returncode != 0:
                        sys.exit(f"backup failed: {done.stderr}")
                    size = du(Path(repo)) if not repo.startswith("s3:") else du(fs.root / "volume")
                    what = "repository" if not repo.startswith("s3:") else "volume server data (all of SeaweedFS)"
                    print(f"  run {n}: {took:6.1f} s   {what}: {size / 1e6:8.1f} MB")
                start = time.monotonic()
                restored = run("restore.sh", RESTORE_USER="user03")
                print(
                    f"  restore of one user (~{args.gb * 50:.0f} MB): {time.monotonic() - start:.1f} s"
                    f" ({restored.stdout.strip().splitlines()[-1] if restored.returncode == 0 else restored.stderr})"
                )
        finally:
            fs.close()


if __name__ == "__main__":
    main()
