"""The ``weed mount`` command line the SeaweedFS CSI node plugin builds for the notebooks volume.

The storage tests mount a real filer twice, standing in for two nodes, and must mount it exactly as the
driver would mount the project's PersistentVolume; the plan shows the same options to the admin. This
module is that one mapping: PV spec (``volumeHandle`` + ``volumeAttributes``) plus the node plugin's own
flags in, argument list out. It follows the driver's mounter (seaweedfs-csi-driver, 2026): fixed
arguments first, then every overridable key, where a ``volumeAttributes`` entry the driver knows replaces
the node plugin's default and an unknown one is ignored (the driver logs a warning). The driver emits the
overridable keys in Go map order; they are sorted here so the result is deterministic.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

# Keys a volumeAttributes entry may override, with the node plugin flag that supplies the default.
OVERRIDABLE = (
    "cacheCapacityMB",
    "cacheMetaTtlSec",
    "chunkSizeLimitMB",
    "collection",
    "collectionQuotaMB",
    "concurrentReaders",
    "concurrentWriters",
    "dataCenter",
    "disk",
    "filer",
    "filer.path",
    "map.gid",
    "map.uid",
    "readRetryTime",
    "replication",
    "ttl",
    "volumeServerAccess",
)
# volumeAttributes names the driver renames to mount flags.
RENAMED = {"uidMap": "map.uid", "gidMap": "map.gid", "diskType": "disk"}
# volumeAttributes the driver consumes elsewhere (path selection, provisioning), never as a mount flag.
CONSUMED = frozenset({"collectionQuotaMB", "dataLocality", "path", "parentDir", "volumeName", "volumeCapacity"})


@dataclass(frozen=True)
class NodePlugin:
    """The CSI node plugin's own flags (its DaemonSet arguments); defaults are the driver's."""

    filers: tuple[str, ...] = ("localhost:8888",)
    cache_dir: str = "/tmp"
    socket_dir: str = "/var/lib/seaweedfs-mount"
    cache_capacity_mb: int = 0
    cache_meta_ttl_sec: int = 60
    concurrent_readers: int = 128
    concurrent_writers: int = 128
    uid_map: str = ""
    gid_map: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MountPlan:
    """What the driver would run: ``weed`` + ``args``; ``ignored`` lists attributes it would warn about."""

    args: list[str]
    ignored: list[str]
    filer_path: str
    collection: str

    def option(self, name: str) -> str | None:
        prefix = f"-{name}="
        return next((a[len(prefix) :] for a in self.args if a.startswith(prefix)), None)


def weed_mount_args(
    pv: dict[str, Any], target: str, plugin: NodePlugin, *, cache_dir: str | None = None, socket: str | None = None
) -> MountPlan:
    """The ``weed`` arguments for mounting ``pv`` at ``target`` on a node whose plugin runs with ``plugin``.

    ``cache_dir`` and ``socket`` default to the driver's per-volume paths under the plugin's directories;
    tests pass their own so two "nodes" on one machine do not share them.
    """
    csi = pv["spec"]["csi"]
    handle: str = csi["volumeHandle"]
    attrs: dict[str, str] = dict(csi.get("volumeAttributes") or {})
    if posixpath.isabs(handle):
        filer_path = handle
    elif attrs.get("path"):
        filer_path = attrs["path"]
    else:
        filer_path = posixpath.join("/buckets", handle)
    collection = attrs.get("collection") or posixpath.basename(filer_path)
    args = [
        "-logtostderr=true",
        "mount",
        "-dirAutoCreate=true",
        "-umask=000",
        f"-dir={target}",
        f"-localSocket={socket or posixpath.join(plugin.socket_dir, handle + '.sock')}",
        f"-cacheDir={cache_dir or posixpath.join(plugin.cache_dir, handle)}",
    ]
    if csi.get("readOnly"):
        args.append("-readOnly")
    values: dict[str, str] = dict.fromkeys(OVERRIDABLE, "")
    values.update(
        {
            "collection": collection,
            "filer": ",".join(plugin.filers),
            "filer.path": filer_path,
            "cacheCapacityMB": str(plugin.cache_capacity_mb),
            "cacheMetaTtlSec": str(plugin.cache_meta_ttl_sec),
            "concurrentReaders": str(plugin.concurrent_readers),
            "concurrentWriters": str(plugin.concurrent_writers),
            "map.uid": plugin.uid_map,
            "map.gid": plugin.gid_map,
            "collectionQuotaMB": _quota_mb(attrs.get("volumeCapacity", "")),
        }
    )
    ignored: list[str] = []
    for key in sorted(attrs):
        if key in CONSUMED:
            continue
        flag = RENAMED.get(key, key)
        if flag not in values:
            ignored.append(key)
        elif attrs[key] != "":
            values[flag] = attrs[key]
    args += [f"-{k}={v}" for k, v in sorted(values.items()) if v != ""]
    return MountPlan(args=args, ignored=ignored, filer_path=filer_path, collection=collection)


def _quota_mb(capacity_bytes: str) -> str:
    """The driver's initial collection quota: the provisioned capacity in MiB, rounded up."""
    try:
        capacity = int(capacity_bytes)
    except ValueError:
        return ""
    return str(-(-capacity // (1024 * 1024))) if capacity > 1 else ""
