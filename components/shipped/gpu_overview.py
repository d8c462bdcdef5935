"""The GPU overview: a hub service page that shows every GPU node, who holds its GPUs, since when, and how busy.

JupyterHub runs it in the hub pod (``hub.services.gpu-overview``, listed in the hub's Services menu) and logs
users in to it through the hub (OAuth). It reads nothing per page load: every few seconds it polls the GPU
availability service (per-node totals and who holds GPUs, ``/usage`` and ``/holders``), the hub's REST API
(users, admin flags, their servers' start and last activity; a read-only role) and, when
``--dcgm-url`` names NVIDIA's DCGM exporter, its metrics (utilization and memory per GPU). Users see their
own servers; other users' servers show as "another user", other workloads by namespace to admins only.
Everything shown is escaped.

Self-contained on purpose (standard library, tornado and JupyterHub's service auth, all in the hub image).

    python3 gpu_overview.py --port 10101 --source http://gpu-availability.jupyterhub.svc:8181 [--dcgm-url URL]
"""

import argparse
import asyncio
import html
import json
import logging
import os
import re
import sys
import time

# Prometheus text format: name{label="value",...} number (DCGM exporter's /metrics)
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
_DCGM_FIELDS = {
    "DCGM_FI_DEV_GPU_UTIL": "util",
    "DCGM_FI_DEV_FB_USED": "fb_used_mib",
    "DCGM_FI_DEV_FB_FREE": "fb_free_mib",
}


def parse_dcgm(text):
    """GPU samples of a DCGM exporter's metrics, sorted: [{"node", "gpu", "model", "pod", "namespace", "util",
    "fb_used_mib", "fb_free_mib"}]; lines it does not know are skipped, never an error."""
    gpus = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line.strip())
        if not m or m.group(1) not in _DCGM_FIELDS:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(m.group(2) or "")}
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        key = (labels.get("Hostname", ""), labels.get("gpu", ""))
        entry = gpus.setdefault(
            key,
            {
                "node": key[0],
                "gpu": key[1],
                "model": labels.get("modelName", ""),
                "pod": labels.get("pod", ""),
                "namespace": labels.get("namespace", ""),
            },
        )
        entry[_DCGM_FIELDS[m.group(1)]] = value
    return [gpus[k] for k in sorted(gpus)]


def _who(holder, viewer, is_admin):
    """How a holder is shown to ``viewer``, and whether its details (server, times) may be."""
    user = holder.get("user")
    if user is None:
        return (f"other workload ({holder.get('namespace')})" if is_admin else "other workload"), False
    if is_admin or user == viewer:
        server = holder.get("server") or ""
        return (f"{user}/{server}" if server else user), True
    return "another user", False


def overview(usage, holders, users, dcgm, viewer, is_admin):
    """The page's data, sorted by node: GPU nodes only, each with its GPUs' free/total, who holds them
    (with start and last activity where the viewer may see them) and DCGM's per-GPU figures."""
    servers = {}
    for name, user in (users or {}).items():
        for server, info in (user.get("servers") or {}).items():
            servers[(name, server)] = info
    by_pod = {(g["namespace"], g["pod"]): g for g in dcgm if g.get("pod")}
    nodes = []
    for name in sorted(usage):
        info = usage[name]
        resources = {k: v for k, v in sorted((info.get("resources") or {}).items()) if v[1]}
        if not resources:
            continue
        rows = []
        for h in holders:
            if h.get("node") != name:
                continue
            who, details = _who(h, viewer, is_admin)
            server = servers.get((h.get("user"), h.get("server") or "")) or {}
            gpu = by_pod.get((h.get("namespace"), h.get("pod"))) if details else None
            rows.append(
                {
                    "who": who,
                    "gpus": sum(h.get("gpus", {}).values()),
                    "since": (h.get("since") or "") if details else "",
                    "last_activity": (server.get("last_activity") or "") if details else "",
                    "util": gpu.get("util") if gpu else None,
                }
            )
        nodes.append(
            {
                "name": name,
                "ready": bool(info.get("ready")),
                "resources": resources,
                "holders": rows,
                "gpus": [g for g in dcgm if g["node"] == name],
            }
        )
    return nodes


def _cell(value):
    return f"<td>{html.escape(str(value))}</td>"


def _percent(value):
    return "" if value is None else f"{value:.0f} %"


