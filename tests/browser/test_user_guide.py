"""docs/user-guide.md's pictures are screenshots taken here, by Debian's Chromium, of a real JupyterHub 5.5
running the program's values: the deployed guards and live profile list, KubeSpawner 7.0.0 over a fake API
server (pods accepted, never running), availability from the real ClusterCache totals of the mixed cluster
with GPUs in use. The test logs in, checks that every profile and choice the plan promised is on the page and
that full nodes are left out and the others marked with their free GPUs, chooses a GPU node and starts; the
pod the hub asks for must be the one chosen. A second hub (local processes, the images' JupyterLab) gives the
JupyterLab picture. GPU_JUPYTERHUB_UPDATE_SCREENSHOTS=1 writes the pictures into docs/user-guide/."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from localhub import HUB_CONFIG, HUB_ON_LOOPBACK, chp_binary, free_port, running_hub

from components.core.availability_spec import service_url
from components.core.config_load import parse_config
from components.core.nodes import parse_nodes
from components.core.values import build_values
from components.shipped.live_profiles import apply_availability, gpu_usage
from tests import fakeapi
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "user-guide"
PICTURES = ("spawn-form.png", "spawn-gpu-class.png", "spawn-pending.png", "jupyterlab.png")
NODES = SCENARIOS["mixed"]["items"]
# another user's servers: both GPUs of gpu-node-3 and one of gpu-node-2
BUSY = [("gpu-node-3", 2), ("gpu-node-2", 1)]
CONFIG = """
import json
""" + HUB_ON_LOOPBACK + """
c.JupyterHub.cleanup_servers = False
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 1}}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.KubeSpawner.namespace = "jupyterhub"
c.KubeSpawner.image = {image!r}
c.KubeSpawner.profile_list = json.loads(open({profiles!r}).read())
c.KubeSpawner.k8s_api_request_timeout = 5
c.KubeSpawner.start_timeout = 600
exec(open({guards!r}).read())
exec(open({live!r}).read())
"""


def busy_pod(node: str, gpus: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"jupyter-bo-{node}", "namespace": "jupyterhub"},
        "spec": {"nodeName": node, "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]},
        "status": {"phase": "Running"},
    }


@pytest.fixture(scope="module")
def plan() -> dict[str, Any]:
    """The program's values for the mixed cluster and what the form must show with those GPUs in use."""
    cfg = parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}})
    values = build_values(cfg, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)
    usage = gpu_usage(NODES, [busy_pod(n, g) for n, g in BUSY])
    shown = apply_availability(values["singleuser"]["profileList"], usage, [], sorted(cfg.profiles.gpuGroups))
    return {"values": values, "usage": usage, "shown": shown, "namespace": cfg.namespace}


