"""The GPU overview (components/shipped/gpu_overview.py, issue 26): who holds which GPU, from the availability
service's watch, DCGM's metrics in their real text format, what each viewer may see, escaping, and the page
through a real JupyterHub 5.5 that runs it as the deployed hub service (OAuth login through the hub)."""

from __future__ import annotations

import copy
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from components.core.config import ConfigError
from components.core.config_load import parse_config
from components.core.hub_services import GPU_OVERVIEW_PATH, GPU_OVERVIEW_SCOPES
from components.core.nodes import parse_nodes
from components.core.values import build_values
from tests import fakeapi
from tests.cluster.localhub import HUB_ON_LOOPBACK, chp_binary, free_port, running_hub
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS
from tests.hubcode import COMPONENTS, exec_hub_text

SOURCE = COMPONENTS / "shipped" / "gpu_overview.py"
OVERVIEW = exec_hub_text(SOURCE.read_text(), {"__name__": "gpu_overview"})
LIVE = exec_hub_text((COMPONENTS / "shipped" / "live_profiles.py").read_text(), {})

# What NVIDIA's dcgm-exporter serves (its default counters, Kubernetes pod mapping on): HELP/TYPE lines,
# labels with the GPU index, UUID, model, host and, for a GPU a pod holds, the pod.
DCGM_METRICS = """\
# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
DCGM_FI_DEV_SM_CLOCK{gpu="0",UUID="GPU-5fd4b4e1-8c0b-7d4f-0a2c-6f1b9e3a2d11",pci_bus_id="00000000:3B:00.0",\
device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-a",DCGM_FI_DRIVER_VERSION="580.159.04"} 1980
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-5fd4b4e1-8c0b-7d4f-0a2c-6f1b9e3a2d11",pci_bus_id="00000000:3B:00.0",\
device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-a",DCGM_FI_DRIVER_VERSION="580.159.04",\
container="notebook",namespace="jupyterhub",pod="jupyter-alice--train"} 87
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-0b9e",pci_bus_id="00000000:5E:00.0",device="nvidia1",\
modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-a",DCGM_FI_DRIVER_VERSION="580.159.04"} 0
# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-5fd4b4e1-8c0b-7d4f-0a2c-6f1b9e3a2d11",pci_bus_id="00000000:3B:00.0",\
device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-a",DCGM_FI_DRIVER_VERSION="580.159.04",\
container="notebook",namespace="jupyterhub",pod="jupyter-alice--train"} 16384
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-5fd4b4e1-8c0b-7d4f-0a2c-6f1b9e3a2d11",pci_bus_id="00000000:3B:00.0",\
device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-a",DCGM_FI_DRIVER_VERSION="580.159.04",\
container="notebook",namespace="jupyterhub",pod="jupyter-alice--train"} 65536
DCGM_FI_DEV_FB_USED{gpu="1",UUID="GPU-0b9e",pci_bus_id="00000000:5E:00.0",device="nvidia1",\
modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-a",DCGM_FI_DRIVER_VERSION="580.159.04"} 0
not a metric line {
"""


def pod(ns: str, name: str, node: str, gpus: int, user: str | None = None, server: str = "") -> dict[str, Any]:
    annotations = {}
    if user:
        annotations["hub.jupyter.org/username"] = user
        if server:
            annotations["hub.jupyter.org/servername"] = server
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    return {
        "metadata": {"namespace": ns, "name": name, "uid": f"{ns}-{name}", "annotations": annotations},
        "spec": {"nodeName": node, "containers": [{"name": "notebook", "resources": {"limits": limits}}]},
        "status": {"phase": "Running", "startTime": "2026-12-05T01:00:00Z"},
    }


def test_the_watch_keeps_who_holds_gpus_and_nothing_else_of_other_pods() -> None:
    cache = LIVE["ClusterCache"]()
    alice = pod("jupyterhub", "jupyter-alice--train", "gpu-a", 1, "alice", "train")
    cache.pod_event("ADDED", alice)
    cache.pod_event("ADDED", pod("ml-batch", "trainer-7", "gpu-a", 2))
    cache.pod_event("ADDED", pod("jupyterhub", "jupyter-bob", "cpu-1", 0, "bob"))
    holders = cache.holder_list()
    assert holders == [
        {
            "node": "gpu-a",
            "namespace": "jupyterhub",
            "pod": "jupyter-alice--train",
            "user": "alice",
            "server": "train",
            "gpus": {"nvidia.com/gpu": 1},
            "since": "2026-12-05T01:00:00Z",
        },
        {
            "node": "gpu-a",
            "namespace": "ml-batch",
            "pod": "",
            "user": None,
            "server": "",
            "gpus": {"nvidia.com/gpu": 2},
            "since": "2026-12-05T01:00:00Z",
        },
    ]
    cache.pod_event("DELETED", alice)
    assert [h["namespace"] for h in cache.holder_list()] == ["ml-batch"]


