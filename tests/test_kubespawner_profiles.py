"""Every profile and every option choice, turned into a pod by KubeSpawner 7.0.0 itself."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from components.core.config_load import parse_config
from components.core.image_specs import gpu_images
from components.core.nodes import parse_nodes
from components.core.profile_options import ANY_NODE
from components.core.values import build_values
from tests.conftest import BASE_CONFIG, GIVEN_REFS, nodes_json
from tests.spawner import pods

SCENARIOS = ["workstation", "mixed", "mig", "timesliced", "tainted", "unavailable", "nogpu", "unlabelled"]
GPU_KEYS = re.compile(r"^nvidia\.com/(gpu|mig-.+)$")
GPU_IMAGES = set(gpu_images())


def values_for(scenario: str, **overrides: Any) -> dict[str, Any]:
    # Every offered choice becomes a pod here, so the per-user GPU quota (2 by default; it refuses larger
    # choices at spawn, tests/test_gpu_quota.py) is off.
    profiles = {"maxGpusPerUser": 0, **overrides.pop("profiles", {})}
    raw = {**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}, "profiles": profiles, **overrides}
    cfg = parse_config(raw)
    return build_values(cfg, parse_nodes(nodes_json(scenario)), GIVEN_REFS)


def all_user_options(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """The profile with its defaults, then each choice of each option."""
    out = [{"profile": profile["slug"]}]
    for name, option in profile.get("profile_options", {}).items():
        for choice in option.get("choices", {}):
            out.append({"profile": profile["slug"], name: choice})
    return out


def gpu_limits(pod: dict[str, Any]) -> dict[str, str]:
    limits = pod["spec"]["containers"][0]["resources"].get("limits", {})
    return {k: v for k, v in limits.items() if GPU_KEYS.match(k)}


def env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}


def check_pod(pod: dict[str, Any], profile: dict[str, Any], opts: dict[str, Any]) -> None:
    spec = pod["spec"]
    container = spec["containers"][0]
    limits = gpu_limits(pod)
    requests = {k: v for k, v in container["resources"].get("requests", {}).items() if GPU_KEYS.match(k)}
    assert limits == requests, "extended resources: request must equal limit"
    e = env(pod)
    assert "all" not in e.values(), "NVIDIA_VISIBLE_DEVICES=all bypasses the device plugin"
    tolerations = spec.get("tolerations") or []
    if limits:
        assert "NVIDIA_VISIBLE_DEVICES" not in e
        assert any(t.get("key") == "nvidia.com/gpu" for t in tolerations), "GPU pods tolerate the GPU taint"
        assert container["image"] in [GIVEN_REFS[n] for n in GPU_IMAGES], "a GPU pod runs a GPU image"
    else:
        assert e["NVIDIA_VISIBLE_DEVICES"] == "void"
        assert not any(t.get("key") == "nvidia.com/gpu" for t in tolerations)
        assert container["image"] in [GIVEN_REFS[n] for n in GIVEN_REFS if n not in GPU_IMAGES], "CPU pod, CPU image"
    selector = spec.get("nodeSelector") or {}
    picked_node = opts.get("node") not in (None, ANY_NODE) or opts.get("sharedCode") == "on"
    assert ("kubernetes.io/hostname" in selector) == picked_node
    if opts.get("node") not in (None, ANY_NODE):
        assert selector["kubernetes.io/hostname"] == opts["node"]
    # storage on every pod: per-user sub-directory, scratch, shm, local SQLite state
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/home/jovyan/notebooks"]["subPath"] == "alice"
    assert "/home/jovyan/scratch" in mounts and "/dev/shm" in mounts
    assert e["IPYTHONDIR"].startswith("/home/jovyan/.") and e["JUPYTER_DATA_DIR"].startswith("/home/jovyan/.")
    env_specs = {x["name"]: x for x in container["env"]}
    assert env_specs["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert "/etc/jupyter/jupyter_server_config.json" in mounts, "file-ID and collaboration stores pinned locally"
    assert e["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/notebooks", "the server opens in the notebooks directory"
    sc = container["securityContext"]
    assert sc["runAsUser"] == 1000 and sc["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_choice_makes_the_right_pod(scenario: str) -> None:
    values = values_for(scenario)
    for profile in values["singleuser"]["profileList"]:
        options = all_user_options(profile)
        for opts, pod in zip(options, pods(values, options), strict=True):
            check_pod(pod, profile, opts)


def test_gpu_counts_follow_the_node() -> None:
    values = values_for("mixed")
    by_slug = {p["slug"]: p for p in values["singleuser"]["profileList"]}
    rtx4090 = next(p for s, p in by_slug.items() if "4090" in s)
    assert sorted(rtx4090["profile_options"]["gpus"]["choices"]) == ["1", "2"]
    [pod] = pods(values, [{"profile": rtx4090["slug"], "gpus": "2", "node": "gpu-node-2"}])
    assert gpu_limits(pod) == {"nvidia.com/gpu": "2"}
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "gpu-node-2"}
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["NVIDIA-GeForce-RTX-4090"]
    [auto] = pods(values, [{"profile": "gpu"}])
    assert gpu_limits(auto) == {"nvidia.com/gpu": "1"} and not auto["spec"].get("nodeSelector")


def test_mig_node_requests_its_mig_resource() -> None:
    values = values_for("mig")
    slugs = [p["slug"] for p in values["singleuser"]["profileList"]]
    assert "gpu" not in slugs, "no nvidia.com/gpu allocatable anywhere: no auto-select profile"
    mig = values["singleuser"]["profileList"][-1]
    choices = mig["profile_options"]["gpus"]["choices"]
    got = pods(values, [{"profile": mig["slug"], "gpus": c} for c in choices])
    assert [gpu_limits(p) for p in got] == [{"nvidia.com/mig-1g.10gb": "1"}, {"nvidia.com/mig-3g.40gb": "1"}]


def test_time_sliced_node_gives_one_gpu_per_user() -> None:
    values = values_for("timesliced")
    ts = values["singleuser"]["profileList"][-1]
    assert list(ts["profile_options"]["gpus"]["choices"]) == ["1"]


def test_unavailable_and_untolerated_nodes_are_left_out() -> None:
    names = str(values_for("unavailable")["singleuser"]["profileList"])
    assert "gpu-ok" in names and "gpu-down" not in names and "gpu-cordoned" not in names
    tainted = str(values_for("tainted")["singleuser"]["profileList"])
    assert "gpu-tainted" in tainted and "gpu-reserved" not in tainted


def test_no_gpus_no_gpu_profiles() -> None:
    values = values_for("nogpu")
    assert [p["slug"] for p in values["singleuser"]["profileList"]] == ["cpu", "agent-dev"]


def test_choices_do_not_leak_into_the_next_spawn() -> None:
    """A hub reuses one spawner per server: every order of choices must give the same pods."""
    values = values_for("mixed")
    profiles = values["singleuser"]["profileList"]
    options = [o for p in profiles for o in all_user_options(p)]
    fresh = {repr(o): p for o, p in zip(options, pods(values, options), strict=True)}
    for order in (options, list(reversed(options)), options[1::2] + options[::2]):
        for opts, pod in zip(order, pods(values, order, reuse=True), strict=True):
            expected = fresh[repr(opts)]
            for key in ("nodeSelector", "affinity", "tolerations", "volumes"):
                assert pod["spec"].get(key) == expected["spec"].get(key), (opts, key)
            assert pod["spec"]["containers"][0] == expected["spec"]["containers"][0], opts


def _overrides(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """The profile's own override, then every choice's and unlisted choice's."""
    out = [profile["kubespawner_override"]]
    for option in profile.get("profile_options", {}).values():
        out += [c.get("kubespawner_override", {}) for c in option.get("choices", {}).values()]
        out.append(option.get("unlisted_choice", {}).get("kubespawner_override", {}))
    return out


