"""GPU-idle culling: a hub-managed service that stops servers holding GPUs after a shorter idle time.

The chart's idle culler stops every server after ``culling.timeoutSeconds``. A server that holds an H100 and
does nothing costs the others more than an idle CPU server, so this service stops servers of the GPU
profiles after ``culling.gpuTimeoutSeconds`` of inactivity. It runs in the hub pod as a JupyterHub service
(``hub.services``) with its own role: list users, read their servers and activity, stop servers; nothing else.

Self-contained on purpose (standard library only): the file's text is what the hub pod runs.

    python3 gpu_culler.py --gpu-profile gpu --gpu-profile fine-tuning ... --timeout 1800 --every 300
"""

import argparse
import json
import os
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime


def parse_time(text):
    """JupyterHub's ISO 8601 timestamps ("2026-11-27T10:00:00.123456Z") as epoch seconds."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def server_profile(server):
    """The profile slug a server was started with ("" for none); ValueError when its stored options are not
    what the hub's guard lets in (an object whose "profile" is a string). JupyterHub keeps a start request's
    options as sent and hands them back, after a restart too, so they are read with care here."""
    options = server.get("user_options")
    if options is None:
        return ""
    if not isinstance(options, dict):
        raise ValueError(repr(options))
    profile = options.get("profile")
    if profile is None:
        return ""
    if not isinstance(profile, str):
        raise ValueError(f"profile {profile!r}")
    return profile


def idle_gpu_servers(users, gpu_profiles, timeout, now, log=print):
    """(user, server name, idle seconds) of ready or pending servers of a GPU profile idle longer than
    ``timeout``; a server's last activity, else its start time, counts. A server whose stored options or
    times cannot be read is logged and skipped: one such server must not stop the culling of the others."""
    out = []
    for user in users:
        for name, server in sorted((user.get("servers") or {}).items()):
            where = f"{user['name']}/{name or '(default)'}"
            try:
                profile = server_profile(server)
            except ValueError as e:
                log(f"skipped {where}: its stored user_options are not readable ({str(e)[:200]})")
                continue
            if profile not in gpu_profiles or server.get("stopped"):
                continue
            try:
                last = parse_time(server.get("last_activity")) or parse_time(server.get("started"))
            except (TypeError, ValueError):
                log(f"skipped {where}: its activity time is not readable ({server.get('last_activity')!r})")
                continue
            if last is None:
                continue
            idle = now - last
            if idle > timeout:
                out.append((user["name"], name, idle))
    return out


def _api(base, token, method, path, params=None):
    url = base.rstrip("/") + "/" + path.lstrip("/")
    if params:
        url += "?" + urllib.parse.urlencode(params)
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def list_users(base, token):
    """Every user with their servers (paginated, active servers only)."""
    users, offset = [], 0
    while True:
        page = _api(base, token, "GET", "users", {"state": "active", "offset": offset, "limit": 200})
        items = page["items"] if isinstance(page, dict) else page
        users.extend(items)
        if not isinstance(page, dict) or not page.get("_pagination", {}).get("next"):
            return users
        offset += len(items)


def cull_once(base, token, gpu_profiles, timeout, now=None, log=print):
    """One pass: stop every GPU server idle past ``timeout``; returns what was stopped."""
    now = time.time() if now is None else now
    stopped = []
    for user, name, idle in idle_gpu_servers(list_users(base, token), set(gpu_profiles), timeout, now, log):
        path = (
            f"users/{urllib.parse.quote(user)}/servers/{urllib.parse.quote(name)}"
            if name
            else (f"users/{urllib.parse.quote(user)}/server")
        )
        _api(base, token, "DELETE", path)
        log(f"stopped {user}/{name or '(default)'}: a GPU server idle for {int(idle)} s (limit {timeout} s)")
        stopped.append((user, name))
    return stopped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--gpu-profile", dest="gpu_profiles", action="append", required=True, help="a GPU profile (repeat)"
    )
    parser.add_argument("--timeout", type=int, required=True, help="idle seconds before a GPU server stops")
    parser.add_argument("--every", type=int, default=300, help="seconds between passes")
    args = parser.parse_args(argv)
    base = os.environ["JUPYTERHUB_API_URL"]
    token = os.environ["JUPYTERHUB_API_TOKEN"]
    profiles = [p for p in args.gpu_profiles if p]
    while True:
        try:
            cull_once(base, token, profiles, args.timeout)
        except Exception as e:  # a failed pass is logged, the next one tries again
            print(f"gpu culler: pass failed: {e!r}", file=sys.stderr)
        time.sleep(args.every)


if __name__ == "__main__":
    main()
