"""The storage premise on a real SeaweedFS: a notebook saved on one node is there, intact and current, on another.

Two ``weed mount``s of the project's PV stand in for two nodes, each with a real Jupyter server driven through
the contents REST API as JupyterLab drives it. Figures (save time, visibility) come from
``python -m benchmarks.storage_bench``; these tests check behaviour, with bounds only where the behaviour is
itself a time (a change must be visible on the other node within the metadata TTL).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from components.core.csi_mount import weed_mount_args
from components.core.storage_spec import LOCAL_STATE_DIR, NOTEBOOKS_DIR, server_config
from tests.storage.conftest import Node, project_pv, two_nodes
from tests.storage.jupyter import Conflict, notebook, wait_for
from tests.storage.seaweed import SeaweedFS

PROJECT_TTL = project_pv()["spec"]["csi"]["volumeAttributes"]["cacheMetaTtlSec"]


def source(nb: dict[str, Any], cell: int) -> str:
    text = nb["cells"][cell]["source"]
    return text if isinstance(text, str) else "".join(text)


def tag_of(nb: dict[str, Any]) -> str:
    return source(nb, 0).removeprefix("# ")


@pytest.fixture(scope="module")
def nodes(seaweed: SeaweedFS) -> Iterator[tuple[Node, Node]]:
    """Node A and node B mounting the PV exactly as the program creates it."""
    a, b = two_nodes(seaweed, project_pv(), "node")
    yield a, b
    a.close()
    b.close()


def test_mounts_run_with_the_arguments_the_driver_builds_from_the_project_pv(
    seaweed: SeaweedFS, nodes: tuple[Node, Node]
) -> None:
    for node in nodes:
        m = node.mount
        assert m.proc is not None and os.path.ismount(m.path)
        cmdline = Path(f"/proc/{m.proc.pid}/cmdline").read_bytes().decode().split("\0")[1:-1]
        expected = weed_mount_args(
            project_pv(), str(m.path), seaweed.node_plugin(),
            cache_dir=m.plan.option("cacheDir"), socket=m.plan.option("localSocket"),
        )  # fmt: skip
        assert cmdline == expected.args
        assert expected.option("filer.path") == "/buckets/jupyterhub"
        assert expected.option("collection") == "jupyterhub"
        assert expected.option("cacheMetaTtlSec") == PROJECT_TTL


@pytest.mark.parametrize("size", [10_000, 1_000_000, 20_000_000], ids=["10KB", "1MB", "20MB"])
def test_a_save_on_one_node_is_read_identically_on_the_other(nodes: tuple[Node, Node], size: int) -> None:
    a, b = nodes
    path = f"size-{size}.ipynb"
    for i in range(3):
        nb = notebook(size, f"{size}-{i}")
        a.server.put(path, nb)
        saved = a.server.read(path)  # as the server normalised and wrote it; hash: sha256 of the file
        assert tag_of(saved["content"]) == f"{size}-{i}" and source(saved["content"], 1) == source(nb, 1)
        waited = wait_for(lambda h=saved["hash"]: b.server.read(path)["hash"] == h, float(PROJECT_TTL) + 5)
        assert waited is not None, f"{path} version {i} saved on A was not served by B within the TTL"
        raw = (b.home / path).read_text()
        assert len(raw) >= size * 0.9
        nbformat.validate(nbformat.reads(raw, 4))


@pytest.mark.parametrize(
    ("label", "ttl"),
    [("driver-default", None), ("project", int(PROJECT_TTL))],
)
def test_cross_node_visibility_within_the_metadata_ttl(seaweed: SeaweedFS, label: str, ttl: int | None) -> None:
    """With the driver's default TTL (60 s) and the project's, B serves A's save well within the TTL.

    B reads the notebook (and lists its directory) before every save on A, so B's mount has it cached: only
    an invalidation from the filer, or the TTL running out, can make B serve the new version.
    """
    pv = project_pv(cacheMetaTtlSec=ttl, path=f"/buckets/ttl-{label}")
    effective = weed_mount_args(pv, "/m", seaweed.node_plugin()).option("cacheMetaTtlSec")
    assert effective == ("60" if ttl is None else str(ttl))
    a, b = two_nodes(seaweed, pv, f"vis-{label}")
    try:
        a.server.put("v.ipynb", notebook(10_000, "v0"))
        assert wait_for(lambda: tag_of(b.server.read("v.ipynb")["content"]) == "v0", 30) is not None
        for i in range(1, 6):
            os.listdir(b.home)
            b.server.read("v.ipynb")
            a.server.put("v.ipynb", notebook(10_000, f"v{i}"))
            waited = wait_for(lambda i=i: tag_of(b.server.read("v.ipynb")["content"]) == f"v{i}", 30)
            assert waited is not None and waited < int(effective or 60), (label, i, waited)
    finally:
        a.close()
        b.close()


def test_two_named_servers_on_two_nodes_learn_of_each_others_saves(nodes: tuple[Node, Node]) -> None:
    """One user's two named servers share the user's directory. A second writer is told the file changed
    (JupyterLab's "File Changed" dialog) instead of silently overwriting the first save, even at once."""
    a, b = nodes
    path = "shared.ipynb"
    a.server.put(path, notebook(50_000, "start"))
    assert wait_for(lambda: tag_of(b.server.read(path)["content"]) == "start", 30) is not None
    for delay in (0.0, 0.3, 2.0):
        time.sleep(1.0)  # beyond JupyterLab's 0.5 s margin between the open and the first save
        doc_a, doc_b = a.server.open(path), b.server.open(path)
        a.server.save(doc_a, notebook(50_000, f"from-a-{delay}"))
        time.sleep(delay)
        with pytest.raises(Conflict):
            b.server.save(doc_b, notebook(50_000, f"from-b-{delay}"))
        assert tag_of(b.server.read(path)["content"]) == f"from-a-{delay}"
        # B reloads (JupyterLab's "Revert"), edits and saves: now it wins, and A is told in turn.
        doc_b = b.server.open(path)
        time.sleep(0.6)
        b.server.save(doc_b, notebook(50_000, f"from-b-{delay}"))
        with pytest.raises(Conflict):
            a.server.save(doc_a, notebook(50_000, "stale-a"))


@pytest.mark.parametrize("server", ["filer", "volume"])
def test_a_crash_during_a_burst_of_saves_loses_no_acknowledged_save(
    seaweed: SeaweedFS, nodes: tuple[Node, Node], server: str
) -> None:
    """SIGKILL the filer (or the volume server) while four notebooks are saved in a loop; restart it 6 s later.

    Every file is valid nbformat afterwards, on both nodes; its content is the last save the client was told
    succeeded, or a later attempt, never older, truncated or empty; no save started during the outage is
    reported successful before the server is back.
    """
    a, b = nodes
    files = [f"burst-{server}-{i}.ipynb" for i in range(4)]
    for f in files:
        a.server.put(f, notebook(200_000, f"{f}:0"))
    results: list[tuple[str, int, bool, float, float]] = []
    stop = threading.Event()

    def burst(f: str) -> None:
        v = 0
        while not stop.is_set():
            v += 1
            start = time.monotonic()
            try:
                a.server.put(f, notebook(200_000, f"{f}:{v}"), timeout=120)
                ok = True
            except Exception:
                ok = False
            results.append((f, v, ok, start, time.monotonic()))
            time.sleep(0.05)

    threads = [threading.Thread(target=burst, args=(f,)) for f in files]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        seaweed.servers[server].kill()
        killed = time.monotonic()
        time.sleep(6)
        restarted = time.monotonic()
        seaweed.servers[server].start()
        time.sleep(6)
    finally:
        stop.set()
        for t in threads:
            t.join(180)
    seaweed.wait_writable()

    # A save in flight when the server died blocks (JupyterLab shows "Saving…") and must not report success
    # until the server is back and the file is stored.
    early = [r for r in results if r[2] and killed + 1 < r[4] < restarted]
    assert early == [], f"saves reported successful while the {server} was down: {early}"
    in_outage = [r for r in results if r[3] < restarted and r[4] > killed + 1]
    assert in_outage, "no save was in flight during the outage"
    for f in files:
        acked = max(v for (g, v, ok, _, _) in results if g == f and ok)
        attempted = max(v for (g, v, _, _, _) in results if g == f)
        for node in (a, b):

            def current(node: Node = node, f: str = f) -> int:
                raw = (node.home / f).read_text()
                nbformat.validate(nbformat.reads(raw, 4))
                return int(tag_of(nbformat.reads(raw, 4)).rsplit(":", 1)[1])

            assert wait_for(lambda c=current, acked=acked: c() >= acked, 30) is not None, (node.mount.node, f)
            assert acked <= current() <= attempted


def test_sqlite_locks_do_not_reach_across_nodes(nodes: tuple[Node, Node]) -> None:
    """Why the SQLite files stay on local disk: a lock taken through one mount does not stop a writer on the
    other node, and the database then breaks; on one mount SQLite's locking holds."""
    a, b = nodes
    db = "sqlite-check.db"
    first = sqlite3.connect(a.home / db, timeout=0.5, isolation_level=None)
    first.execute("create table t(x)")
    first.execute("insert into t values (1)")
    assert wait_for(lambda: (b.home / db).stat().st_size > 0, 30) is not None
    same_node = sqlite3.connect(a.home / db, timeout=0.5, isolation_level=None)
    other_node = sqlite3.connect(b.home / db, timeout=0.5, isolation_level=None)
    first.execute("begin exclusive")
    first.execute("insert into t values (2)")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        same_node.execute("insert into t values (3)")
    # Locking on a network file system would refuse this writer too; through a second weed mount it goes on.
    other_node.execute("insert into t values (4)")
    broken: list[str] = []
    try:
        first.execute("commit")
    except sqlite3.OperationalError as exc:
        broken.append(f"commit on A: {exc}")
    for c in (first, same_node, other_node):
        c.close()
    time.sleep(2)  # both writers' pages have reached the filer
    for node in (a, b):
        try:
            check = sqlite3.connect(node.home / db, timeout=0.5)
            rows = sorted(x for (x,) in check.execute("select x from t"))
            if rows != [1, 2, 4]:
                broken.append(f"{node.mount.node} reads {rows}: a committed write is lost")
            check.close()
        except sqlite3.DatabaseError as exc:
            broken.append(f"{node.mount.node}: {exc}")
    assert broken, "two writers on two mounts both committed and the database kept both writes"
    print("SQLite with writers on two mounts:", "; ".join(broken))
    # The decision this backs: every SQLite file a server keeps is configured outside the notebooks volume.
    paths = [v["db_path"] for v in server_config().values()]
    assert paths and all(p.startswith(LOCAL_STATE_DIR) and not p.startswith(NOTEBOOKS_DIR) for p in paths)
