"""A small client for a deployed JupyterHub: start and stop servers, save notebooks, run code in kernels.

It talks only to public HTTP APIs, so it works from outside the cluster with a user's API token:

* the hub's REST API (``/hub/api``) to start a server with ``user_options`` (``{"profile": slug, ...}``),
  wait until it is ready and stop it;
* the single-user server's contents API to save and read notebooks, timed as a user would feel a save;
* the single-user server's kernel API plus the kernel's websocket channel to run code *inside the user's
  container* (e.g. ``torch.cuda.is_available()``). This is the route JupyterLab itself uses, so it needs no
  extra service, no terminal, no exec rights on the cluster, and the messages are plain Jupyter protocol JSON,
  which keeps it robust across jupyter_server versions.

Used by ``postdeploy.py`` (the post-deploy verification) and tested for real against a local JupyterHub.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests
import websocket


class HubError(RuntimeError):
    """A hub or single-user server request failed, or a server did not reach the wanted state in time."""


def _check(response: requests.Response, what: str) -> requests.Response:
    if response.status_code >= 400:
        raise HubError(f"{what}: HTTP {response.status_code} {response.text[:500]}")
    return response


@dataclass
class HubClient:
    """The hub's REST API, authenticated with an API token (``Authorization: token ...``)."""

    url: str  # the hub's public URL, e.g. https://hub.example.org/ (with any base_url prefix)
    token: str
    verify: bool | str = True  # TLS verification: True, False, or a CA bundle path
    request_timeout: float = 30.0
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/") + "/"
        self.session.headers["Authorization"] = f"token {self.token}"
        self.session.verify = self.verify

    def _api(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.request_timeout)
        return _check(self.session.request(method, urljoin(self.url, "hub/api/" + path), **kwargs), what)

    def version(self) -> str:
        """The hub's version (the API root needs no token)."""
        return self._api("GET", "", "hub version").json()["version"]

    def whoami(self) -> dict[str, Any]:
        """The model of the token's owner (a user or a service)."""
        return self._api("GET", "user", "who am I").json()

    def _server_path(self, user: str, server_name: str) -> str:
        base = f"users/{quote(user, safe='')}"
        return f"{base}/servers/{quote(server_name, safe='')}" if server_name else f"{base}/server"

    def server(self, user: str, server_name: str = "") -> dict[str, Any] | None:
        """The server's model from the user model (None when it does not exist)."""
        model = self._api("GET", f"users/{quote(user, safe='')}", f"read user {user}").json()
        return (model.get("servers") or {}).get(server_name)

    def start(self, user: str, server_name: str = "", user_options: dict[str, Any] | None = None) -> None:
        """Ask the hub to spawn a server; returns once the hub accepted (201, 202). A spawn that fails fast
        (within the hub's slow_spawn_timeout) is an error response here, a slower one shows in wait_ready."""
        path = self._server_path(user, server_name)
        self._api("POST", path, f"spawn failed for {user}/{server_name}", json=user_options or {})

    def wait_ready(self, user: str, server_name: str = "", timeout: float = 300.0) -> dict[str, Any]:
        """Poll the user model until the server is ready; fail early when the spawn failed."""
        deadline = time.monotonic() + timeout
        while True:
            server = self.server(user, server_name)
            if server and server.get("ready"):
                return server
            if not (server and server.get("pending")):
                # after an accepted start a server is pending until ready; neither means the spawn failed
                raise HubError(
                    f"server {user}/{server_name} stopped before it was ready (spawn failed); "
                    "look at the hub's log and `kubectl get events`"
                )
            if time.monotonic() > deadline:
                raise HubError(f"server {user}/{server_name} not ready after {timeout:.0f} s (state: {server})")
            time.sleep(0.5)

    def stop(self, user: str, server_name: str = "", remove: bool = False, timeout: float = 120.0) -> None:
        """Stop a server and wait until the hub reports it gone (or stopped, when it is kept)."""
        if self.server(user, server_name) is None:
            return
        body = {"remove": True} if (remove and server_name) else None
        self._api("DELETE", self._server_path(user, server_name), f"stop {user}/{server_name}", json=body)
        deadline = time.monotonic() + timeout
        while True:
            server = self.server(user, server_name)
            if server is None or not (server.get("ready") or server.get("pending")):
                return
            if time.monotonic() > deadline:
                raise HubError(f"server {user}/{server_name} still running {timeout:.0f} s after stop")
            time.sleep(0.5)

    def server_client(self, server: dict[str, Any]) -> ServerClient:
        """A client for a ready server, from its model's ``url`` (a path below the hub's host)."""
        return ServerClient(urljoin(self.url, server["url"]), self.token, self.verify, self.request_timeout)


