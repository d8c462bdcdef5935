"""storage.sharedCode.hostPath: never the node's file system or its system directories (issue 25, point 8)."""

from __future__ import annotations

import copy

import pytest

from components.config import parse_config
from components.nodes import parse_nodes
from components.profiles import build_profiles
from components.values import pod_security_labels
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS
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


def test_shared_code_still_lowers_enforcement_and_the_plan_says_what_that_risks() -> None:
    """No Pod Security level admits a hostPath volume without admitting privileged pods (baseline and restricted
    both forbid hostPath), so the namespace enforces nothing with shared code; the plan warns, naming the risk."""
    raw = {**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": dict(GIVEN_REFS)}}
    assert pod_security_labels(parse_config(raw))["pod-security.kubernetes.io/enforce"] == "restricted"
    raw["storage"] = {"sharedCode": {"hostPath": "/srv/code"}}
    cfg = parse_config(raw)
    labels = pod_security_labels(cfg)
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"
    notes = build_profiles(cfg, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS).notes
    [warning] = [n for n in notes if "hostPath" in n]
    assert warning.startswith("WARNING: ") and "can then create privileged pods, which is root on every node" in warning
