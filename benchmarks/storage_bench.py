"""Notebook save time and cross-node visibility on a real SeaweedFS, mounted as the CSI driver mounts the PV.

Starts master, volume server and filer on 127.0.0.1 (``weed`` from scripts/e2e/setup.sh; needs root and
FUSE), mounts the project's PV twice (two nodes) with a Jupyter server on each, and prints:
  - save time through the contents API (PUT, as JupyterLab saves) for 10 KB, 1 MB and 20 MB notebooks,
    p50/p95 (the plan's target: < 2 s);
  - visibility: from the end of a save on node A until node B's server returns the same file (same sha256),
    for the CSI driver's default metadata TTL (60 s) and the project's (``storage.cacheMetaTtlSec``);
  - the cost of a TTL: listing and stat'ing a 1,000-file directory on a node after 1.3 s idle, TTL 1 s vs 60 s.
Prints figures, asserts nothing.

    python -m benchmarks.storage_bench [--saves 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.storage.conftest import project_pv, two_nodes  # noqa: E402
from tests.storage.jupyter import notebook, wait_for  # noqa: E402
from tests.storage.seaweed import SeaweedFS, missing_requirements, weed_binary  # noqa: E402

SIZES = {"10 KB": 10_000, "1 MB": 1_000_000, "20 MB": 20_000_000}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def fmt(xs: list[float]) -> str:
    return f"p50 {statistics.median(xs) * 1000:7.1f} ms   p95 {pct(xs, 0.95) * 1000:7.1f} ms   (n={len(xs)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--saves", type=int, default=20, help="saves per size and per TTL")
    args = ap.parse_args()
    missing = missing_requirements()
    if missing:
        sys.exit("storage_bench needs " + "; ".join(missing))
    project_ttl = project_pv()["spec"]["csi"]["volumeAttributes"]["cacheMetaTtlSec"]
    print(f"storage_bench: {platform.node()}, {os.cpu_count()} CPUs, weed {weed_binary()}")
    with tempfile.TemporaryDirectory(prefix="storage-bench-") as tmp:
        fs = SeaweedFS(Path(tmp), weed_binary())  # type: ignore[arg-type]
        try:
            fs.start()
            for label, ttl in (("driver default (60 s)", None), (f"project ({project_ttl} s)", int(project_ttl))):
                pv = project_pv(cacheMetaTtlSec=ttl, path=f"/buckets/bench-{ttl or 'default'}")
                a, b = two_nodes(fs, pv, f"ttl{ttl or 0}")
                try:
                    print(f"\nTTL {label}")
                    for name, size in SIZES.items():
                        saves: list[float] = []
                        seen: list[float] = []
                        path = f"s{size}.ipynb"
                        for i in range(args.saves):
                            if i:
                                b.server.metadata(path)  # B has the old version cached
                            nb = notebook(size, f"{size}-{i}")
                            start = time.monotonic()
                            a.server.put(path, nb)
                            saves.append(time.monotonic() - start)
                            digest = a.server.metadata(path)["hash"]
                            waited = wait_for(lambda d=digest, p=path, b=b: b.server.metadata(p)["hash"] == d, 120)
                            seen.append(waited if waited is not None else float("inf"))
                        print(f"  save {name:>6}:        {fmt(saves)}")
                        print(f"  visible on B {name:>6}: {fmt(seen)}")
                finally:
                    a.close()
                    b.close()
            writer = fs.mount("lister-w", project_pv(path="/buckets/bench-list"))
            (writer.path / "many").mkdir(exist_ok=True)
            for i in range(1000):
                (writer.path / "many" / f"f{i}.ipynb").write_text("{}")
            print("\nlist + stat 1,000 files after 1.3 s idle")
            for ttl in (1, 60):
                m = fs.mount(f"lister-{ttl}", project_pv(path="/buckets/bench-list", cacheMetaTtlSec=ttl))
                d = m.path / "many"
                wait_for(lambda d=d: len(os.listdir(d)) == 1000, 60)
                xs = []
                for _ in range(10):
                    time.sleep(1.3)
                    start = time.monotonic()
                    for n in os.listdir(d):
                        os.stat(d / n)
                    xs.append(time.monotonic() - start)
                print(f"  TTL {ttl:>2} s: {fmt(xs)}")
        finally:
            fs.close()


if __name__ == "__main__":
    main()
