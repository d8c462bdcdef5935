"""The spawn form's profile list at 1,000 GPU nodes / 30,000 pods and at 5,000 / 150,000, as deployed: the
availability service's watch cache (initial lists streamed in, event by event) hands per-node totals over HTTP,
the hub's poller takes them, and the hub's callable computes the list once per change of the totals.

Prints, per size: the time and memory to take in the initial lists; per change of the totals (20 pod events),
the service's encoding of /usage and the hub's parse plus recomputation of the list; per form load (what a user
waits for), the callable with nothing changed. Goals per form load: p95 < 10 ms at 1,000 / 30k and < 50 ms at
5,000 / 150k. Synthetic events (the shapes kubectl returns); prints figures, asserts nothing.

    python -m benchmarks.spawn_form_bench [--sizes 1000:30000,5000:150000] [--loads 200] [--changes 30]
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

from components.core.config_load import parse_config  # noqa: E402
from components.core.nodes import parse_nodes  # noqa: E402
from components.core.values import build_values  # noqa: E402
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


def stream_in(ns: dict[str, Any], doc: dict[str, Any], pods: int, rnd: random.Random) -> tuple[Any, float, float]:
    """The initial lists into the service's cache, one item at a time as a streamed list arrives."""
    names = [n["metadata"]["name"] for n in doc["items"]]
    tracemalloc.start()
    start = time.perf_counter()
    cache = ns["ClusterCache"]()
    for n in doc["items"]:
        cache.node_event("ADDED", n)
    for i in range(pods):
        cache.pod_event("ADDED", pod(i, rnd.choice(names), rnd))
    cache.synced = {"nodes": True, "pods": True}
    took = time.perf_counter() - start
    memory, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return cache, took, memory


def run_size(nodes: int, pods: int, loads: int, changes: int) -> None:
    rnd = random.Random(7)
    doc = many(nodes)
    cfg = parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}})
    values = build_values(cfg, parse_nodes(doc), GIVEN_REFS)
    ns: dict[str, Any] = {"__name__": "live_profiles"}
    exec((ROOT / "components" / "shipped" / "live_profiles.py").read_text(), ns)
    service: dict[str, Any] = {"__name__": "availability_service"}
    exec((ROOT / "components" / "shipped" / "availability_service.py").read_text(), service)
    names = [n["metadata"]["name"] for n in doc["items"]]
    cache, took, memory = stream_in(ns, doc, pods, rnd)
    body = service["UsageBody"](cache)
    encode_ms: list[float] = []

    async def get(url: str, etag: str | None) -> tuple[int, str, bytes]:
        t = time.perf_counter()
        generation, data = body.current()
        encode_ms.append((time.perf_counter() - t) * 1000)
        tag = f'"{generation}"'
        return (304, tag, b"") if tag == etag else (200, tag, data)

    remote = ns["RemoteUsage"]("http://gpu-availability/usage", get=get)
    remote.task = "polled by hand"
    profile_list = ns["make_profile_list"](values["singleuser"]["profileList"], cache=remote)
    spawner = SimpleNamespace(user=SimpleNamespace(groups=[]), log=SimpleNamespace(info=print, warning=print))
    log = SimpleNamespace(warning=print, info=print)

    async def measure() -> tuple[list[float], list[float]]:
        per_change, per_load = [], []
        next_uid = pods
        for _ in range(changes):
            for _ in range(10):
                cache.pod_event("ADDED", pod(next_uid, rnd.choice(names), rnd))
                cache.pod_event("DELETED", {"metadata": {"uid": f"pod-{rnd.randrange(next_uid)}"}})
                next_uid += 1
            t = time.perf_counter()
            await remote.poll_once(log)
            await profile_list(spawner)
            per_change.append((time.perf_counter() - t) * 1000)
            for _ in range(loads // changes):
                t = time.perf_counter()
                await remote.poll_once(log)  # a 304 (the poller runs beside the loads; counted here)
                await profile_list(spawner)
                per_load.append((time.perf_counter() - t) * 1000)
        return per_change, per_load

    per_change, per_load = asyncio.run(measure())
    print(f"{nodes} GPU nodes, {pods} pods")
    print(f"  initial lists streamed into the service's cache: {took:.2f} s; cache memory {memory / 2**20:.1f} MiB")
    print(f"  /usage body: {len(body.body) / 2**20:.1f} MiB, encoded once per change")
    rows = (
        ("per change (20 pod events): encode, poll, parse, recompute", per_change),
        ("per form load, totals unchanged", per_load),
    )
    for label, times in rows:
        print(
            f"  {label:>59}: p50 {statistics.median(times):7.2f} ms  p95 {percentile(times, 0.95):7.2f} ms  "
            f"max {max(times):7.2f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000:30000,5000:150000", help="nodes:pods pairs, comma-separated")
    parser.add_argument("--loads", type=int, default=200)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    print("goals per form load: p95 < 10 ms at 1,000 nodes / 30k pods, < 50 ms at 5,000 / 150k")
    for size in args.sizes.split(","):
        nodes, pods = (int(x) for x in size.split(":"))
        run_size(nodes, pods, args.loads, args.changes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
