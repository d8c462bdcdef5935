"""Post-deploy verification: start a server per profile, probe it, prove storage is shared, measure targets.

Configuration, all from the environment (see ``Settings.from_env``):

* ``GPU_JUPYTERHUB_HUB_URL`` / ``GPU_JUPYTERHUB_HUB_TOKEN``: the hub's public URL and an API token of a
  *dedicated test user* (its servers are started and stopped). ``GPU_JUPYTERHUB_HUB_USER`` when the token
  belongs to a service (then it needs admin:servers and access:servers on that user).
* ``GPU_JUPYTERHUB_PROFILES``: comma-separated profile slugs, ``:gpu`` marking a GPU profile
  (``cpu,gpu:gpu``), or JSON; or ``GPU_JUPYTERHUB_PROFILES_FILE``: a JSON file. JSON is a list of
  ``{"slug": ..., "gpu": bool, "user_options": {...}, "image": "..."}`` or of KubeSpawner ``profile_list``
  entries, or the chart values that ``python -m components.cli.plan --stack-file Pulumi.<stack>.yaml --nodes
  <(kubectl get nodes -o json) --output json`` prints (its ``singleuser.profileList``). For profile_list
  entries, GPU is inferred from an ``nvidia.com/*`` limit or a ``gpus`` option, and each choice of an
  ``image`` option becomes its own server, so every image is started. ``user_options`` are merged over
  ``{"profile": slug}``, so option keys such as ``node`` (node selection) or ``gpus`` can be added.
* ``GPU_JUPYTERHUB_NAMED_SERVERS=1``: one named server per profile, all running together (stricter for
  storage: the file is read while the writer is still up); default: the default server, one at a time.
* ``GPU_JUPYTERHUB_NAMESPACE`` (default ``jupyterhub``), ``GPU_JUPYTERHUB_KUBE_CONTEXT``: for node names
  and image pull times from Kubernetes events, used only when ``kubectl`` can reach the cluster.
* ``GPU_JUPYTERHUB_TLS_VERIFY``: ``0`` to skip TLS verification, or a CA bundle path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubclient import HubClient, HubError, ServerClient

SAVE_TARGET_S = 2.0
POD_START_TARGET_S = 30.0
IMAGE_PULL_TARGET_S = 120.0
CROSS_READ_WAIT_S = 15.0  # how long a second server may take to see a file (metadata caches)

# Runs inside the user's kernel: what the container was given, printed as one JSON line.
PROBE_CODE = r"""
import json, os, socket, sys
facts = {
    "hostname": socket.gethostname(),
    "python": sys.version.split()[0],
    "image": os.environ.get("JUPYTER_IMAGE_SPEC") or os.environ.get("JUPYTER_IMAGE"),
    "node": os.environ.get("NODE_NAME") or os.environ.get("KUBERNETES_NODE_NAME"),
    "nvidia_visible_devices": os.environ.get("NVIDIA_VISIBLE_DEVICES"),
    "notebooks_dir": os.environ.get("GPU_JUPYTERHUB_NOTEBOOKS_DIR"),
    "scratch_dir": os.environ.get("GPU_JUPYTERHUB_SCRATCH_DIR"),
    "cwd": os.getcwd(),
}
try:
    import torch
    facts["torch"] = torch.__version__
    facts["cuda_available"] = torch.cuda.is_available()
    facts["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
except ImportError as exc:
    facts["torch"] = None
    facts["cuda_available"] = False
    facts["gpus"] = []
    facts["torch_error"] = str(exc)
print("VERIFY_PROBE " + json.dumps(facts))
"""


@dataclass
class Profile:
    """A profile to start: its slug, whether it must see a GPU, and the user_options to send."""

    slug: str
    gpu: bool = False
    user_options: dict[str, Any] = field(default_factory=dict)
    image: str | None = None  # expected image (substring of JUPYTER_IMAGE_SPEC), when known
    label: str = ""  # name in the report, server and file names: the slug, plus the image when it has several

    def __post_init__(self) -> None:
        self.label = self.label or self.slug

    def options(self) -> dict[str, Any]:
        return {"profile": self.slug, **self.user_options}


def _uses_gpu(entry: dict[str, Any]) -> bool:
    """A KubeSpawner profile asks for a GPU when it limits an nvidia.com resource or offers a GPU count."""
    override = entry.get("kubespawner_override") or {}
    limits = {**(override.get("extra_resource_limits") or {}), **(override.get("extra_resource_guarantees") or {})}
    asks = any(k.startswith("nvidia.com/") and v not in (None, "", "0", 0) for k, v in limits.items())
    return asks or "gpus" in (entry.get("profile_options") or {})


def _from_entry(entry: dict[str, Any]) -> list[Profile]:
    """One Profile per image the entry offers (its ``image`` option's choices), so every image is started."""
    slug = entry["slug"]
    gpu = bool(entry.get("gpu", _uses_gpu(entry)))
    options = dict(entry.get("user_options") or {})
    image = entry.get("image") or (entry.get("kubespawner_override") or {}).get("image")
    choices = ((entry.get("profile_options") or {}).get("image") or {}).get("choices") or {}
    if not choices or "image" in options:
        return [Profile(slug, gpu, options, image)]
    return [
        Profile(
            slug,
            gpu,
            {**options, "image": key},
            (choice.get("kubespawner_override") or {}).get("image"),
            label=f"{slug}-{key}",
        )
        for key, choice in choices.items()
    ]


def parse_profiles(text: str) -> list[Profile]:
    """Profiles from ``slug[:gpu],...``, a JSON list (our own entries or KubeSpawner profile_list entries),
    or chart values holding ``singleuser.profileList``."""
    text = text.strip()
    if not text:
        return []
    if not text.startswith(("[", "{")):
        profiles = []
        for item in filter(None, (i.strip() for i in text.split(","))):
            slug, _, kind = item.partition(":")
            profiles.append(Profile(slug=slug, gpu=kind == "gpu"))
        return profiles
    data = json.loads(text)
    if isinstance(data, dict):  # chart values, e.g. from `python -m components.cli.plan --output json`
        data = data["singleuser"]["profileList"]
    return [profile for entry in data for profile in _from_entry(entry)]


@dataclass
class Settings:
    """Where the hub is and what to check; ``None`` from ``from_env`` when no cluster is configured."""

    hub_url: str
    token: str
    profiles: list[Profile]
    user: str | None = None
    named_servers: bool = False
    namespace: str = "jupyterhub"
    kube_context: str | None = None
    verify: bool | str = True
    start_timeout: float = 600.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings | None:
        env = dict(os.environ if env is None else env)
        url, token = env.get("GPU_JUPYTERHUB_HUB_URL"), env.get("GPU_JUPYTERHUB_HUB_TOKEN")
        if not (url and token):
            return None
        text = env.get("GPU_JUPYTERHUB_PROFILES", "")
        if env.get("GPU_JUPYTERHUB_PROFILES_FILE"):
            text = Path(env["GPU_JUPYTERHUB_PROFILES_FILE"]).read_text()
        tls = env.get("GPU_JUPYTERHUB_TLS_VERIFY", "1")
        return cls(
            hub_url=url,
            token=token,
            profiles=parse_profiles(text),
            user=env.get("GPU_JUPYTERHUB_HUB_USER") or None,
            named_servers=env.get("GPU_JUPYTERHUB_NAMED_SERVERS", "0") == "1",
            namespace=env.get("GPU_JUPYTERHUB_NAMESPACE", "jupyterhub"),
            kube_context=env.get("GPU_JUPYTERHUB_KUBE_CONTEXT") or None,
            verify={"0": False, "1": True}.get(tls, tls),
        )


_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|µs|us|ns)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string as kubelet prints it (``1m2.5s``, ``850ms``)."""
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


_PULLED = re.compile(r'Successfully pulled image "([^"]+)" in ([0-9.hmsµun]+)')


def image_pulls_from_events(events: dict[str, Any]) -> dict[str, float]:
    """Longest pull time per image from a ``kubectl get events -o json`` list (kubelet "Pulled" events)."""
    pulls: dict[str, float] = {}
    for event in events.get("items", []):
        match = _PULLED.search(event.get("message", "")) if event.get("reason") == "Pulled" else None
        if match:
            image, seconds = match.group(1), parse_go_duration(match.group(2))
            pulls[image] = max(seconds, pulls.get(image, 0.0))
    return pulls


def user_image_pulls(pulls: dict[str, float], profiles: list[Profile]) -> dict[str, float]:
    """The pulls of the profiles' images when those are known (not the hub's own images), else all."""
    wanted = [p.image for p in profiles if p.image]
    if not wanted:
        return pulls
    return {image: s for image, s in pulls.items() if any(w in image or image in w for w in wanted)}


@dataclass
class Kube:
    """Read-only kubectl look-ups: which node a user's pod runs on, and image pull times from events."""

    namespace: str
    context: str | None = None

    def _kubectl(self, *args: str) -> dict[str, Any]:
        cmd = ["kubectl", "-n", self.namespace, "--request-timeout=20s", *args, "-o", "json"]
        if self.context:
            cmd[1:1] = ["--context", self.context]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
        return json.loads(done.stdout)

    @classmethod
    def connect(cls, namespace: str, context: str | None) -> Kube | None:
        """A Kube when kubectl exists and can list pods in the namespace, else None (figures then n/a)."""
        if not shutil.which("kubectl"):
            return None
        kube = cls(namespace, context)
        try:
            kube._kubectl("get", "pods", "--limit=1")
        except (subprocess.SubprocessError, OSError, json.JSONDecodeError):
            return None
        return kube

    def user_pod(self, user: str, server_name: str) -> dict[str, Any] | None:
        """The single-user pod KubeSpawner made for user/server (by its hub.jupyter.org annotations)."""
        pods = self._kubectl("get", "pods", "-l", "component=singleuser-server")["items"]
        for pod in pods:
            notes = pod["metadata"].get("annotations", {})
            if notes.get("hub.jupyter.org/username") == user and (
                notes.get("hub.jupyter.org/servername", "") == server_name
            ):
                return pod
        return None

    def image_pulls(self) -> dict[str, float]:
        return image_pulls_from_events(self._kubectl("get", "events"))


