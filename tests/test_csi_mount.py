"""The ``weed mount`` arguments the SeaweedFS CSI node plugin builds from the project's PersistentVolume."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.core.config_load import parse_config
from components.core.csi_mount import NodePlugin, weed_mount_args
from components.core.storage_spec import persistent_volume
from tests.conftest import BASE_CONFIG


def pv(**storage: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE_CONFIG)
    raw["storage"] = storage
    return persistent_volume(parse_config(raw))


def test_project_pv_mounts_its_filer_path_collection_and_replication() -> None:
    plan = weed_mount_args(pv(), "/var/lib/kubelet/pods/x/mount", NodePlugin(filers=("seaweedfs-filer:8888",)))
    assert plan.args[:5] == ["-logtostderr=true", "mount", "-dirAutoCreate=true", "-umask=000",
                             "-dir=/var/lib/kubelet/pods/x/mount"]  # fmt: skip
    assert plan.option("filer") == "seaweedfs-filer:8888"
    assert plan.option("filer.path") == "/buckets/jupyterhub"
    assert plan.option("collection") == "jupyterhub"
    assert plan.option("replication") == "000"
    assert plan.option("cacheMetaTtlSec") == str(parse_config(BASE_CONFIG).storage.cacheMetaTtlSec)
    assert plan.option("concurrentWriters") == "128"
    assert plan.option("map.uid") is None  # empty values are not passed
    assert plan.ignored == []


def test_volume_attributes_override_the_plugin_and_unknown_ones_are_ignored() -> None:
    volume = pv(replication="001", path="/buckets/lab", collection="lab")
    volume["spec"]["csi"]["volumeAttributes"].update(
        {"cacheMetaTtlSec": "7", "uidMap": "1000:2000", "diskType": "ssd", "noSuchOption": "1", "volumeCapacity": "3"}
    )
    plan = weed_mount_args(volume, "/m", NodePlugin(cache_meta_ttl_sec=60, uid_map="0:0"))
    assert plan.option("cacheMetaTtlSec") == "7"
    assert plan.option("map.uid") == "1000:2000"
    assert plan.option("disk") == "ssd"
    assert plan.option("replication") == "001"
    assert plan.option("filer.path") == "/buckets/lab"
    assert plan.option("collectionQuotaMB") == "1"  # 3 bytes, rounded up to a MiB
    assert plan.ignored == ["noSuchOption"]
    assert not any(a.startswith("-noSuchOption") for a in plan.args)


@pytest.mark.parametrize(
    ("handle", "attrs", "path", "collection"),
    [
        ("/buckets/abs", {}, "/buckets/abs", "abs"),  # dynamic volumes: the handle is the path
        ("legacy", {}, "/buckets/legacy", "legacy"),  # no path attribute: the driver's legacy layout
        ("h", {"path": "/x/y"}, "/x/y", "y"),  # collection defaults to the path's last element
    ],
)
def test_filer_path_and_collection_follow_the_driver(
    handle: str, attrs: dict[str, str], path: str, collection: str
) -> None:
    volume = {"spec": {"csi": {"volumeHandle": handle, "volumeAttributes": attrs}}}
    plan = weed_mount_args(volume, "/m", NodePlugin())
    assert (plan.filer_path, plan.collection) == (path, collection)
    assert plan.option("filer.path") == path


def test_args_are_deterministic_and_read_only_is_passed() -> None:
    volume = pv()
    volume["spec"]["csi"]["readOnly"] = True
    a = weed_mount_args(volume, "/m", NodePlugin(), cache_dir="/c", socket="/s")
    b = weed_mount_args(copy.deepcopy(volume), "/m", NodePlugin(), cache_dir="/c", socket="/s")
    assert a.args == b.args
    assert "-readOnly" in a.args
    assert "-cacheDir=/c" in a.args and "-localSocket=/s" in a.args
    flags = [x.split("=")[0] for x in a.args[7:] if x != "-readOnly"]
    assert flags == sorted(flags) and len(flags) == len(set(flags))