@dataclass
class ExecutionResult:
    """What a cell printed, and the error it raised if any."""

    output: str
    error: str | None

    def json_line(self, marker: str) -> dict[str, Any]:
        """Decode the ``<marker> {...}`` line the code printed."""
        for line in self.output.splitlines():
            if line.startswith(marker + " "):
                return json.loads(line[len(marker) + 1 :])
        raise HubError(f"no {marker} line in the output; error: {self.error}; output: {self.output[-1000:]}")


@dataclass
class ServerClient:
    """One single-user server (jupyter_server): contents and kernels, through the hub's proxy."""

    url: str  # e.g. https://hub.example.org/user/alice/ or .../user/alice/gpu/
    token: str
    verify: bool | str = True
    request_timeout: float = 30.0

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/") + "/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {self.token}"
        self.session.verify = self.verify

    def _api(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.request_timeout)
        return _check(self.session.request(method, urljoin(self.url, "api/" + path), **kwargs), what)

    def _contents(self, path: str) -> str:
        return "contents/" + quote(path.strip("/"))

    def make_dirs(self, path: str) -> None:
        """Create a directory (and its parents) through the contents API."""
        parts = [p for p in path.strip("/").split("/") if p]
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if self.session.get(urljoin(self.url, "api/" + self._contents(sub)), params={"content": 0}).ok:
                continue
            self._api("PUT", self._contents(sub), f"mkdir {sub}", json={"type": "directory"})

    def save_notebook(self, path: str, notebook: dict[str, Any]) -> float:
        """Save a notebook the way JupyterLab does (PUT to the contents API); returns the seconds it took."""
        start = time.perf_counter()
        body = {"type": "notebook", "format": "json", "content": notebook}
        self._api("PUT", self._contents(path), f"save {path}", json=body)
        return time.perf_counter() - start

    def read_notebook(self, path: str) -> dict[str, Any] | None:
        """The notebook's content, or None when the server does not see the file."""
        response = self.session.get(urljoin(self.url, "api/" + self._contents(path)), timeout=self.request_timeout)
        if response.status_code == 404:
            return None
        return _check(response, f"read {path}").json()["content"]

    def delete(self, path: str) -> None:
        """Delete a file or an empty directory; a missing one is fine."""
        response = self.session.delete(urljoin(self.url, "api/" + self._contents(path)), timeout=self.request_timeout)
        if response.status_code != 404:
            _check(response, f"delete {path}")

    def execute(self, code: str, timeout: float = 180.0, kernel_name: str | None = None) -> ExecutionResult:
        """Run code in a fresh kernel of this server over its websocket, then shut the kernel down."""
        kernel = self._api("POST", "kernels", "start kernel", json={"name": kernel_name} if kernel_name else {})
        kernel_id = kernel.json()["id"]
        try:
            return self._execute_in(kernel_id, code, timeout)
        finally:
            self.session.delete(urljoin(self.url, f"api/kernels/{kernel_id}"), timeout=self.request_timeout)

    def _ws_url(self, kernel_id: str) -> str:
        parts = urlsplit(urljoin(self.url, f"api/kernels/{kernel_id}/channels"))
        scheme = {"http": "ws", "https": "wss"}[parts.scheme]
        return urlunsplit((scheme, parts.netloc, parts.path, f"session_id={uuid.uuid4().hex}", ""))

    def _execute_in(self, kernel_id: str, code: str, timeout: float) -> ExecutionResult:
        sslopt = {}
        if self.verify is False:
            sslopt = {"cert_reqs": 0}
        elif isinstance(self.verify, str):
            sslopt = {"ca_certs": self.verify}
        ws = websocket.create_connection(
            self._ws_url(kernel_id),
            header=[f"Authorization: token {self.token}"],
            timeout=timeout,
            sslopt=sslopt,
        )
        try:
            msg_id = uuid.uuid4().hex
            ws.send(json.dumps(_execute_request(msg_id, code)))
            output: list[str] = []
            error: str | None = None
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                message = json.loads(ws.recv())
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream":
                    output.append(content["text"])
                elif kind in ("execute_result", "display_data"):
                    output.append(content["data"].get("text/plain", "") + "\n")
                elif kind == "error":
                    error = f"{content['ename']}: {content['evalue']}"
                elif kind == "status" and content["execution_state"] == "idle":
                    return ExecutionResult("".join(output), error)
            raise HubError(f"code did not finish within {timeout:.0f} s; output so far: {''.join(output)[-500:]}")
        finally:
            ws.close()


def _execute_request(msg_id: str, code: str) -> dict[str, Any]:
    """A Jupyter messaging protocol (v5) execute_request, in the JSON form the websocket accepts."""
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "postdeploy-check",
            "session": uuid.uuid4().hex,
            "date": datetime.datetime.now(datetime.UTC).isoformat(),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }
