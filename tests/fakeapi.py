"""A minimal fake Kubernetes API for the REST tests: watches stay open and silent, pods are accepted, kept
(Pending, never running) and listed until deleted, across hub restarts (the server outlives a hub)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
