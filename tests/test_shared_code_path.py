"""storage.sharedCode.hostPath: never the node's file system or its system directories (issue 25, point 8)."""

from __future__ import annotations

import copy

import pytest

from components.core.backup_spec import check_target
from components.core.config import ConfigError
from components.core.config_load import parse_config
from components.core.nodes import parse_nodes
from components.core.profiles import build_profiles
from components.core.storage_spec import shared_code_host, shared_code_objects
from tests.conftest import BASE_CONFIG, GIVEN_REFS, nodes_json
from tests.fixtures.nodefactory import SCENARIOS
from tests.k8s import validate
from tests.program import run_program
from tests.test_config_messages import problems

KEY = "gpu-jupyterhub:storage.sharedCode.hostPath"
HINT = "use a directory made for the shared code, such as /srv/shared-code"


def message(path: str) -> list[str]:
    return problems({"storage.sharedCode": {"hostPath": path}})


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/.", "/. is /: not / itself: that would show the node's whole file system"),
        ("/./", "/./ is /: not / itself: that would show the node's whole file system"),
        ("/srv/./..", "an absolute path such as /buckets/jupyterhub, without '..' or '//'"),
        ("/etc", f"/etc is where the node keeps credentials, devices or runtime state: {HINT}"),
        ("/etc/.", f"/etc/. is /etc: /etc is where the node keeps credentials, devices or runtime state: {HINT}"),
        (
            "/etc/kubernetes/pki",
            f"/etc/kubernetes/pki is in /etc, where the node keeps credentials, devices or runtime state: {HINT}",
        ),
        ("/var/lib/kubelet", f"/var/lib/kubelet is where the node keeps credentials, devices or runtime state: {HINT}"),
        (
            "/var/run/containerd",
            f"/var/run/containerd is in /var/run, where the node keeps credentials, devices or runtime state: {HINT}",
        ),
        ("/usr", f"/usr is a system directory of the node: {HINT}"),
        ("/lib64", f"/lib64 is a system directory of the node: {HINT}"),
        ("/./var/", f"/./var/ is /var: /var is a system directory of the node: {HINT}"),
    ],
)
def test_system_directories_are_refused_word_for_word(path: str, expected: str) -> None:
    assert message(path) == [f"{KEY}: {expected} (got {path!r})"]


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/boot",
        "/dev",
        "/proc",
        "/sys",
        "/root",
        "/run",
        "/var/run",
        "/var/lib/containerd",
        "/var/lib/etcd",
        "/var/lib/docker",
        "/var/snap/microk8s",
        "/var/log",
        "/bin",
        "/sbin",
        "/lib",
        "/var",
        "/var/lib",
        "/home",
        "/tmp",
        "/srv",
        "/opt",
        "/proc/1/root",
        "/dev/shm",
        "/sys/fs",
        "/root/.ssh",
        "/var/lib/kubelet/pods",
        "/var/lib/rancher/k3s",
        "/var/lib/cni",
    ],
)
def test_every_listed_system_directory_is_refused(path: str) -> None:
    [problem] = message(path)
    assert problem.startswith(f"{KEY}: ")


@pytest.mark.parametrize(
    ("path", "stored"),
    [
        ("/srv/shared-code", "/srv/shared-code"),
        ("/srv/code/", "/srv/code"),
        ("/srv/./code", "/srv/code"),
        ("/opt/lab-code", "/opt/lab-code"),
        ("/usr/local/share/code", "/usr/local/share/code"),
        ("/var/lib/lab-code", "/var/lib/lab-code"),
        ("/etcetera", "/etcetera"),
        ("/home/ann/code", "/home/ann/code"),
    ],
)
def test_code_directories_pass_normalised(path: str, stored: str) -> None:
    raw = {**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": dict(GIVEN_REFS)}}
    raw["storage"] = {"sharedCode": {"hostPath": path}}
    assert parse_config(raw).storage.sharedCode.hostPath == stored


def test_shared_code_is_a_read_only_local_volume_on_the_node_the_form_names() -> None:
    """storage.sharedCode through a local PersistentVolume and its claim (restricted Pod Security admits a
    claim, never a hostPath); the volume is on the control-plane node the profile option pins pods to."""
    raw = {**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": dict(GIVEN_REFS)}}
    raw["storage"] = {"sharedCode": {"hostPath": "/srv/code"}}
    cfg = parse_config(raw)
    inventory = parse_nodes(SCENARIOS["mixed"])
    host = shared_code_host(inventory)
    assert host is not None
    option = build_profiles(cfg, inventory, GIVEN_REFS).profiles[0]["profile_options"]["sharedCode"]
    assert option["choices"]["on"]["kubespawner_override"]["node_selector"] == {"kubernetes.io/hostname": host}
    volume, claim = shared_code_objects(cfg, host)
    assert volume["spec"]["local"] == {"path": "/srv/code"}
    assert volume["spec"]["accessModes"] == claim["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    terms = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]
    assert volume["spec"]["claimRef"] == {"namespace": "jupyterhub", "name": "shared-code"}
    assert claim["spec"]["volumeName"] == volume["metadata"]["name"] == "gpu-jupyterhub-shared-code-jupyterhub"
    for manifest in (volume, claim):
        validate(manifest)
    notes = build_profiles(cfg, inventory, GIVEN_REFS).notes
    assert not [n for n in notes if "privileged" in n or "hostPath" in n]


def test_the_program_registers_the_shared_code_volume_and_backups_refuse_its_claim() -> None:
    raw = {**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": dict(GIVEN_REFS)}}
    raw["storage"] = {"sharedCode": {"hostPath": "/srv/code"}}
    r = run_program(raw, nodes_json=nodes_json("mixed"))
    pv = [x for x in r.of_type("kubernetes:core/v1:PersistentVolume") if "shared-code" in x.name]
    pvc = [x for x in r.of_type("kubernetes:core/v1:PersistentVolumeClaim") if "shared-code" in x.name]
    assert len(pv) == len(pvc) == 1
    assert pv[0].inputs["spec"]["local"] == {"path": "/srv/code"}
    assert "gpu-jupyterhub:storage:NotebookStorage" in pv[0].parent
    plain = {**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": dict(GIVEN_REFS)}}
    none = run_program(plain, nodes_json=nodes_json("mixed"))
    assert not [x for x in none.of_type("kubernetes:core/v1:PersistentVolume") if "shared-code" in x.name]
    raw["backup"] = {
        "enabled": True,
        "target": "claim:shared-code",
        "password": "a-restic-password-0123",
        "image": "harbor.lab.example/proxy/restic/restic@sha256:" + "2" * 64,
    }
    with pytest.raises(ConfigError, match=r"gpu-jupyterhub:backup\.target"):
        check_target(parse_config(raw))