@pytest.mark.parametrize("scenario", ["mixed", "mig", "homelab"])
def test_every_profile_resets_every_key_another_profile_or_choice_sets(scenario: str) -> None:
    """What makes reuse safe (test_choices_do_not_leak_into_the_next_spawn), on the values themselves: KubeSpawner
    keeps a spawner's overrides between spawns, so each profile sets every key that any profile or choice sets,
    dict-valued keys with every entry (None drops one), in sorted order so the values do not depend on hashing."""
    values = values_for(scenario, storage={"sharedCode": {"hostPath": "/srv/code"}})
    profiles = values["singleuser"]["profileList"]
    keys: set[str] = set()
    entries: dict[str, set[str]] = {}
    for profile in profiles:
        for ov in _overrides(profile):
            keys |= set(ov)
            for k, v in ov.items():
                if isinstance(v, dict):
                    entries.setdefault(k, set()).update(v)
    assert {"environment", "extra_resource_limits", "node_selector", "tolerations"} <= keys
    assert ("volumes" in keys) == (scenario != "mig"), "shared code is offered where a control-plane node runs"
    for profile in profiles:
        ov = profile["kubespawner_override"]
        assert list(ov) == sorted(ov), profile["slug"]
        for k in keys:
            if k in entries:
                assert list(ov[k]) == sorted(entries[k]), (profile["slug"], k)
                continue
            options = [o.get("choices", {}) for o in profile.get("profile_options", {}).values()]
            set_by_choice = any(c and all(k in x.get("kubespawner_override", {}) for x in c.values()) for c in options)
            assert k in ov or set_by_choice, (profile["slug"], k)
        gpu = profile["slug"] not in ("cpu", "agent-dev")
        assert ov["environment"] == {"NVIDIA_VISIBLE_DEVICES": None if gpu else "void"}
        if not gpu:
            continue
        assert ov["node_affinity_preferred"] == [], "GPU servers keep no preference of the CPU profiles"
        assert ov["node_selector"]["kubernetes.io/hostname"] is None
        assert ov.get("volumes", {"shared-code": None}) == {"shared-code": None}


