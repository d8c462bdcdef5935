"""The availability cache's own watch loop against the simulated cluster's real API server: it syncs, and a
pod that takes a GPU shows up in (and leaves) the totals through watch events; times are printed."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import cluster

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nodes"
LIVE_PROFILES = Path(__file__).resolve().parents[2] / "components" / "live_profiles.py"
NAME = "cachelab"

GPU_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "takes-a-gpu", "namespace": "default"},
    "spec": {
        "nodeName": "gpu-4090",
        "tolerations": [{"operator": "Exists"}],
        "containers": [
            {"name": "c", "image": "none", "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"cpu": "1"}}}
        ],
    },
}


@pytest.fixture(scope="module")
def lab(toolchain: Path) -> Iterator[str]:
    try:
        yield cluster.up(NAME, [FIXTURES / "homelab.json"])
    finally:
        cluster.down(NAME)


def _free(usage: dict[str, Any], node: str) -> int:
    return usage.get(node, {}).get("resources", {}).get("nvidia.com/gpu", [None, None])[0]


def test_the_watch_cache_follows_a_real_api_server(lab: str) -> None:
    ns: dict[str, Any] = {"__name__": "live_profiles"}
    exec(LIVE_PROFILES.read_text(), ns)

    async def load() -> None:
        from kubernetes_asyncio import config

        await config.load_kube_config(config_file=str(cluster.kubeconfig_path()), context=cluster.context_of(NAME))

    async def scenario() -> dict[str, float]:
        cache = ns["ClusterCache"](load_config=load)
        started = time.perf_counter()
        cache.start(logging.getLogger("cache"))
        figures: dict[str, float] = {}

        async def until(check: Any, what: str, timeout: float = 60) -> float:
            t0 = time.perf_counter()
            while not check():
                if time.perf_counter() - t0 > timeout:
                    raise AssertionError(f"cache: {what} not seen in {timeout} s: {cache.usage()}")
                await asyncio.sleep(0.05)
            return time.perf_counter() - t0

        await until(lambda: all(cache.synced.values()), "sync")
        figures["sync_s"] = time.perf_counter() - started
        assert _free(cache.usage(), "gpu-4090") == 1 and cache.usage()["gpu-4090"]["ready"]
        assert not cache.usage()["gpu-ws-off"]["ready"]
        await asyncio.to_thread(cluster.kubectl, NAME, "apply", "-f", "-", stdin=json.dumps(GPU_POD))
        figures["pod_seen_s"] = await until(lambda: _free(cache.usage(), "gpu-4090") == 0, "the GPU pod")
        await asyncio.to_thread(cluster.kubectl, NAME, "delete", "pod", "takes-a-gpu", "--wait=false")
        figures["delete_seen_s"] = await until(lambda: _free(cache.usage(), "gpu-4090") == 1, "the pod's deletion")
        t = time.perf_counter()
        for _ in range(100):
            cache.usage()
        figures["usage_ms"] = (time.perf_counter() - t) * 10
        cache.task.cancel()
        return figures

    figures = asyncio.run(scenario())
    print("availability cache on the simulated cluster:", {k: round(v, 3) for k, v in figures.items()})