def test_dcgm_metrics_in_their_text_format() -> None:
    gpus = OVERVIEW["parse_dcgm"](DCGM_METRICS)
    assert gpus == [
        {
            "node": "gpu-a",
            "gpu": "0",
            "model": "NVIDIA H100 80GB HBM3",
            "pod": "jupyter-alice--train",
            "namespace": "jupyterhub",
            "util": 87.0,
            "fb_free_mib": 16384.0,
            "fb_used_mib": 65536.0,
        },
        {
            "node": "gpu-a",
            "gpu": "1",
            "model": "NVIDIA H100 80GB HBM3",
            "pod": "",
            "namespace": "",
            "util": 0.0,
            "fb_used_mib": 0.0,
        },
    ]


USAGE = {
    "gpu-a": {"ready": True, "resources": {"nvidia.com/gpu": [0, 2]}},
    "cpu-1": {"ready": True, "resources": {}},
    "gpu-b": {"ready": False, "resources": {"nvidia.com/gpu": [1, 1]}},
}
HOLDERS = [
    {
        "node": "gpu-a",
        "namespace": "jupyterhub",
        "pod": "jupyter-alice--train",
        "user": "alice",
        "server": "train",
        "gpus": {"nvidia.com/gpu": 1},
        "since": "2026-12-05T01:00:00Z",
    },
    {
        "node": "gpu-a",
        "namespace": "jupyterhub",
        "pod": "jupyter-mallory",
        "user": "<img src=x onerror=alert(1)>",
        "server": "",
        "gpus": {"nvidia.com/gpu": 1},
        "since": "2026-12-05T02:00:00Z",
    },
]
USERS = {
    "alice": {"name": "alice", "admin": False, "servers": {"train": {"last_activity": "2026-12-05T03:00:00Z"}}},
    "root": {"name": "root", "admin": True, "servers": {}},
}


def test_users_see_their_own_servers_admins_all_and_everything_is_escaped() -> None:
    dcgm = OVERVIEW["parse_dcgm"](DCGM_METRICS)
    mine = OVERVIEW["overview"](USAGE, HOLDERS, USERS, dcgm, "alice", False)
    assert [n["name"] for n in mine] == ["gpu-a", "gpu-b"], "GPU nodes only"
    rows = mine[0]["holders"]
    assert rows[0] == {
        "who": "alice/train",
        "gpus": 1,
        "since": "2026-12-05T01:00:00Z",
        "last_activity": "2026-12-05T03:00:00Z",
        "util": 87.0,
    }
    assert rows[1] == {"who": "another user", "gpus": 1, "since": "", "last_activity": "", "util": None}
    everyone = OVERVIEW["overview"](USAGE, HOLDERS, USERS, dcgm, "root", True)
    assert [r["who"] for r in everyone[0]["holders"]] == ["alice/train", "<img src=x onerror=alert(1)>"]
    page = OVERVIEW["render"](everyone, "root", True, "2026-12-05 03:00:01 UTC")
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "0 of 2 nvidia.com/gpu free" in page and "gpu-b (not ready)" in page
    assert "65536 MiB of 81920 MiB" in page and "87 %" in page
    assert "another user" in OVERVIEW["render"](mine, "alice", False, "now")