def test_free_form_image_only_from_the_registry() -> None:
    values = values_for("mixed")
    ok = "harbor.lab.example/jupyter/team/custom-notebook:2024.11"
    [pod] = pods(values, [{"profile": "cpu", "image--unlisted-choice": ok}])
    assert pod["spec"]["containers"][0]["image"] == ok
    for bad in (
        "harbor.lab.example/team/custom-notebook:2024.11",  # another Harbor project
        ok + "\n",  # re.match with $ would take it
        "docker.io/library/python:3.12",
        "harbor.lab.example.evil.com/x/y:1",
        "harbor.lab.example/../x:1",
        "harbor.lab.example",
        "evil.com/harbor.lab.example/x:1",
    ):
        with pytest.raises(ValueError, match="validation regex"):
            pods(values, [{"profile": "cpu", "image--unlisted-choice": bad}])


def test_shared_code_only_on_the_control_plane_node() -> None:
    values = values_for("mixed", storage={"sharedCode": {"hostPath": "/srv/shared-code"}})
    cpu = values["singleuser"]["profileList"][0]
    assert set(cpu["profile_options"]["sharedCode"]["choices"]) == {"off", "on"}
    on, off = pods(values, [{"profile": "cpu", "sharedCode": "on"}, {"profile": "cpu", "sharedCode": "off"}])
    vol = next(v for v in on["spec"]["volumes"] if v["name"] == "shared-code")
    assert vol["persistentVolumeClaim"] == {"claimName": "shared-code", "readOnly": True}
    assert on["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "cp-1"}
    assert any(t.get("key") == "node-role.kubernetes.io/control-plane" for t in on["spec"]["tolerations"])
    assert not any(v["name"] == "shared-code" for v in off["spec"]["volumes"])
    # and it does not stick when the same server is started again without it
    again = pods(values, [{"profile": "cpu", "sharedCode": "on"}, {"profile": "cpu"}], reuse=True)[1]
    assert not any(v["name"] == "shared-code" for v in again["spec"]["volumes"])
    assert not again["spec"].get("nodeSelector")


def test_pairs_of_profiles_reuse() -> None:
    values = values_for("tainted")
    slugs = [p["slug"] for p in values["singleuser"]["profileList"]]
    for a, b in itertools.permutations(slugs, 2):
        _first, second = pods(values, [{"profile": a}, {"profile": b}], reuse=True)
        [alone] = pods(values, [{"profile": b}])
        assert second["spec"]["containers"][0] == alone["spec"]["containers"][0]


@pytest.mark.no_mutation  # slow: faster tests cover the same code (scripts/mutation.sh)
def test_large_cluster_every_profile_and_option_kind() -> None:
    """300 nodes: every profile, every GPU count, and the first and last node of each class."""
    values = values_for("large-300")
    options = []
    for profile in values["singleuser"]["profileList"]:
        options.append({"profile": profile["slug"]})
        opts = profile.get("profile_options", {})
        for choice in opts.get("gpus", {}).get("choices", {}):
            options.append({"profile": profile["slug"], "gpus": choice})
        nodes = [n for n in opts.get("node", {}).get("choices", {}) if n != ANY_NODE]
        for n in nodes[:1] + nodes[-1:]:
            options.append({"profile": profile["slug"], "node": n})
    profiles = {p["slug"]: p for p in values["singleuser"]["profileList"]}
    named = {n for p in profiles.values() for n in p.get("profile_options", {}).get("node", {}).get("choices", {})}
    assert len(named - {ANY_NODE}) == 150, "every GPU node is reachable by name"
    for opts, pod in zip(options, pods(values, options), strict=True):
        check_pod(pod, profiles[opts["profile"]], opts)
