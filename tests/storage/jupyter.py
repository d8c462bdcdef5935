"""A real Jupyter server per simulated node, and a contents client that saves as JupyterLab does.

The server runs with the images' server config (``components.core.storage_spec.server_config``: the file-ID and
collaboration SQLite databases on local disk) and its root directory on a ``weed mount``, as a user pod has
its notebooks directory on the CSI volume. The client follows JupyterLab 4's document context: it opens a
file (remembering ``last_modified`` and ``hash``), and before saving asks the server for the file's current
metadata; a newer time (beyond JupyterLab's 500 ms margin) or a different hash is a conflict, which
JupyterLab shows as "File Changed" instead of overwriting.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import requests

from components.core.storage_spec import LOCAL_STATE_DIR, server_config
from tests.storage.seaweed import free_port, stop_process, wait_http

MARGIN_S = 0.5  # JupyterLab's lastModifiedCheckMargin


def notebook(size: int, tag: str) -> dict[str, Any]:
    """A valid nbformat 4 notebook of about ``size`` bytes whose content names ``tag``."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {tag}"))
    chunk = max(0, size - 400)
    nb.cells.append(nbformat.v4.new_code_cell(f"tag = {tag!r}\n# " + "x" * chunk))
    return json.loads(nbformat.writes(nb))


class Conflict(Exception):
    """The file changed on disk since it was opened: JupyterLab would ask, not overwrite."""


@dataclass
class Document:
    """An open notebook in a browser tab: what the client last loaded or saved."""

    path: str
    last_modified: datetime
    hash: str | None


@dataclass
class JupyterServer:
    node: str
    root_dir: Path
    state_dir: Path
    log: Path
    port: int = field(default_factory=free_port)
    token: str = "storage-tier-token"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cfg_dir = self.state_dir / "config"
        cfg_dir.mkdir(exist_ok=True)
        # The images' config, with the pod's local state directory mapped into this server's own.
        text = json.dumps(server_config()).replace(LOCAL_STATE_DIR, str(self.state_dir))
        (cfg_dir / "jupyter_server_config.json").write_text(text)
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(cfg_dir),
            "JUPYTER_DATA_DIR": str(self.state_dir / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.state_dir / "runtime"),
            "IPYTHONDIR": str(self.state_dir / "ipython"),
        }
        args = [
            sys.executable, "-m", "jupyter_server", "--allow-root", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
        ]  # fmt: skip
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_http(f"{self.url}/api/status?token={self.token}", timeout, self.proc, self.log)

    def stop(self) -> None:
        stop_process(self.proc, 15)

    # --- the contents REST API, as JupyterLab uses it -------------------------------------------------------

    def _api(self, method: str, path: str, timeout: float = 60, **kw: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.url}/api/contents/{path}",
            headers={"Authorization": f"token {self.token}"},
            timeout=timeout,
            **kw,
        )

    def metadata(self, path: str) -> dict[str, Any]:
        r = self._api("GET", path, params={"content": 0, "hash": 1})
        r.raise_for_status()
        return r.json()

    def read(self, path: str) -> dict[str, Any]:
        r = self._api("GET", path, params={"content": 1, "hash": 1})
        r.raise_for_status()
        return r.json()

    def open(self, path: str) -> Document:
        m = self.read(path)
        return Document(path, _time(m["last_modified"]), m.get("hash"))

    def put(self, path: str, nb: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        """One save request; raises for any non-success status."""
        r = self._api("PUT", path, json={"type": "notebook", "format": "json", "content": nb}, timeout=timeout)
        r.raise_for_status()
        return r.json()

    def save(self, doc: Document, nb: dict[str, Any]) -> Document:
        """JupyterLab's save: check the file on disk first; raise Conflict instead of overwriting a newer one."""
        disk = self.metadata(doc.path)
        newer = (_time(disk["last_modified"]) - doc.last_modified).total_seconds() > MARGIN_S
        changed = doc.hash is not None and disk.get("hash") is not None and disk["hash"] != doc.hash
        if newer or changed:
            raise Conflict(f"{doc.path} changed on disk ({disk['last_modified']}, opened {doc.last_modified})")
        m = self.put(doc.path, nb)
        return Document(doc.path, _time(m["last_modified"]), m.get("hash") or self.metadata(doc.path).get("hash"))

    def mkdir(self, path: str) -> None:
        with contextlib.suppress(requests.HTTPError):
            self._api("PUT", path, json={"type": "directory"}).raise_for_status()


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def wait_for(predicate: Any, timeout: float, step: float = 0.02) -> float | None:
    """Seconds until ``predicate()`` is true, or None after ``timeout``."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if predicate():
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(step)