def test_the_overview_is_a_hub_service_with_a_read_only_role() -> None:
    values = values_for()
    hub = values["hub"]
    service = hub["services"]["gpu-overview"]
    assert service["url"] == "http://hub:10101" and service["display"] is True
    assert "--source=http://gpu-availability.jupyterhub.svc:8181" in service["command"]
    assert hub["loadRoles"]["gpu-overview"]["scopes"] == list(GPU_OVERVIEW_SCOPES)
    assert not [s for s in GPU_OVERVIEW_SCOPES if s.startswith(("admin", "delete", "servers"))], "read-only"
    assert "access:services!service=gpu-overview" in hub["loadRoles"]["user"]["scopes"]
    assert hub["extraFiles"]["gpu-overview"]["stringData"] == SOURCE.read_text()
    assert hub["service"]["extraPorts"] == [{"name": "gpu-overview", "port": 10101, "targetPort": 10101}]
    assert "gpu-culler" in hub["services"], "the culler's service is still there"
    with_dcgm = values_for(dcgmExporterUrl="http://dcgm.gpu-operator.svc:9400/metrics")
    assert (
        "--dcgm-url=http://dcgm.gpu-operator.svc:9400/metrics"
        in with_dcgm["hub"]["services"]["gpu-overview"]["command"]
    )
    off = values_for(gpuOverview=False)
    assert "gpu-overview" not in off["hub"].get("services", {}) and off["hub"]["networkPolicy"]["ingress"] == []


@pytest.mark.parametrize("url", ["ftp://x/metrics", "http://dcgm:9400/metrics?x=<b>", "http://u:p@dcgm/metrics"])
def test_a_dcgm_url_that_is_not_a_plain_http_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=r"profiles\.dcgmExporterUrl"):
        parse_config({**BASE_CONFIG, "profiles": {"dcgmExporterUrl": url}})


def values_for(**profiles: Any) -> dict[str, Any]:
    raw = {**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}, "profiles": profiles}
    return build_values(parse_config(raw), parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)


# ---- through a real JupyterHub 5.5 ----


HUB_CONFIG = """
import json
""" + HUB_ON_LOOPBACK + """
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"root"}}
services = json.loads({services!r})
c.JupyterHub.services = [dict(s, name=name) for name, s in services.items()]
roles = json.loads({roles!r})
c.JupyterHub.load_roles = [dict(r, name=name) for name, r in roles.items()]
"""


def test_the_page_through_the_hub_shows_each_viewer_what_they_may_see(tmp_path: Path) -> None:
    """The deployed service entry and roles (command pointed at this checkout's file, port and source local):
    alice and root log in through the hub's form, open the service from the hub and get the page."""
    hub = copy.deepcopy(values_for()["hub"])
    service = hub["services"]["gpu-overview"]
    port, page_port = free_port(), free_port()
    with fakeapi.availability(USAGE, HOLDERS) as source:
        service["url"] = f"http://127.0.0.1:{page_port}"
        local = {"python3": sys.executable, GPU_OVERVIEW_PATH: str(SOURCE)}
        service["command"] = [
            local.get(a, a) for a in service["command"] if not a.startswith(("--port=", "--source="))
        ] + [f"--port={page_port}", "--address=127.0.0.1", f"--source={source}", "--every=0.5"]
        config = HUB_CONFIG.format(
            port=port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=chp_binary(),
            workdir=str(tmp_path),
            services=json.dumps({"gpu-overview": service}),
            roles=json.dumps({k: r for k, r in hub["loadRoles"].items() if k != "gpu-culler"}),
        )
        with running_hub(tmp_path, config, port):
            base = f"http://127.0.0.1:{port}"
            alice = browse(base, "alice")
            assert "alice/train" in alice and "another user" in alice and "onerror" not in alice, alice[-2000:]
            assert "0 of 2 nvidia.com/gpu free" in alice
            root = browse(base, "root")
            assert "&lt;img src=x onerror=alert(1)&gt;" in root and "<img" not in root, root[-2000:]
            assert "(admin: every server is shown)" in root


def browse(base: str, user: str) -> str:
    """Log in through the hub's form (dummy login) and open the overview, following the OAuth redirects."""
    session = requests.Session()
    session.get(f"{base}/hub/login", timeout=30)
    form = {"username": user, "password": secrets.token_hex(4), "_xsrf": session.cookies.get("_xsrf")}
    assert session.post(f"{base}/hub/login", data=form, allow_redirects=False, timeout=30).status_code == 302
    for _ in range(60):
        page = session.get(f"{base}/services/gpu-overview/", timeout=30)
        if page.status_code == 200 and "GPU overview" in page.text and "figures from never" not in page.text:
            return page.text
        time.sleep(0.5)
    pytest.fail(f"no overview page for {user}: {page.status_code} {page.text[-1000:]}")
