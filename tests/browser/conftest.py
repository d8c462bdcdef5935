"""The browser tier: Debian's Chromium, headless, driven by Selenium through Debian's chromedriver.

scripts/test.sh installs both as root and sets GPU_JUPYTERHUB_BROWSER=required: then a missing browser fails
the tier. Elsewhere (not root, no browser) the tier skips and says why."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))  # localhub, as tests/cluster uses it

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        message = f"no browser: {', '.join(missing)} missing (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("GPU_JUPYTERHUB_BROWSER") == "required":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # loopback only: no background fetches, updates, sync or first-run pages
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                "--force-device-scale-factor=1", "--hide-scrollbars", "--lang=en-US", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--no-default-browser-check"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
