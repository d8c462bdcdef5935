"""The hub's configuration as the deployed hub builds it: the published z2jh chart rendered with our values,
and its own ``jupyterhub_config.py`` executed on the rendered ConfigMap and Secret.

The chart's hub reads ``/usr/local/etc/jupyterhub/{config,secret}/`` (mounted from the hub ConfigMap and
Secret) through its ``z2jh.py``. Here the rendered ConfigMap's and Secret's files are written to a temporary
directory and the chart's own ``z2jh.py`` reads them there (its mount prefix moved, nothing else). The
service-discovery variables Kubernetes would set are set for the names the ConfigMap declares, and the
hub's curl HTTP client (pycurl, absent here) is not configured. What comes back is the traitlets ``Config``
the hub process would run with, including every ``hub.extraConfig`` entry (our guards and the live profile
list), so a KubeSpawner made from it is configured by the chart, not by a hand-written mapping.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

_SHARED_CHART = Path(__file__).resolve().parents[1] / ".." / "shared" / "z2jh" / "chart" / "jupyterhub"
CHART_DIR = os.environ.get("GPU_JUPYTERHUB_CHART_DIR") or (str(_SHARED_CHART) if _SHARED_CHART.is_dir() else None)
MOUNT_PREFIX = "/usr/local/etc/jupyterhub/"


# libyaml's safe loader when PyYAML has it: the same data as yaml.safe_load, much faster on the hub Secret,
# which holds hub.extraConfig (under mutation testing that includes a 1.4 MB mutated live_profiles.py)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _fast_safe_load(stream: Any) -> Any:
    return yaml.load(stream, Loader=_LOADER)


class ChartUnavailable(Exception):
    pass


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object the chart renders for ``values`` (release jupyterhub, namespace jupyterhub)."""
    if not CHART_DIR:
        raise ChartUnavailable("set GPU_JUPYTERHUB_CHART_DIR to an unpacked z2jh 4.4.0 chart")
    try:
        import helm_python  # type: ignore[import-not-found]
    except ImportError as e:  # built for x86_64 Linux only
        raise ChartUnavailable(f"helm-python-sdk is not importable: {e}") from None
    global _HELM_PID
    if _HELM_PID is None:
        _HELM_PID = os.getpid()
    if os.getpid() == _HELM_PID:
        chart = helm_python.Chart.load(Path(CHART_DIR))
        rendered = chart.render(copy.deepcopy(values), name="jupyterhub", namespace="jupyterhub", is_install=True)
    else:
        rendered = _render_in_subprocess(values)
    texts = [t for p, t in rendered.items() if p.endswith((".yaml", ".yml"))]
    return [d for t in texts for d in yaml.load_all(t, Loader=_LOADER) if isinstance(d, dict)]


# helm-python-sdk renders with Helm's Go code in this process, and Go's runtime does not survive a fork: a
# process forked after the first render (mutmut forks one per mutant, scripts/mutation.sh) hangs in the next
# one. Such a process renders in a fresh interpreter instead (a quarter of a second).
_HELM_PID: int | None = None  # the process whose Go runtime rendered first
_RENDER_SCRIPT = """
import json, sys
from pathlib import Path
import helm_python
chart_dir, values = json.load(sys.stdin)
chart = helm_python.Chart.load(Path(chart_dir))
json.dump(chart.render(values, name="jupyterhub", namespace="jupyterhub", is_install=True), sys.stdout)
"""


def _render_in_subprocess(values: dict[str, Any]) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-c", _RENDER_SCRIPT],
        input=json.dumps([CHART_DIR, values]),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"chart render failed: {out.stderr.strip()[-2000:]}")
    rendered: dict[str, str] = json.loads(out.stdout)
    return rendered


@functools.lru_cache(maxsize=32)
def _hub_files(values_json: str) -> tuple[dict[str, str], dict[str, str]]:
    objects = render(json.loads(values_json))
    cm = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "hub")
    secret = next(o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == "hub")
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return dict(cm["data"]), data


_CONFIGS: dict[str, Any] = {}


def hub_config(values: dict[str, Any]) -> Any:
    """The traitlets Config the chart's jupyterhub_config.py builds from ``values`` (a fresh copy each call)."""
    key = json.dumps(values, sort_keys=True)
    if key not in _CONFIGS:
        _CONFIGS[key] = _run_hub_config(key)
    return copy.deepcopy(_CONFIGS[key])


def _run_hub_config(values_json: str) -> Any:
    from traitlets.config import Config

    config_files, secret_files = _hub_files(values_json)
    root = Path(tempfile.mkdtemp(prefix="z2jh-hub-"))
    for sub, files in (("config", config_files), ("secret", secret_files)):
        (root / sub).mkdir()
        for name, text in files.items():
            (root / sub / name).write_text(text)
    (root / "z2jh.py").write_text(config_files["z2jh.py"].replace(MOUNT_PREFIX, f"{root}/"))
    script = root / "jupyterhub_config.py"
    script.write_text(config_files["jupyterhub_config.py"])
    env = {"POD_NAMESPACE": "jupyterhub"}
    for name, value in config_files.items():
        if not name.endswith(".py") and "\n" not in value and value:
            key = value.upper().replace("-", "_")
            env |= {f"{key}_SERVICE_HOST": "127.0.0.1", f"{key}_SERVICE_PORT": "8081"}
    c = Config()
    sys.modules.pop("z2jh", None)  # the chart's helper caches the files it read: one import per config
    with (
        mock.patch.dict(os.environ, env),
        mock.patch("tornado.httpclient.AsyncHTTPClient.configure"),
        mock.patch("yaml.safe_load", _fast_safe_load),  # what the chart's z2jh.py reads its values with
        mock.patch.object(sys, "path", list(sys.path)),
    ):
        namespace: dict[str, Any] = {"get_config": lambda: c, "__file__": str(script), "__name__": "__main__"}
        exec(compile(script.read_text(), str(script), "exec"), namespace)
    sys.modules.pop("z2jh", None)
    return c


def configured_spawner_class(c: Any) -> Any:
    """The spawner class the configured hub uses (our guarded KubeSpawner, defined in extraConfig)."""
    cls = c.JupyterHub.spawner_class
    if isinstance(cls, str):
        module, _, name = cls.rpartition(".")
        cls = getattr(__import__(module, fromlist=[name]), name)
    return cls
