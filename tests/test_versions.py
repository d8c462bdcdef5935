"""The Kubernetes provider the e2e tier builds is the one users get (issue 28): the Python SDK names its plugin's
version, and `pulumi up` fetches that plugin for users, so requirements.txt pins the SDK at the version
scripts/e2e/versions.env builds. A mismatch made every engine run warn ("resource plugin kubernetes is expected to
have version >=4.34.2, but has 4.25.0") and left the users' provider untested."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_sdk_is_pinned_at_the_provider_the_e2e_tier_builds() -> None:
    built = re.search(r"^K8S_PROVIDER_VERSION=(\S+)$", (ROOT / "scripts/e2e/versions.env").read_text(), re.M)
    pinned = re.search(r"^pulumi-kubernetes==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert built and pinned
    assert pinned.group(1) == built.group(1)
    assert version("pulumi-kubernetes") == built.group(1), "the .venv holds the pinned SDK"


def test_an_installed_pulumi_cli_is_used_only_when_as_new_as_the_sdk() -> None:
    """setup.sh uses an installed Pulumi CLI from PULUMI_MIN on; the CLI and the SDK ship together, so the floor is
    the SDK requirements.txt pins."""
    floor = re.search(r"^PULUMI_MIN=(\S+)$", (ROOT / "scripts/e2e/versions.env").read_text(), re.M)
    sdk = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert floor and sdk and floor.group(1) == sdk.group(1)