@pytest.fixture(scope="module")
def kube_hub(plan: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    workdir = tmp_path_factory.mktemp("guidehub")
    values = plan["values"]
    api = fakeapi.start()
    with fakeapi.availability(plan["usage"]) as base:
        source = f"{base}/usage"
        (workdir / "profiles.json").write_text(json.dumps(values["singleuser"]["profileList"]))
        (workdir / "guards.py").write_text(values["hub"]["extraConfig"]["05-guards"])
        live = values["hub"]["extraConfig"]["20-live-profiles"]
        assert repr(service_url(plan["namespace"])) in live
        (workdir / "live.py").write_text(live.replace(repr(service_url(plan["namespace"])), repr(source)))
        (workdir / "kubeconfig").write_text(fakeapi.kubeconfig(api))
        port = free_port()
        config = CONFIG.format(
            port=port, hub_port=free_port(), proxy_api_port=free_port(), chp=chp_binary(), workdir=str(workdir),
            image=values["singleuser"]["image"]["name"], profiles=str(workdir / "profiles.json"),
            guards=str(workdir / "guards.py"), live=str(workdir / "live.py"),
        )  # fmt: skip
        try:
            with running_hub(workdir, config, port, {"KUBECONFIG": str(workdir / "kubeconfig")}):
                yield f"http://127.0.0.1:{port}", api
        finally:
            api.shutdown()


def picture(driver: Any, name: str, viewport: bool = False, around: Any = None) -> None:
    """A screenshot of the page (its whole height), of what the window shows, or of the box around one
    element and everything in it; into docs/user-guide/ when updating."""
    assert name in PICTURES
    if around is not None:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, max(700, min(int(height) + 40, 3000)))  # all of it in the window
        box = driver.execute_script(
            "const r = [arguments[0], ...arguments[0].querySelectorAll('*')].map(e => e.getBoundingClientRect())"
            ".filter(b => b.width && b.height);"
            "const x = Math.min(...r.map(b => b.left)), y = Math.min(...r.map(b => b.top));"
            "return [x + window.scrollX, y + window.scrollY, Math.max(...r.map(b => b.right)) - x,"
            " Math.max(...r.map(b => b.bottom)) - y];",  # page coordinates, as the clip takes them
            around,
        )
        x, y, w, h = (float(v) for v in box)
        clip = {"x": max(0, x - 16), "y": max(0, y - 16), "width": w + 32, "height": h + 32, "scale": 1}
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "clip": clip})
        png = base64.b64decode(shot["data"])
        driver.set_window_size(1280, 1000)
    elif viewport:
        png = driver.get_screenshot_as_png()
    else:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, max(700, min(int(height) + 40, 3000)))
        png = driver.get_screenshot_as_png()
        driver.set_window_size(1280, 1000)
    assert png.startswith(b"\x89PNG") and len(png) > 5000, name
    if os.environ.get("GPU_JUPYTERHUB_UPDATE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / name).write_bytes(png)


def log_in(driver: Any, base: str, user: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/hub/login")
    driver.find_element(By.ID, "username_input").send_keys(user)
    driver.find_element(By.ID, "password_input").send_keys(secrets.token_hex(4))
    driver.find_element(By.ID, "login_submit").click()
    wait_for(lambda: "/hub/login" not in driver.current_url, "the login went through")


def wait_for(check: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}", pytrace=False)
        time.sleep(0.3)


def test_the_spawn_form_shows_what_the_plan_promised_and_starts_the_chosen_node(
    browser: Any, kube_hub: tuple[str, Any], plan: dict[str, Any]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, api = kube_hub
    driver = browser
    log_in(driver, base, "ann")

    def live_form() -> bool:  # the first load starts the hub's poll; later loads get the live list
        driver.get(f"{base}/hub/spawn")
        return "free now" in driver.page_source

    wait_for(live_form, "the form shows live availability")
    form = driver.find_element(By.ID, "spawn_form")
    text = form.text
    for profile in plan["shown"]:
        assert html.unescape(profile["display_name"]) in text, profile["display_name"]
        for key, option in (profile.get("profile_options") or {}).items():
            select = Select(form.find_element(By.NAME, f"profile-option-{profile['slug']}--{key}"))
            labels = [o.get_attribute("textContent").strip() for o in select.options]
            expected = [html.unescape(c["display_name"]) for c in option["choices"].values()]
            if (option.get("unlisted_choice") or {}).get("enabled"):  # KubeSpawner adds "..." to its label
                expected.append(html.unescape(option["unlisted_choice"]["display_name"]) + "...")
            assert labels == expected, key
    shown_slugs = [p["slug"] for p in plan["shown"]]
    deployed = [p["slug"] for p in plan["values"]["singleuser"]["profileList"]]
    assert shown_slugs == deployed, "every deployed profile is offered (no class is full)"
    radios = form.find_elements(By.CSS_SELECTOR, "input[name=profile]")
    assert [r.get_attribute("value") for r in radios] == deployed
    # the full node is no choice; the others say how many GPUs are free
    assert "gpu-node-3" not in text.split("Node")[-1] and "gpu-node-3" not in driver.page_source.split("spawn_form")[-1]
    assert re.search(r"gpu-node-2: 2 x NVIDIA GeForce RTX 4090, 24 GiB - 1/2 free", driver.page_source)
    assert re.search(r"gpu-node-1: 1 x NVIDIA GeForce RTX 3090, 24 GiB - 1/1 free", driver.page_source)
    picture(driver, "spawn-form.png")

    rtx4090 = next(p for p in plan["shown"] if "RTX 4090" in p["display_name"])
    radio = driver.find_element(By.CSS_SELECTOR, f"input[name=profile][value='{rtx4090['slug']}']")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", radio)
    assert radio.is_selected()
    node = Select(driver.find_element(By.NAME, f"profile-option-{rtx4090['slug']}--node"))
    choice = next(o for o in node.options if o.get_attribute("textContent").strip().startswith("gpu-node-2:"))
    node.select_by_value(choice.get_attribute("value"))
    label = driver.find_element(By.CSS_SELECTOR, f"label.profile[for='profile-item-{rtx4090['slug']}']")
    assert node.first_selected_option.get_attribute("textContent").strip().startswith("gpu-node-2:")
    picture(driver, "spawn-gpu-class.png", around=label)

    start = driver.find_element(By.CSS_SELECTOR, "#spawn_form input[type=submit], #spawn_form button[type=submit]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", start)
    wait_for(lambda: "spawn-pending" in driver.current_url, "the start page")
    wait_for(lambda: api.pods, "the hub asks for a pod")
    [pod] = api.pods.values()
    spec = pod["spec"]
    assert spec["nodeSelector"]["kubernetes.io/hostname"] == "gpu-node-2"
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["containers"][0]["image"] == GIVEN_REFS["jupyter-ml-gpu"]
    wait_for(lambda: "Server requested" in driver.page_source, "the progress page")
    time.sleep(2)  # the progress bar's first events
    driver.find_element(By.CSS_SELECTOR, "details summary").click()  # the event log, opened as a user would
    picture(driver, "spawn-pending.png", viewport=True)


def test_jupyterlab_opens_with_the_examples(browser: Any, tmp_path: Path) -> None:
    """The images' JupyterLab (4.6.6, as images/ lock it) behind a real hub, a user's folder with the examples."""
    from selenium.webdriver.common.by import By

    workdir = tmp_path / "labhub"
    workdir.mkdir()
    home = workdir / "homes" / "ann" / "notebooks"
    (home / "data").mkdir(parents=True)
    for notebook in ("data_pipeline.ipynb", "fine_tuning_quickstart.ipynb", "gpu_check.ipynb"):
        shutil.copy(ROOT / "notebooks" / notebook, home / notebook)
    port = free_port()
    config = HUB_CONFIG.format(
        port=port, hub_port=free_port(), proxy_api_port=free_port(), chp=chp_binary(), workdir=str(workdir),
        admin_token=secrets.token_hex(16), singleuser=str(Path(sys.executable).parent / "jupyterhub-singleuser"),
    )  # fmt: skip
    config += (
        '\nc.Spawner.default_url = "/lab/tree/data_pipeline.ipynb"\n'
        'c.Spawner.args = ["--ServerApp.allow_root=True",\n'
        '                  "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]\n'
    )
    with running_hub(workdir, config, port):
        log_in(browser, f"http://127.0.0.1:{port}", "ann")
        browser.get(f"http://127.0.0.1:{port}/hub/spawn")
        wait_for(lambda: "/user/ann/lab" in browser.current_url, "JupyterLab opens", 90)
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), "the notebook", 90)
        time.sleep(3)  # fonts and the file browser settle
        for no in browser.find_elements(By.XPATH, "//button[normalize-space()='No']"):  # the news prompt
            no.click()
        time.sleep(0.5)
        assert "Data pipeline: raw files to partitioned Parquet" in browser.page_source
        listing = browser.find_element(By.CSS_SELECTOR, ".jp-DirListing-content").text
        assert "fine_tuning_quickstart.ipynb" in listing and "data" in listing
        picture(browser, "jupyterlab.png", viewport=True)


def test_the_guide_shows_exactly_the_pictures_this_test_takes() -> None:
    """Runs without a browser too: docs/user-guide.md links every picture above, each one is in the repository,
    and no picture there comes from elsewhere."""
    guide = (ROOT / "docs" / "user-guide.md").read_text()
    linked = re.findall(r"!\[[^\]]+\]\(user-guide/([^)]+)\)", guide)
    assert sorted(linked) == sorted(PICTURES)
    assert sorted(p.name for p in SHOTS.iterdir()) == sorted(PICTURES)
    for name in PICTURES:
        assert (SHOTS / name).read_bytes().startswith(b"\x89PNG")