def render(nodes, viewer, is_admin, updated):
    """The page: one table per node, in the hub's own style sheet. Every value is escaped."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>GPU overview</title>",
        "<link rel='stylesheet' href='/hub/static/css/style.min.css'></head><body><div class='container'>",
        f"<h1>GPU overview</h1><p>Signed in as {html.escape(viewer)}"
        f"{' (admin: every server is shown)' if is_admin else ' (your servers are named)'}; "
        f"figures from {html.escape(updated)}.</p>",
    ]
    if not nodes:
        parts.append("<p>No GPU node is known yet.</p>")
    for node in nodes:
        free = ", ".join(f"{f} of {t} {r} free" for r, (f, t) in node["resources"].items())
        state = "" if node["ready"] else " (not ready)"
        parts.append(f"<h2>{html.escape(node['name'])}{state}</h2><p>{html.escape(free)}</p>")
        parts.append("<table class='table'><tr><th>held by</th><th>GPUs</th><th>since</th>")
        parts.append("<th>last activity</th><th>utilization</th></tr>")
        for row in node["holders"]:
            cells = (row["who"], row["gpus"], row["since"], row["last_activity"], _percent(row["util"]))
            parts.append("<tr>" + "".join(_cell(c) for c in cells) + "</tr>")
        if not node["holders"]:
            parts.append("<tr><td colspan='5'>nobody</td></tr>")
        parts.append("</table>")
        if node["gpus"]:
            parts.append("<table class='table'><tr><th>GPU</th><th>model</th><th>utilization</th>")
            parts.append("<th>memory used</th></tr>")
            for g in node["gpus"]:
                used, free_mib = g.get("fb_used_mib"), g.get("fb_free_mib")
                memory = (
                    ""
                    if used is None
                    else f"{used:.0f} MiB" + ("" if free_mib is None else f" of {used + free_mib:.0f} MiB")
                )
                cells = (g["gpu"], g["model"], _percent(g.get("util")), memory)
                parts.append("<tr>" + "".join(_cell(c) for c in cells) + "</tr>")
            parts.append("</table>")
    parts.append("</div></body></html>")
    return "".join(parts)


class Snapshot:
    """What the page shows, refreshed in the background (a page load reads it, never the cluster)."""

    def __init__(self):
        self.usage, self.holders, self.users, self.dcgm = {}, [], {}, []
        self.updated = "never"

    def admin(self, name):
        return bool((self.users.get(name) or {}).get("admin"))


async def _get_json(url, headers=None):
    from tornado.httpclient import AsyncHTTPClient

    response = await AsyncHTTPClient().fetch(url, headers=headers or {}, request_timeout=10)
    return json.loads(response.body)


async def _all_users(hub_api, token, page=200):
    """Every user (admins without servers too), page by page."""
    users, offset = [], 0
    while True:
        url = f"{hub_api}/users?offset={offset}&limit={page}"
        batch = await _get_json(url, {"Authorization": f"token {token}"})
        users += [u for u in batch if isinstance(u, dict) and "name" in u]
        if len(batch) < page:
            return users
        offset += page


async def refresh(snapshot, source, hub_api, token, dcgm_url, log):
    """One refresh of every source; a source that fails keeps its last figures and is logged."""
    from tornado.httpclient import AsyncHTTPClient

    steps = {
        "availability": lambda: _get_json(f"{source}/usage"),
        "holders": lambda: _get_json(f"{source}/holders"),
        "hub": lambda: _all_users(hub_api, token),
    }
    if dcgm_url:
        steps["dcgm"] = lambda: AsyncHTTPClient().fetch(dcgm_url, request_timeout=10)
    for name, step in steps.items():
        try:
            result = await step()
        except Exception as e:  # keep serving the last figures
            log.warning("GPU overview: %s did not answer (%r)", name, e)
            continue
        if name == "availability":
            snapshot.usage = result.get("nodes") or {}
        elif name == "holders":
            snapshot.holders = result.get("holders") or []
        elif name == "hub":
            snapshot.users = {u["name"]: u for u in result}
        else:
            snapshot.dcgm = parse_dcgm(result.body.decode("utf-8", "replace"))
    snapshot.updated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


def make_app(snapshot, prefix):
    """The tornado application: the page at ``prefix``, behind the hub's OAuth login."""
    from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
    from tornado import web

    class Page(HubOAuthenticated, web.RequestHandler):
        @web.authenticated
        def get(self):
            viewer = self.get_current_user()["name"]
            is_admin = snapshot.admin(viewer)
            data = overview(snapshot.usage, snapshot.holders, snapshot.users, snapshot.dcgm, viewer, is_admin)
            self.set_header("Cache-Control", "no-store")
            self.finish(render(data, viewer, is_admin, snapshot.updated))

    return web.Application(
        [(prefix, Page), (prefix + "oauth_callback", HubOAuthCallbackHandler)],
        cookie_secret=os.urandom(32),
    )


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=10101)
    parser.add_argument("--address", default="", help="address to listen on (all by default)")
    parser.add_argument("--source", required=True, help="the GPU availability service's URL")
    parser.add_argument("--dcgm-url", default="", help="a DCGM exporter's metrics URL (optional)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between refreshes")
    return parser.parse_args(argv)


async def serve(args, log):
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/gpu-overview/")
    hub_api = os.environ["JUPYTERHUB_API_URL"].rstrip("/")
    token = os.environ["JUPYTERHUB_API_TOKEN"]
    snapshot = Snapshot()
    make_app(snapshot, prefix).listen(args.port, address=args.address)
    log.info("GPU overview: serving %s on port %d", prefix, args.port)
    while True:
        await refresh(snapshot, args.source.rstrip("/"), hub_api, token, args.dcgm_url, log)
        await asyncio.sleep(args.every)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(args, logging.getLogger("gpu-overview")))


if __name__ == "__main__":
    main()
