"""Before anything is registered: would this config replace or endanger the notebooks volume?

The notebooks volume and claim are ``protect``ed, so a config change that forces their replacement (another
driver, volume handle, SeaweedFS path or collection, namespace, storage mode or class) fails ``pulumi up`` with
a bare engine error, after other resources may have changed. And in dynamic mode the volume's reclaim policy
comes from the StorageClass, often ``Delete``: deleting the claim by hand then deletes every notebook.
``storage_problems`` compares the config with what the cluster holds (``kubectl get pv,storageclass``) and
says what is wrong and how to fix or migrate. Pure: plain dicts in, messages out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from components.core.config import StackConfig
from components.core.storage_spec import CLAIM_NAME, VOLUME_NAME, persistent_volume

MIGRATE = (
    "Pulumi protects the notebooks volume, so `pulumi up` would stop half-way. To move the notebooks, keep this "
    "config for the old volume, deploy the new one beside it (another stack, or another storage.volumeHandle and "
    "storage.path), copy the data with a pod that mounts both, then switch"
)


def _by_kind(items: Iterable[Any], kind: str) -> list[Mapping[str, Any]]:
    return [i for i in items if isinstance(i, Mapping) and i.get("kind") == kind]


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _ours(pv: Mapping[str, Any], namespace: str | None = None) -> bool:
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    return ref.get("name") == CLAIM_NAME and (namespace is None or ref.get("namespace") == namespace)


def keep_volume_settings(cfg: StackConfig, items: Iterable[Any]) -> tuple[StackConfig, list[str]]:
    """The config with the existing volume's metadata TTL where the stack does not set one, and notes.

    A PV's volume attributes cannot change in place, so a default that changes between releases (the
    metadata TTL attribute is newer than some volumes) must not ask to replace a volume full of notebooks.
    An explicit ``storage.cacheMetaTtlSec`` is left alone; ``storage_problems`` reports a mismatch.
    """
    existing = next((pv for pv in _by_kind(items, "PersistentVolume") if _name(pv) == VOLUME_NAME), None)
    if cfg.storage.mode != "static" or existing is None or "cacheMetaTtlSec" in cfg.storage.model_fields_set:
        return cfg, []
    attrs = ((existing.get("spec") or {}).get("csi") or {}).get("volumeAttributes") or {}
    raw = attrs.get("cacheMetaTtlSec")
    have = int(raw) if raw is not None and str(raw).isdigit() else None
    if have == cfg.storage.cacheMetaTtlSec:
        return cfg, []
    storage = cfg.storage.model_copy(update={"cacheMetaTtlSec": have})
    shown = "the CSI node plugin's default" if have is None else f"{have} s"
    note = (
        f"storage.cacheMetaTtlSec: the notebooks volume was created with {shown}; kept (a volume's attributes "
        f"cannot change in place). Set the key explicitly to silence this note."
    )
    return cfg.model_copy(update={"storage": storage}), [note]


def storage_problems(cfg: StackConfig, items: Iterable[Any]) -> list[str]:
    """What would replace the protected volume or claim, or leave notebooks deletable (empty: all well)."""
    items = list(items)
    pvs = _by_kind(items, "PersistentVolume")
    classes = {_name(c): c for c in _by_kind(items, "StorageClass")}
    problems: list[str] = []
    existing = next((pv for pv in pvs if _name(pv) == VOLUME_NAME), None)
    bound = next((pv for pv in pvs if _ours(pv)), None)

    if bound is not None and not _ours(bound, cfg.namespace):
        old_ns = bound["spec"]["claimRef"].get("namespace")
        problems.append(
            f"namespace: the notebooks claim lives in {old_ns!r}, the config says {cfg.namespace!r}. {MIGRATE}"
        )

    if cfg.storage.mode == "static":
        if bound is not None and _name(bound) != VOLUME_NAME:
            problems.append(
                f"storage.mode: the notebooks claim is bound to the dynamically provisioned volume {_name(bound)!r}; "
                f"static mode would replace the claim. {MIGRATE}"
            )
        if existing is not None:
            want = persistent_volume(cfg)["spec"]["csi"]
            have = (existing.get("spec") or {}).get("csi") or {}
            for key, label in (("driver", "storage.driver"), ("volumeHandle", "storage.volumeHandle")):
                if have.get(key) != want[key]:
                    problems.append(
                        f"{label}: the volume has {have.get(key)!r}, the config says {want[key]!r}. {MIGRATE}"
                    )
            old_attrs, new_attrs = have.get("volumeAttributes") or {}, want["volumeAttributes"]
            changed = sorted(k for k in set(old_attrs) | set(new_attrs) if old_attrs.get(k) != new_attrs.get(k))
            if "cacheMetaTtlSec" in changed:
                changed.remove("cacheMetaTtlSec")
                old_ttl = old_attrs.get("cacheMetaTtlSec")
                problems.append(
                    f"storage.cacheMetaTtlSec: the volume has {old_ttl or 'none (the node plugin default)'}, the "
                    f"config says {new_attrs.get('cacheMetaTtlSec') or 'none'}; a volume's attributes cannot "
                    f"change in place: set storage.cacheMetaTtlSec: {old_ttl or 'null'} to keep this volume "
                    "(the node plugin's own --cacheMetaTtlSec applies to every volume without the attribute)"
                )
            if changed:
                detail = ", ".join(f"{k} {old_attrs.get(k)!r} -> {new_attrs.get(k)!r}" for k in changed)
                problems.append(f"storage ({detail}): these volume attributes cannot change in place. {MIGRATE}")
        return problems

    # dynamic mode
    wanted = cfg.storage.storageClass  # the config requires one in dynamic mode
    if bound is not None and _name(bound) == VOLUME_NAME and (bound.get("spec") or {}).get("storageClassName") == "":
        problems.append(f"storage.mode: the notebooks claim is bound to the static volume {VOLUME_NAME!r}. {MIGRATE}")
    elif bound is not None:
        have_class = (bound.get("spec") or {}).get("storageClassName")
        if wanted and have_class != wanted:
            problems.append(
                f"storage.storageClass: the volume is of class {have_class!r}, the config says {wanted!r}. {MIGRATE}"
            )
        if (bound.get("spec") or {}).get("persistentVolumeReclaimPolicy", "Delete") != "Retain":
            problems.append(
                f"the notebooks volume {_name(bound)!r} is deleted with its claim (reclaim policy Delete); "
                "keep it with: "
                f'kubectl patch pv {_name(bound)} -p \'{{"spec":{{"persistentVolumeReclaimPolicy":"Retain"}}}}\''
            )
        return problems
    if wanted is None:
        problems.append(
            "storage.storageClass: not set and the cluster has no default StorageClass; name a ReadWriteMany class"
        )
    elif wanted not in classes:
        known = ", ".join(sorted(classes)) or "none"
        problems.append(f"storage.storageClass: the cluster has no StorageClass {wanted!r} (it has: {known})")
    elif classes[wanted].get("reclaimPolicy", "Delete") != "Retain":
        problems.append(
            f"storage.storageClass: {wanted!r} deletes a volume with its claim (reclaimPolicy "
            f"{classes[wanted].get('reclaimPolicy', 'Delete')}), so deleting the notebooks claim would delete every "
            "notebook: use a copy of the class with reclaimPolicy: Retain, or static mode"
        )
    return problems
