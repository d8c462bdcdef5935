"""The spawn form's profile-list callable at 1,000 GPU nodes and 30,000 pods, fed from the watch cache.

Prints p50 and p95 in ms of the callable (cache read, availability, sizes), with the cluster steady and
with 20 pod events between form loads, the time to take in the initial lists, and the cache's memory.
Goal: p95 < 50 ms. Synthetic events (the shapes kubectl returns); prints figures, asserts nothing.

    python -m benchmarks.spawn_form_bench [--nodes 1000] [--pods 30000] [--loads 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.config import parse_config  # noqa: E402
from components.nodes import parse_nodes  # noqa: E402
from components.values import build_values  # noqa: E402
from tests.conftest import BASE_CONFIG, GIVEN_REFS  # noqa: E402
from tests.fixtures.nodefactory import many  # noqa: E402


def pod(i: int, node: str, rnd: random.Random) -> dict[str, Any]:
    gpus = {"nvidia.com/gpu": "1"} if rnd.random() < 0.1 else {}
    return {
        "metadata": {"uid": f"pod-{i}", "namespace": f"ns-{i % 50}", "name": f"pod-{i}"},
        "spec": {
            "nodeName": node,
            "containers": [{"resources": {"requests": {"cpu": "250m", "memory": "512Mi", **gpus}, "limits": gpus}}],
        },
        "status": {"phase": "Running"},
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30000)
    parser.add_argument("--loads", type=int, default=200)
    args = parser.parse_args()
    rnd = random.Random(7)
    doc = many(args.nodes)
    cfg = parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}})
    values = build_values(cfg, parse_nodes(doc), GIVEN_REFS)
    ns: dict[str, Any] = {"__name__": "live_profiles"}
    exec((ROOT / "components" / "live_profiles.py").read_text(), ns)
    names = [n["metadata"]["name"] for n in doc["items"]]

    tracemalloc.start()
    start = time.perf_counter()
    cache = ns["ClusterCache"]()
    for n in doc["items"]:
        cache.node_event("ADDED", n)
    for i in range(args.pods):
        cache.pod_event("ADDED", pod(i, rnd.choice(names), rnd))
    cache.synced = {"nodes": True, "pods": True}
    cache.task = "synthetic"
    took = time.perf_counter() - start
    memory, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    profile_list = ns["make_profile_list"](values["singleuser"]["profileList"], cache=cache)
    spawner = SimpleNamespace(user=SimpleNamespace(groups=[]), log=SimpleNamespace(info=print, warning=print))

    async def loads(churn: int) -> list[float]:
        times = []
        next_uid = args.pods
        for _ in range(args.loads):
            for _ in range(churn):
                cache.pod_event("ADDED", pod(next_uid, rnd.choice(names), rnd))
                cache.pod_event("DELETED", {"metadata": {"uid": f"pod-{rnd.randrange(next_uid)}"}})
                next_uid += 1
            t = time.perf_counter()
            await profile_list(spawner)
            times.append((time.perf_counter() - t) * 1000)
        return times

    steady = asyncio.run(loads(0))
    churn = asyncio.run(loads(10))
    print(f"{args.nodes} GPU nodes, {args.pods} pods, {args.loads} form loads each; goal p95 < 50 ms")
    print(f"initial lists into the cache: {took:.2f} s; cache memory {memory / 2**20:.1f} MiB")
    for label, times in (("steady", steady), ("20 pod events per load", churn)):
        print(
            f"{label:>24}: p50 {statistics.median(times):6.1f} ms  p95 {percentile(times, 0.95):6.1f} ms  "
            f"max {max(times):6.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
