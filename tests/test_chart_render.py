"""Render the real z2jh chart offline with Helm's own library (helm-python-sdk) and check every object.

The chart: GPU_JUPYTERHUB_CHART_DIR, else the published 4.4.0 chart in ../shared/z2jh/chart/jupyterhub
beside the checkout (CI has it there). Skipped only where neither exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import plan_values
from tests.hubconfig import CHART_DIR
from tests.k8s import validate


@pytest.mark.parametrize("nodes", ["mixed", "mig", "nogpu", "large-300"])
def test_chart_renders_and_every_object_validates(nodes: str) -> None:
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk is built for x86_64 Linux only")
    chart = helm.Chart.load(Path(CHART_DIR))  # type: ignore[arg-type]
    assert chart.version in ("4.4.0", "0.0.1-set.by.chartpress")
    values = plan_values("Pulumi.dev.yaml", f"tests/fixtures/nodes/{nodes}.json")
    chart.validate_schema(values)
    rendered = chart.render(values, name="jupyterhub", namespace="jupyterhub", is_install=True)
    manifests = [text for path, text in rendered.items() if path.endswith((".yaml", ".yml"))]
    objects = [d for text in manifests for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Ingress", "NetworkPolicy", "Secret"} <= kinds
    assert "DaemonSet" not in kinds, "the chart's own image pullers are off (ours pull where images run)"
    for obj in objects:
        validate(obj)
    ingress = next(o for o in objects if o["kind"] == "Ingress")
    assert ingress["spec"]["tls"][0]["hosts"] == ["jupyter.lab.example"]
    hub = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "hub")
    env = {e["name"]: e for e in hub["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "gpu-jupyterhub-auth"
    # Core pods: our affinity only (the chart's own is off, so the rendered pod spec has one affinity key).
    for name in ("hub", "proxy"):
        deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name)
        preferred = deployment["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        rules = [(p["weight"], p["preference"]["matchExpressions"][0]["key"]) for p in preferred]
        assert rules == [(100, "hub.jupyter.org/node-purpose"), (50, "nvidia.com/gpu.present")], name