@dataclass
class ProfileResult:
    """What one profile's server showed."""

    profile: Profile
    server_name: str
    start_s: float | None = None
    save_s: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    node: str | None = None
    saved_path: str | None = None
    read_others: dict[str, float] = field(default_factory=dict)  # path -> seconds until visible & equal
    problems: list[str] = field(default_factory=list)


@dataclass
class Row:
    """One line of the figures table."""

    measure: str
    target: str
    measured: str
    ok: bool | None  # None: not measured (n/a)
    note: str = ""


def _status(ok: bool | None, expected: bool) -> str:
    if ok is None:
        return "n/a"
    return "OK" if ok else "flagged" if expected else "FAIL"


@dataclass
class Report:
    """All results; ``problems`` empty means the deployment passed."""

    results: list[ProfileResult]
    rows: list[Row]
    problems: list[str]

    def table(self, expected: frozenset[str] = frozenset()) -> str:
        """The rows as a table; a failed row whose measure is in ``expected`` (a test's known gap, such as no GPU
        on a CI machine) reads "flagged", so a passing run prints no FAIL."""
        header = ("measure", "target", "measured", "status", "note")
        lines = [header] + [
            (r.measure, r.target, r.measured, _status(r.ok, r.measure in expected), r.note) for r in self.rows
        ]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        text = [" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
        text.insert(1, "-+-".join("-" * w for w in widths))
        return "\n".join(text)


def _probe_notebook(nonce: str, slug: str) -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
            {
                "cell_type": "markdown",
                "id": "verify-note",
                "metadata": {},
                "source": f"Written by the post-deploy check, profile {slug}, run {nonce}. Safe to delete.",
            },
            # some bulk, like a notebook with a plot in it, so the save time means something
            {"cell_type": "raw", "id": "verify-bulk", "metadata": {}, "source": "x" * 200_000},
        ],
    }


