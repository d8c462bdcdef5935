"""The ``verifyStorage`` Jobs' own scripts, run against two real mounts as they run on two nodes.

Each Job's container command is taken from the objects the program creates (``verification_jobs``) and run
with ``/bin/sh`` and the container's environment; the only change is where the claim is mounted (the Job's
``mountPath`` becomes the node's mount) and where the termination message goes.
"""

from __future__ import annotations

import copy
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.core.config_load import parse_config
from components.core.storage_spec import verification_jobs
from tests.conftest import BASE_CONFIG
from tests.storage.conftest import project_pv
from tests.storage.seaweed import Mount, SeaweedFS


@pytest.fixture(scope="module")
def mounts(seaweed: SeaweedFS) -> Iterator[dict[str, Mount]]:
    pv = project_pv(path="/buckets/verify-check")
    ms = {name: seaweed.mount(name, pv) for name in ("gpu-node-1", "cpu-node-2")}
    yield ms
    for m in ms.values():
        m.stop()


def jobs(nodes: list[str], run_id: str, timeout: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    raw = copy.deepcopy(BASE_CONFIG)
    raw["storage"] = {"verifyTimeoutSeconds": timeout, "cacheMetaTtlSec": 5}
    return verification_jobs(parse_config(raw), nodes, run_id, "img@sha256:" + "0" * 64, [], None)


def run_job(job: dict[str, Any], mount: Mount, scratch: Path) -> tuple[int, str, str]:
    """Runs the Job's container command on the host with the claim at ``mount``; returns rc, output, message."""
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    (volume_mount,) = container["volumeMounts"]
    assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == "jupyterhub-notebooks"
    shell, flag, script = container["command"]
    assert (shell, flag) == ("/bin/sh", "-c")
    term = scratch / f"{job['metadata']['name']}.termination-log"
    script = script.replace(volume_mount["mountPath"], str(mount.path)).replace("/dev/termination-log", str(term))
    env = {"PATH": os.environ["PATH"], **{e["name"]: e["value"] for e in container["env"]}}
    proc = subprocess.run([shell, flag, script], env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr, term.read_text() if term.exists() else ""


def test_writers_then_readers_pass_on_two_nodes(mounts: dict[str, Mount], tmp_path: Path) -> None:
    names = sorted(mounts)
    writers, readers = jobs(names, f"ok{int(time.time())}", timeout=30)
    for job in writers:
        rc, out, _ = run_job(job, mounts[job["metadata"]["annotations"]["gpu-jupyterhub/node"]], tmp_path)
        assert rc == 0, out
    for job in readers:
        node = job["metadata"]["annotations"]["gpu-jupyterhub/node"]
        rc, out, _ = run_job(job, mounts[node], tmp_path)
        assert rc == 0 and f"{node} sees all markers" in out, out
    # the markers were written through the other node's mount: each node saw the other's file
    run = writers[0]["metadata"]["name"].rsplit("-", 1)[1]
    for m in mounts.values():
        assert sorted(os.listdir(m.path / ".storage-check" / run)) == names


def test_a_reader_fails_and_names_the_node_whose_file_it_cannot_see(mounts: dict[str, Mount], tmp_path: Path) -> None:
    """A node whose view lacks another node's marker (a stale cache, a different filer) fails the check."""
    names = sorted(mounts)
    writers, readers = jobs([*names, "gpu-node-3"], f"miss{int(time.time())}", timeout=10)
    for job in writers[:2]:  # gpu-node-3's writer never ran: nobody can see its marker
        rc, out, _ = run_job(job, mounts[job["metadata"]["annotations"]["gpu-jupyterhub/node"]], tmp_path)
        assert rc == 0, out
    rc, out, message = run_job(readers[0], mounts[names[0]], tmp_path)
    assert rc == 1
    assert message.strip() == f"node {names[0]} cannot see files written on: gpu-node-3 (after 10s)"
