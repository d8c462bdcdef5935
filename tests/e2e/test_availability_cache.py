"""The availability service (components/shipped/availability_service.py, its watch loop in live_profiles.ClusterCache)
against the simulated cluster's real API server, read over HTTP by the hub's poller (live_profiles.RemoteUsage)
as the hub reads it: the totals arrive, and a pod that takes a GPU shows up in (and leaves) them through watch
events; times are printed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.localhub import free_port
from tests.e2e.harness import cluster

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nodes"
LIVE_PROFILES = Path(__file__).resolve().parents[2] / "components" / "shipped" / "live_profiles.py"
SERVICE = LIVE_PROFILES.with_name("availability_service.py")
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


SCENARIO = r"""
import asyncio, json, logging, sys, time
from pathlib import Path

kubeconfig, context, live_profiles, pod_json, kubectl, url = sys.argv[1:7]
ns = {"__name__": "live_profiles"}
exec(compile(Path(live_profiles).read_text(), live_profiles, "exec"), ns)  # named: coverage counts it


def free(usage, node):
    return usage.get(node, {}).get("resources", {}).get("nvidia.com/gpu", [None, None])[0]



async def kubectl_run(*args, stdin=None):
    proc = await asyncio.create_subprocess_exec(
        kubectl, f"--kubeconfig={kubeconfig}", f"--context={context}", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode() if stdin else None)
    assert proc.returncode == 0, err.decode()


async def main():
    cache = ns["RemoteUsage"](url, every=0.1)
    started = time.perf_counter()
    cache.start(logging.getLogger("hub"))
    figures = {}

    async def until(check, what, timeout=60):
        t0 = time.perf_counter()
        while not check():
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"cache: {what} not seen in {timeout} s: {cache.usage()}")
            await asyncio.sleep(0.05)
        return time.perf_counter() - t0

    await until(lambda: all(cache.synced.values()), "sync")
    figures["sync_s"] = time.perf_counter() - started
    usage = cache.usage()
    figures["free_before"] = free(usage, "gpu-4090")
    figures["ws_off_ready"] = usage["gpu-ws-off"]["ready"]
    await kubectl_run("apply", "-f", "-", stdin=pod_json)
    figures["pod_seen_s"] = await until(lambda: free(cache.usage(), "gpu-4090") == 0, "the GPU pod")
    await kubectl_run("delete", "pod", "takes-a-gpu", "--wait=false")
    figures["delete_seen_s"] = await until(lambda: free(cache.usage(), "gpu-4090") == 1, "the pod's deletion")
    print(json.dumps(figures))


asyncio.run(main())
"""


def test_the_availability_service_follows_a_real_api_server(lab: str) -> None:
    """The service runs as in its pod (its own process, here with the cluster's kubeconfig instead of a
    service account); the hub's side runs in another process, so neither's client state stays in the suite."""
    port = free_port()
    service = subprocess.Popen(
        [
            sys.executable,
            str(SERVICE),
            f"--port={port}",
            "--address=127.0.0.1",
            f"--kubeconfig={cluster.kubeconfig_path()}",
            f"--context={cluster.context_of(NAME)}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        figures = _hub_side(port)
    finally:
        service.terminate()
        log = service.communicate(timeout=30)[0]
    assert "serving per-node totals" in log, log[-3000:]
    assert figures["free_before"] == 1 and figures["ws_off_ready"] is False
    assert figures["pod_seen_s"] < 30 and figures["delete_seen_s"] < 30
    print("availability service on the simulated cluster:", {k: v for k, v in figures.items()})


def _hub_side(port: int) -> dict[str, float]:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            SCENARIO,
            str(cluster.kubeconfig_path()),
            cluster.context_of(NAME),
            str(LIVE_PROFILES),
            json.dumps(GPU_POD),
            str(cluster.toolchain_bin() / "kubectl"),
            f"http://127.0.0.1:{port}/usage",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