class Verifier:
    """Runs the checks for each profile in turn and turns them into a report."""

    def __init__(self, hub: HubClient, settings: Settings, kube: Kube | None = None) -> None:
        self.hub = hub
        self.settings = settings
        self.kube = kube
        self.run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.folder = f"postdeploy-check/{self.run_id}"

    def user(self) -> str:
        if self.settings.user:
            return self.settings.user
        me = self.hub.whoami()
        if me.get("kind") != "user":
            raise HubError("the token belongs to a service: set GPU_JUPYTERHUB_HUB_USER to the test user")
        return me["name"]

    def run(self) -> Report:
        user = self.user()
        if not self.settings.profiles:
            raise HubError("no profiles given: set GPU_JUPYTERHUB_PROFILES or GPU_JUPYTERHUB_PROFILES_FILE")
        results: list[ProfileResult] = []
        running: list[tuple[ProfileResult, ServerClient]] = []
        try:
            for profile in self.settings.profiles:
                name = f"verify-{profile.label}" if self.settings.named_servers else ""
                if not self.settings.named_servers:  # one default server at a time; files stay behind
                    for earlier, _ in running:
                        self.hub.stop(user, earlier.server_name)
                    running.clear()
                result = ProfileResult(profile, name)
                results.append(result)
                server = self._start(user, result)
                if server is None:
                    continue
                running.append((result, server))
                self._check(user, result, server, [r for r in results if r.saved_path])
        finally:
            if running:
                self._cleanup(running[-1][1])
            for result, _ in running:
                self.hub.stop(user, result.server_name, remove=True)
        pulls = user_image_pulls(self.kube.image_pulls(), self.settings.profiles) if self.kube else None
        return self._report(results, pulls)

    def _start(self, user: str, result: ProfileResult) -> ServerClient | None:
        if self.hub.server(user, result.server_name):
            if not result.server_name:
                result.problems.append(
                    f"{user}'s default server is already running: stop it (or use a dedicated test user)"
                )
                return None
            self.hub.stop(user, result.server_name, remove=True)
        start = time.monotonic()
        try:
            self.hub.start(user, result.server_name, result.profile.options())
            model = self.hub.wait_ready(user, result.server_name, self.settings.start_timeout)
        except HubError as exc:
            result.problems.append(f"did not start: {exc}")
            return None
        result.start_s = time.monotonic() - start
        return self.hub.server_client(model)

    def _check(self, user: str, result: ProfileResult, server: ServerClient, earlier: list[ProfileResult]) -> None:
        profile = result.profile
        try:
            result.facts = server.execute(PROBE_CODE).json_line("VERIFY_PROBE")
        except HubError as exc:
            result.problems.append(f"could not run code in a kernel: {exc}")
            return
        facts = result.facts
        result.node = facts.get("node")
        if self.kube and not result.node:
            pod = self.kube.user_pod(user, result.server_name)
            result.node = pod["spec"].get("nodeName") if pod else None
        if profile.gpu and not facts.get("cuda_available"):
            result.problems.append(
                f"GPU profile but torch.cuda.is_available() is False (torch {facts.get('torch')}, "
                f"NVIDIA_VISIBLE_DEVICES={facts.get('nvidia_visible_devices')})"
            )
        if not profile.gpu and facts.get("cuda_available"):
            result.problems.append(f"CPU profile but a GPU is visible: {facts.get('gpus')}")
        if profile.image and profile.image not in (facts.get("image") or ""):
            result.problems.append(f"expected image {profile.image}, the server runs {facts.get('image')}")

        path = f"{self.folder}/{profile.label}.ipynb"
        notebook = _probe_notebook(self.run_id, profile.label)
        try:
            server.make_dirs(self.folder)
            result.save_s = server.save_notebook(path, notebook)
            result.saved_path = path
        except HubError as exc:
            result.problems.append(f"could not save a notebook: {exc}")
        for other in earlier:
            if other is result or not other.saved_path:
                continue
            expected = _probe_notebook(self.run_id, other.profile.label)["cells"][0]["source"]
            seconds = self._wait_readable(server, other.saved_path, expected)
            if seconds is None:
                result.problems.append(
                    f"{other.saved_path} (saved by profile {other.profile.label}) not readable here "
                    f"within {CROSS_READ_WAIT_S:.0f} s"
                )
            else:
                result.read_others[other.saved_path] = seconds

    def _wait_readable(self, server: ServerClient, path: str, expected: str) -> float | None:
        start = time.monotonic()
        while True:
            content = server.read_notebook(path)
            if content and content["cells"][0]["source"] == expected:
                return time.monotonic() - start
            if time.monotonic() - start > CROSS_READ_WAIT_S:
                return None
            time.sleep(0.5)

    def _cleanup(self, server: ServerClient) -> None:
        """Remove this run's probe files and folder (best effort: a failure here is not a finding)."""
        paths = [f"{self.folder}/{p.label}.ipynb" for p in self.settings.profiles] + [self.folder]
        for path in paths:
            with contextlib.suppress(HubError, OSError):
                server.delete(path)

    def _report(self, results: list[ProfileResult], pulls: dict[str, float] | None) -> Report:
        rows: list[Row] = []
        problems = [f"{r.profile.label}: {p}" for r in results for p in r.problems]
        for r in results:
            slug = r.profile.label
            image = r.facts.get("image") or "image n/a"
            if r.start_s is not None:
                rows.append(
                    Row(
                        f"pod start [{slug}]",
                        f"< {POD_START_TARGET_S:.0f} s",
                        f"{r.start_s:.1f} s",
                        r.start_s < POD_START_TARGET_S,
                        image,
                    )
                )
            if r.facts:
                gpus = ", ".join(r.facts.get("gpus") or []) or "none"
                rows.append(
                    Row(
                        f"GPU visible [{slug}]",
                        "yes" if r.profile.gpu else "no",
                        "yes" if r.facts.get("cuda_available") else "no",
                        bool(r.facts.get("cuda_available")) == r.profile.gpu,
                        f"torch {r.facts.get('torch')}; {gpus}",
                    )
                )
            if r.save_s is not None:
                rows.append(
                    Row(
                        f"notebook save [{slug}]",
                        f"< {SAVE_TARGET_S:.0f} s",
                        f"{r.save_s:.2f} s",
                        r.save_s < SAVE_TARGET_S,
                        f"node {r.node or 'n/a'}",
                    )
                )
        nodes = {r.node for r in results if r.saved_path}
        readers = [r for r in results if r.read_others]
        if len(results) > 1:
            if readers:
                worst = max(s for r in readers for s in r.read_others.values())
                cross = len(nodes) > 1 and None not in nodes
                note = f"nodes: {', '.join(sorted(str(n) for n in nodes))}"
                if not cross:
                    note += "; all on one node or node unknown: cross-node not proven"
                rows.append(
                    Row(
                        "notebook readable from another server",
                        "yes",
                        f"yes, after {worst:.1f} s",
                        True if cross else None,
                        note,
                    )
                )
            else:
                rows.append(Row("notebook readable from another server", "yes", "no", False, "see problems"))
        if pulls is None:
            rows.append(Row("image pull", f"< {IMAGE_PULL_TARGET_S:.0f} s", "n/a", None, "no kube context"))
        elif not pulls:
            rows.append(Row("image pull", f"< {IMAGE_PULL_TARGET_S:.0f} s", "n/a", None, "no Pulled events kept"))
        else:
            for image, seconds in sorted(pulls.items()):
                rows.append(
                    Row(
                        "image pull",
                        f"< {IMAGE_PULL_TARGET_S:.0f} s",
                        f"{seconds:.1f} s",
                        seconds < IMAGE_PULL_TARGET_S,
                        image,
                    )
                )
        problems += [
            f"{row.measure}: {row.measured} (target {row.target})"
            for row in rows
            if row.ok is False and "GPU visible" not in row.measure and "readable" not in row.measure
        ]
        return Report(results, rows, problems)
