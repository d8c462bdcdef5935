"""Config changes that would replace the protected notebooks volume, or leave it deletable, are caught
before anything is registered, with what to do (components/core/storage_guard.py)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pulumi
import pytest

from components.core.config_load import parse_config
from components.core.storage_guard import keep_volume_settings, storage_problems
from components.core.storage_spec import CLAIM_NAME, VOLUME_NAME, persistent_volume
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.program import Run
from tests.test_program import run

RAW = {**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}}


def cfg(**storage: Any) -> Any:
    raw = copy.deepcopy(RAW)
    raw["storage"] = {**raw.get("storage", {}), **storage}
    return parse_config(raw)


def static_pv(**changes: Any) -> dict[str, Any]:
    pv = copy.deepcopy(persistent_volume(cfg()))
    pv["spec"]["csi"].update(changes)
    return pv


def dynamic_pv(cls: str, policy: str = "Retain", namespace: str = "jupyterhub") -> dict[str, Any]:
    return {
        "kind": "PersistentVolume",
        "metadata": {"name": "pvc-1234"},
        "spec": {
            "storageClassName": cls,
            "persistentVolumeReclaimPolicy": policy,
            "claimRef": {"name": CLAIM_NAME, "namespace": namespace},
        },
    }


def sc(name: str, policy: str | None = "Retain") -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": "StorageClass", "metadata": {"name": name}}
    if policy:
        doc["reclaimPolicy"] = policy
    return doc


def test_static_volume_unchanged_or_absent_is_fine() -> None:
    assert storage_problems(cfg(), []) == []
    assert storage_problems(cfg(), [static_pv()]) == []


def test_changes_that_replace_the_static_volume_are_named() -> None:
    [p] = storage_problems(cfg(path="/buckets/other"), [static_pv()])
    assert p.startswith("storage (path '/buckets/jupyterhub' -> '/buckets/other')") and "copy the data" in p
    [p] = storage_problems(cfg(collection="other"), [static_pv()])
    assert "collection 'jupyterhub' -> 'other'" in p
    [p] = storage_problems(cfg(driver="other.csi"), [static_pv()])
    assert p.startswith("storage.driver: the volume has 'seaweedfs-csi-driver', the config says 'other.csi'")


def test_a_volume_older_than_the_ttl_attribute_is_kept_not_replaced() -> None:
    """Volumes created before storage.cacheMetaTtlSec existed have no such attribute: the default adapts."""
    old = static_pv()
    del old["spec"]["csi"]["volumeAttributes"]["cacheMetaTtlSec"]
    kept, [note] = keep_volume_settings(cfg(), [old])
    assert kept.storage.cacheMetaTtlSec is None and "created with the CSI node plugin's default; kept" in note
    assert storage_problems(kept, [old]) == []
    assert persistent_volume(kept) == old | {"kind": "PersistentVolume", "apiVersion": "v1"}
    # a volume created with another TTL keeps it too
    other = static_pv(volumeAttributes={**static_pv()["spec"]["csi"]["volumeAttributes"], "cacheMetaTtlSec": "30"})
    kept, [note] = keep_volume_settings(cfg(), [other])
    assert kept.storage.cacheMetaTtlSec == 30 and "created with 30 s" in note
    # same TTL, no volume yet, or dynamic mode: nothing to adapt
    assert keep_volume_settings(cfg(), [static_pv()])[1] == []
    assert keep_volume_settings(cfg(), [])[1] == []


def test_an_explicit_ttl_that_differs_from_the_volume_is_named_with_the_fix() -> None:
    old = static_pv()
    del old["spec"]["csi"]["volumeAttributes"]["cacheMetaTtlSec"]
    explicit = cfg(cacheMetaTtlSec=20)
    assert keep_volume_settings(explicit, [old]) == (explicit, [])
    [p] = storage_problems(explicit, [old])
    assert p.startswith("storage.cacheMetaTtlSec: the volume has none (the node plugin default), the config says 20")
    assert "set storage.cacheMetaTtlSec: null to keep this volume" in p


def test_a_namespace_or_mode_change_is_named() -> None:
    moved = copy.deepcopy(static_pv())
    moved["spec"]["claimRef"]["namespace"] = "old-hub"
    problems = storage_problems(cfg(), [moved])
    assert any(p.startswith("namespace: the notebooks claim lives in 'old-hub'") for p in problems)
    [p] = storage_problems(cfg(), [dynamic_pv("rwx")])
    assert p.startswith("storage.mode: the notebooks claim is bound to the dynamically provisioned volume")
    [p] = storage_problems(cfg(mode="dynamic", storageClass="rwx"), [static_pv(), sc("rwx")])
    assert p.startswith(f"storage.mode: the notebooks claim is bound to the static volume {VOLUME_NAME!r}")


def test_dynamic_mode_refuses_a_class_that_deletes_notebooks() -> None:
    assert storage_problems(cfg(mode="dynamic", storageClass="rwx"), [sc("rwx")]) == []
    [p] = storage_problems(cfg(mode="dynamic", storageClass="rwx"), [sc("rwx", policy=None)])
    assert "reclaimPolicy Delete" in p and "reclaimPolicy: Retain" in p
    [p] = storage_problems(cfg(mode="dynamic", storageClass="nope"), [sc("rwx")])
    assert p == "storage.storageClass: the cluster has no StorageClass 'nope' (it has: rwx)"


def test_an_existing_dynamic_volume_is_checked_itself() -> None:
    [p] = storage_problems(cfg(mode="dynamic", storageClass="rwx"), [dynamic_pv("rwx", "Delete"), sc("rwx")])
    assert "kubectl patch pv pvc-1234" in p and "Retain" in p
    [p] = storage_problems(cfg(mode="dynamic", storageClass="other"), [dynamic_pv("rwx"), sc("rwx"), sc("other")])
    assert p.startswith("storage.storageClass: the volume is of class 'rwx', the config says 'other'")


def test_the_program_stops_before_registering_anything(base_config: dict[str, Any]) -> None:
    raw = copy.deepcopy(base_config)
    raw["storage"] = {"path": "/buckets/elsewhere"}
    listed = json.dumps({"kind": "List", "items": [static_pv()]})
    record = Run()
    with pytest.raises(pulumi.RunError) as err:
        run(raw, storage_json=listed, record=record)
    assert "the notebooks volume:" in str(err.value) and "'/buckets/elsewhere'" in str(err.value)
    assert [r.type for r in record.resources] == ["pulumi:pulumi:Stack"], "nothing half-deployed"


def test_the_program_keeps_an_older_volume_as_it_is(base_config: dict[str, Any]) -> None:
    old = static_pv()
    del old["spec"]["csi"]["volumeAttributes"]["cacheMetaTtlSec"]
    r = run(base_config, storage_json=json.dumps({"kind": "List", "items": [old]}))
    pv = r.one("kubernetes:core/v1:PersistentVolume").inputs
    assert pv["spec"]["csi"]["volumeAttributes"] == old["spec"]["csi"]["volumeAttributes"]
