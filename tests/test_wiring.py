"""Cross-artifact wiring, on the objects the program registers (Pulumi mocks): every Secret the values or a
pod refer to is one the program creates (or the chart does), holding the key referred to; every claim a pod
mounts is registered; every image a profile names is one the program built or was given. A wrong name or key
in any of these stops the hub or a pod from starting, and no single-artifact test would notice."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.conftest import GIVEN_REFS, SECRETS
from tests.program import Run
from tests.test_program import run

# Secrets the chart itself creates in the release namespace, with the keys it writes.
CHART_SECRETS = {"hub": None, "singleuser": None}


def _walk(obj: Any, found: list[dict[str, Any]], key: str) -> None:
    if isinstance(obj, dict):
        if key in obj and isinstance(obj[key], dict):
            found.append(obj[key])
        for v in obj.values():
            _walk(v, found, key)
    elif isinstance(obj, list):
        for v in obj:
            _walk(v, found, key)


def _secrets(r: Run) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for res in r.of_type("kubernetes:core/v1:Secret"):
        data = {**(res.inputs.get("stringData") or {}), **(res.inputs.get("data") or {})}
        out[res.inputs["metadata"]["name"]] = set(data)
    return out


def _check(r: Run) -> list[str]:
    """Every dangling reference, as text (empty: all wired)."""
    problems: list[str] = []
    secrets = _secrets(r)
    everything = [res.inputs for res in r.resources]
    refs: list[dict[str, Any]] = []
    _walk(everything, refs, "secretKeyRef")
    for ref in refs:
        name, key = ref.get("name"), ref.get("key")
        if name in CHART_SECRETS:
            continue
        if name not in secrets:
            problems.append(f"secretKeyRef to Secret {name!r}, which the program does not create")
        elif key not in secrets[name]:
            problems.append(f"secretKeyRef to key {key!r} of Secret {name!r}, which holds {sorted(secrets[name])}")
    values = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    pull_names = list(values["singleuser"]["image"]["pullSecrets"])
    for ds in r.of_type("kubernetes:apps/v1:DaemonSet"):
        pull_names += [s["name"] for s in ds.inputs["spec"]["template"]["spec"].get("imagePullSecrets") or []]
    for name in pull_names:
        if name not in secrets:
            problems.append(f"imagePullSecret {name!r} is not created")
        elif ".dockerconfigjson" not in secrets[name]:
            problems.append(f"imagePullSecret {name!r} holds no .dockerconfigjson")
    claims = {res.inputs["metadata"]["name"] for res in r.of_type("kubernetes:core/v1:PersistentVolumeClaim")}
    storage = values["singleuser"]["storage"]
    if storage["type"] == "static" and storage["static"]["pvcName"] not in claims:
        problems.append(f"user pods mount claim {storage['static']['pvcName']!r}, which is not registered")
    allowed_images = set(GIVEN_REFS.values())
    profile_images: list[str] = []
    overrides: list[dict[str, Any]] = []
    _walk(values["singleuser"]["profileList"], overrides, "kubespawner_override")
    profile_images += [o["image"] for o in overrides if isinstance(o.get("image"), str) and "{" not in o["image"]]
    for image in [*profile_images, values["singleuser"]["image"]["name"]]:
        if image not in allowed_images:
            problems.append(f"image {image!r} is neither built nor given")
    return problems


@pytest.mark.parametrize("mode", ["oidc", "native", "shared-password"])
def test_every_reference_resolves(prebuilt_config: dict[str, Any], mode: str) -> None:
    cfg = copy.deepcopy(prebuilt_config)
    if mode == "native":
        cfg["auth"] = {"mode": "native", "adminUsers": ["ann"], "adminPassword": SECRETS["shared"] + "-admin"}
    if mode == "shared-password":
        cfg["auth"] = {
            "mode": "shared-password",
            "sharedPassword": SECRETS["shared"],
            "allowedUsers": ["bob"],
            "adminUsers": ["ann"],
            "adminPassword": "a" * 40,
        }
    r = run(cfg)
    assert _check(r) == []
    refs: list[dict[str, Any]] = []
    _walk(r.one("kubernetes:helm.sh/v3:Release").inputs["values"], refs, "secretKeyRef")
    assert refs, "the values do refer to secrets"


def test_the_check_catches_a_wrong_key_or_name(prebuilt_config: dict[str, Any]) -> None:
    """What the audit found passing every test: a renamed key or Secret in the values."""
    r = run(copy.deepcopy(prebuilt_config))
    env = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]["hub"]["extraEnv"]
    original = json.dumps(env)
    env["OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["key"] = "client-secret"
    assert any("key 'client-secret'" in p for p in _check(r))
    env.update(json.loads(original))
    env["OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] = "gpu-jupyterhub-oauth"
    assert any("'gpu-jupyterhub-oauth', which the program does not create" in p for p in _check(r))
    env.update(json.loads(original))
    values = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    values["singleuser"]["storage"]["static"]["pvcName"] = "notebooks"
    assert any("claim 'notebooks'" in p for p in _check(r))
