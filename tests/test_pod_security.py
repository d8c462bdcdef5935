"""Every pod the program and the chart create meets Pod Security "restricted" (so the namespace can enforce
it), except the shared-code option, which mounts a hostPath and turns enforcement off with a note."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.core.config_load import parse_config
from components.core.image_specs import gpu_images
from components.core.nodes import parse_nodes
from components.core.prepull_spec import prepull_daemonsets
from components.core.profiles import build_profiles
from components.core.storage_spec import verification_jobs
from components.core.values import build_values, pod_security_labels
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS
from tests.pss import restricted_violations
from tests.spawner import pods

RAW = {**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}}


def _options(profile: dict[str, Any]) -> list[dict[str, Any]]:
    out = [{"profile": profile["slug"]}]
    for name, option in profile.get("profile_options", {}).items():
        out += [{"profile": profile["slug"], name: c} for c in list(option.get("choices", {}))[:4]]
    return out


def test_user_pods_of_every_profile_are_restricted() -> None:
    values = build_values(parse_config(RAW), parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)
    options = [o for p in values["singleuser"]["profileList"] for o in _options(p)]
    for opts, pod in zip(options, pods(values, options), strict=True):
        assert restricted_violations(pod["spec"]) == [], opts


def test_shared_code_keeps_the_namespace_restricted() -> None:
    """Shared code used to be a hostPath volume, which only "privileged" admits, so the namespace enforced
    nothing and the hub's account could create privileged pods; now it is a read-only claim of a local volume."""
    raw = copy.deepcopy(RAW)
    raw["storage"] = {**raw.get("storage", {}), "sharedCode": {"hostPath": "/srv/code"}}
    cfg = parse_config(raw)
    values = build_values(cfg, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)
    [off, on] = pods(values, [{"profile": "cpu", "sharedCode": "off"}, {"profile": "cpu", "sharedCode": "on"}])
    assert restricted_violations(off["spec"]) == []
    assert restricted_violations(on["spec"]) == []
    volume = next(v for v in on["spec"]["volumes"] if v["name"] == "shared-code")
    assert volume == {"name": "shared-code", "persistentVolumeClaim": {"claimName": "shared-code", "readOnly": True}}
    for mode in ("enforce", "warn", "audit"):
        assert pod_security_labels(cfg)[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert not any("Pod Security" in n for n in build_profiles(cfg, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS).notes)


def test_prepullers_and_storage_checks_are_restricted_and_jobs_have_no_token() -> None:
    tol = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    for ds in prepull_daemonsets(GIVEN_REFS, gpu_images(), "jhub", None, tol, None):
        assert restricted_violations(ds["spec"]["template"]["spec"]) == [], ds["metadata"]["name"]
    writers, readers = verification_jobs(
        parse_config(RAW), ["cpu-1", "gpu-1"], "abcd", GIVEN_REFS["jupyter-ml-cpu"], tol, None
    )
    for job in writers + readers:
        spec = job["spec"]["template"]["spec"]
        assert restricted_violations(spec) == [], job["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is False


def test_the_checker_catches_what_admission_would_refuse() -> None:
    """The checks above must be able to fail."""
    spec = {"containers": [{"name": "c", "securityContext": {}}], "volumes": [{"name": "h", "hostPath": {}}]}
    found = restricted_violations(spec)
    assert "volume h: ['hostPath']" in found and "c: capabilities must drop ALL" in found
    assert "c: runAsNonRoot must be true" in found and "c: seccompProfile must be RuntimeDefault or Localhost" in found


@pytest.mark.parametrize("nodes", ["mixed"])
def test_the_charts_pods_are_restricted(nodes: str) -> None:
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk is built for x86_64 Linux only")
    import yaml

    from tests.conftest import plan_values
    from tests.test_chart_render import CHART_DIR

    assert CHART_DIR, "the published chart is in ../shared/z2jh/chart/jupyterhub"
    from pathlib import Path

    chart = helm.Chart.load(Path(CHART_DIR))
    rendered = chart.render(
        plan_values("Pulumi.dev.yaml", f"tests/fixtures/nodes/{nodes}.json"),
        name="jupyterhub",
        namespace="jupyterhub",
        is_install=True,
    )
    objects = [d for p, t in rendered.items() if p.endswith(".yaml") for d in yaml.safe_load_all(t) if d]
    workloads = [o for o in objects if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job")]
    assert {o["metadata"]["name"] for o in workloads} >= {"hub", "proxy"}
    for o in workloads:
        assert restricted_violations(o["spec"]["template"]["spec"]) == [], o["metadata"]["name"]
