"""A minimal fake Kubernetes API for the REST tests: watches stay open and silent, pods are accepted, kept
(Pending, never running) and listed until deleted, across hub restarts (the server outlives a hub)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "http://127.0.0.1:%d"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: jupyterhub}}]
current-context: none
"""


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _json(self, code, doc):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if "watch=true" in self.path.lower() or "watch=1" in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.flush()
            time.sleep(120)  # an open watch with nothing to say
            return
        pods = self.path.split("?")[0].endswith("/pods")
        kind, items = ("PodList", list(self.server.pods.values())) if pods else ("EventList", [])
        self._json(200, {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        doc = json.loads(self.rfile.read(length) or b"{}")
        doc.setdefault("metadata", {})["resourceVersion"] = "2"
        doc["metadata"]["uid"] = "uid-" + doc["metadata"].get("name", "x")
        if self.path.split("?")[0].endswith("/pods"):
            doc["metadata"]["namespace"] = self.path.split("/namespaces/", 1)[1].split("/", 1)[0]
            doc["status"] = {"phase": "Pending"}
            self.server.pods[doc["metadata"].get("name", "x")] = doc
        self._json(201, doc)

    def do_DELETE(self):
        name = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if "/pods/" in self.path:
            self.server.pods.pop(name, None)
        self._json(200, {"kind": "Status", "status": "Success"})


def start():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.pods = {}  # name: the pod as created
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def kubeconfig(server: ThreadingHTTPServer) -> str:
    """A kubeconfig for KubeSpawner that points at this fake API server."""
    return KUBECONFIG % server.server_address[1]


@contextlib.contextmanager
def availability(nodes: dict[str, Any], holders: list[dict[str, Any]] | None = None) -> Iterator[str]:
    """The availability service's /usage and /holders with fixed figures (generation 1, 304 once the caller has
    it); yields its base URL."""
    bodies = {"/usage": {"generation": 1, "nodes": nodes}, "/holders": {"generation": 1, "holders": holders or []}}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.headers.get("If-None-Match") == '"1"':
                self.send_response(304)
                self.end_headers()
                return
            data = json.dumps(bodies.get(self.path, bodies["/usage"])).encode()
            self.send_response(200)
            self.send_header("ETag", '"1"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
