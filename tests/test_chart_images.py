"""The chart's own images from the user's registry (``gpu-jupyterhub:chart.images``, air-gapped clusters).

What answers: the published chart's values.yaml and templates (the table of defaults and how each template
writes ``image:``), the chart rendered by Helm's own library (the hub and proxy Deployments' images and pull
secrets), the chart's own jupyterhub_config.py (the pull secrets KubeSpawner gives user pods), and the plan
command as a user runs it.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cli.plan import render_values
from components.core.chart_images import (
    CHART_IMAGES,
    CHART_VERSION,
    HUB_IMAGE,
    PROXY_IMAGE,
    chart_image_refs,
    chart_image_values,
    image_value,
)
from components.core.config import ConfigError
from components.core.config_load import parse_config
from components.core.nodes import parse_nodes
from components.core.values import PULL_SECRET, build_values, chart_images, registry_notes
from tests.conftest import BASE_CONFIG, DIGEST, GIVEN_REFS, nodes_json, plan_cli, plan_values
from tests.hubconfig import CHART_DIR, hub_config, render

MIRROR = "harbor.lab.example/jupyterhub-mirror"
HUB_REF = f"{MIRROR}/k8s-hub@sha256:{'1' * 64}"
PROXY_REF = f"127.0.0.1:5055/jupyter/configurable-http-proxy@sha256:{'2' * 64}"  # as the e2e tier pins it
USER_IMAGES = f"{BASE_CONFIG['registry']['host']}/{BASE_CONFIG['registry']['project']}/"



def config(images: dict[str, Any] | None = None, **patch: Any) -> dict[str, Any]:
    raw = {**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": dict(GIVEN_REFS)}, **patch}
    if images is not None:
        raw["chart"] = {**raw.get("chart", {}), "images": images}
    return raw


def values(images: dict[str, Any] | None = None, **patch: Any) -> dict[str, Any]:
    return build_values(parse_config(config(images, **patch)), parse_nodes(nodes_json("mixed")), GIVEN_REFS)


def at(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


# --- the table of the chart's defaults is the chart's ---------------------------------------------------


def _chart_values_images(node: Any, path: str = "") -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else key
            if key == "image" and isinstance(value, dict) and "name" in value:
                found[here] = (value["name"], str(value["tag"]))
            else:
                found |= _chart_values_images(value, here)
    return found


def test_the_table_is_the_charts_values_yaml() -> None:
    chart = Path(str(CHART_DIR))
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["version"] == CHART_VERSION
    in_chart = _chart_values_images(yaml.safe_load((chart / "values.yaml").read_text()))
    # singleuser.image is the users' image: ours, never a mirrored chart image
    assert in_chart.pop("singleuser.image")
    assert in_chart == CHART_IMAGES, "the chart's images changed: update components/core/chart_images.py"


def test_every_template_writes_an_image_as_name_colon_tag() -> None:
    """The premise of image_value: each chart image is rendered as ``<name>:<tag>``, nothing else."""
    chart = Path(str(CHART_DIR))
    written: dict[str, str] = {}
    for template in sorted((chart / "templates").rglob("*")):
        if template.is_file():
            for line in template.read_text().splitlines():
                m = re.search(r"image: \"?\{\{ (\S+)\.name \}\}(.*)$", line)
                if m:
                    written[m.group(1).removeprefix(".Values.")] = m.group(2)
    for path in CHART_IMAGES:
        assert written.get(path) in (f":{{{{ .Values.{path}.tag }}}}", f':{{{{ .Values.{path}.tag }}}}"'), path
    config_py = (chart / "files" / "hub" / "jupyterhub_config.py").read_text()
    assert 'image=f"{network_tools_image_name}:{network_tools_image_tag}"' in config_py


def test_image_value_renders_back_as_the_reference() -> None:
    for ref in (HUB_REF, PROXY_REF, "localhost:5000/pause:3.10.1", "traefik:v3.6.12"):
        v = image_value(ref)
        assert f"{v['name']}:{v['tag']}" == ref
    assert image_value(HUB_REF) == {"name": f"{MIRROR}/k8s-hub@sha256", "tag": "1" * 64}
    assert image_value("localhost:5000/pause:3.10.1") == {"name": "localhost:5000/pause", "tag": "3.10.1"}


def test_refs_prefix_keeps_the_last_component_and_the_charts_tag() -> None:
    refs = chart_image_refs(MIRROR, None, None)
    assert refs[HUB_IMAGE] == f"{MIRROR}/k8s-hub:4.4.0"
    assert refs["scheduling.userPlaceholder.image"] == f"{MIRROR}/pause:3.10.1"
    assert refs["proxy.traefik.image"] == f"{MIRROR}/traefik:v3.6.12"
    assert refs["scheduling.userScheduler.image"] == f"{MIRROR}/kube-scheduler:v1.30.14"
    assert list(refs) == list(CHART_IMAGES)
    assert chart_image_refs(None, None, None) == {p: f"{n}:{t}" for p, (n, t) in CHART_IMAGES.items()}
    assert chart_image_values(chart_image_refs(None, None, None)) == {}


# --- config ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (
            {"registry": "https://harbor.lab.example/m"},
            "gpu-jupyterhub:chart.images.registry: a registry host[:port][/path] without a scheme",
        ),
        (
            {"registry": "harbor.lab.example/m/"},
            "gpu-jupyterhub:chart.images.registry: a registry host[:port][/path] without a trailing slash",
        ),
        (
            {"registry": "harbor.lab.example/m:4.4.0"},
            "gpu-jupyterhub:chart.images.registry: a registry prefix without a tag or digest",
        ),
        (
            {"registry": "harbor/mirror"},
            "gpu-jupyterhub:chart.images.registry: must start with a registry host[:port] with a dot or a port",
        ),
        (
            {"registry": "harbor.lab.example/Mirror"},
            "gpu-jupyterhub:chart.images.registry: path components of lower-case letters and digits",
        ),
        (
            {"registry": "harbor.lab.example//m"},
            "gpu-jupyterhub:chart.images.registry: path components of lower-case letters and digits",
        ),
        (
            {"hub": f"{MIRROR}/k8s-hub:4.4.0"},
            "gpu-jupyterhub:chart.images.hub: a digest-pinned reference host[:port]/path/name@sha256:<64 hex>",
        ),
        (
            {"proxy": f"configurable-http-proxy@{DIGEST}"},
            "gpu-jupyterhub:chart.images.proxy: a digest-pinned reference host[:port]/path/name@sha256:<64 hex>",
        ),
        (
            {"proxy": f"jupyterhub/configurable-http-proxy@{DIGEST}"},  # Docker Hub's user "jupyterhub"
            "gpu-jupyterhub:chart.images.proxy: a digest-pinned reference",
        ),
        (
            {"hub": f"{MIRROR}/k8s-hub@sha256:abc"},
            "gpu-jupyterhub:chart.images.hub: a digest-pinned reference",
        ),
        ({"tag": "4.4.0"}, "gpu-jupyterhub:chart.images.tag: unknown key; allowed here: hub, proxy, registry"),
    ],
)
def test_bad_chart_images_name_the_key_and_what_is_allowed(images: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config(images))
    assert message in str(err.value)


def test_a_prefix_needs_the_chart_version_the_table_describes() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config(None, chart={"version": "4.5.0", "images": {"registry": MIRROR}}))
    assert "chart.images.registry takes the image names and tags of chart 4.4.0" in str(err.value)
    assert "chart.version is '4.5.0'" in str(err.value)
    # explicit digests need no table
    parse_config(config(None, chart={"version": "4.5.0", "images": {"hub": HUB_REF}}))


@pytest.mark.parametrize(
    "images",
    [
        {"registry": "localhost:5000"},
        {"registry": "harbor:443/jupyterhub-mirror"},
        {"registry": "127.0.0.1:5055/jupyter/chart-mirror"},
        {"registry": MIRROR, "hub": HUB_REF, "proxy": PROXY_REF},
        {"hub": f"localhost:5000/k8s-hub@{DIGEST}"},
    ],
)
def test_good_chart_images_are_accepted(images: dict[str, Any]) -> None:
    assert parse_config(config(images)).chart.images.model_dump(exclude_none=True) == images


# --- values ---------------------------------------------------------------------------------------------


def test_without_the_key_the_values_are_what_they_were() -> None:
    before = values()
    for empty in ({}, {"registry": None, "hub": None, "proxy": None}):
        assert render_values(values(empty)) == render_values(before)
    assert "imagePullSecrets" not in before
    for path in CHART_IMAGES:
        assert at(before, path) is None, path
    assert before["singleuser"]["image"]["pullSecrets"] == [PULL_SECRET]


def test_prefix_only_moves_every_chart_image() -> None:
    v = values({"registry": MIRROR})
    for path, (name, tag) in CHART_IMAGES.items():
        assert at(v, path) == {"name": f"{MIRROR}/{name.rsplit('/', 1)[-1]}", "tag": tag}, path
    assert v["imagePullSecrets"] == [PULL_SECRET]
    # named once: the chart hands the top-level list to KubeSpawner as well
    assert v["singleuser"]["image"]["pullSecrets"] == []
    # and nothing else of the values changed
    assert v["scheduling"]["userScheduler"]["enabled"] is False
    assert v["prePuller"]["hook"]["enabled"] is False
    assert v["proxy"]["service"] == {"type": "ClusterIP"} and "extraPodSpec" in v["proxy"]["chp"]


def test_explicit_refs_only_pin_hub_and_proxy() -> None:
    v = values({"hub": HUB_REF, "proxy": PROXY_REF})
    assert v["hub"]["image"] == {"name": f"{MIRROR}/k8s-hub@sha256", "tag": "1" * 64}
    assert v["proxy"]["chp"]["image"] == image_value(PROXY_REF)
    for path in set(CHART_IMAGES) - {HUB_IMAGE, PROXY_IMAGE}:
        assert at(v, path) is None, path
    assert v["imagePullSecrets"] == [PULL_SECRET]


def test_explicit_refs_win_over_the_prefix() -> None:
    v = values({"registry": MIRROR, "hub": HUB_REF, "proxy": PROXY_REF})
    assert v["hub"]["image"] == image_value(HUB_REF)
    assert v["proxy"]["chp"]["image"] == image_value(PROXY_REF)
    assert v["prePuller"]["pause"]["image"] == {"name": f"{MIRROR}/pause", "tag": "3.10.1"}


def test_without_registry_credentials_no_pull_secret_is_named() -> None:
    v = values({"registry": MIRROR}, registry={"host": "harbor.lab.example"})
    assert "imagePullSecrets" not in v
    assert v["singleuser"]["image"]["pullSecrets"] == []
    assert v["hub"]["image"]["name"] == f"{MIRROR}/k8s-hub"


def test_a_mirror_the_pull_secret_does_not_cover_is_noted() -> None:
    cfg = parse_config(config({"registry": "mirror.lab.example/jh", "proxy": PROXY_REF}))
    [note] = [n for n in registry_notes(cfg) if n.startswith("chart.images")]
    assert "registry.host (harbor.lab.example) only" in note
    assert "on 127.0.0.1:5055 and mirror.lab.example must pull without them" in note
    assert not [n for n in registry_notes(parse_config(config({"registry": MIRROR}))) if "chart.images" in n]


# --- the real chart -------------------------------------------------------------------------------------


def _deployment(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name)["spec"]["template"][
        "spec"
    ]


@pytest.mark.parametrize(
    ("images", "hub", "proxy"),
    [
        ({"registry": MIRROR}, f"{MIRROR}/k8s-hub:4.4.0", f"{MIRROR}/configurable-http-proxy:5.2.0"),
        ({"registry": MIRROR, "hub": HUB_REF, "proxy": PROXY_REF}, HUB_REF, PROXY_REF),
        ({"hub": HUB_REF}, HUB_REF, "quay.io/jupyterhub/configurable-http-proxy:5.2.0"),
        ({}, "quay.io/jupyterhub/k8s-hub:4.4.0", "quay.io/jupyterhub/configurable-http-proxy:5.2.0"),
    ],
    ids=["prefix", "prefix-and-digests", "hub-digest", "defaults"],
)
def test_the_chart_renders_the_hub_and_proxy_images(images: dict[str, Any], hub: str, proxy: str) -> None:
    objects = render(values(images))
    pull = [{"name": PULL_SECRET}]
    for name, ref in (("hub", hub), ("proxy", proxy)):
        spec = _deployment(objects, name)
        assert spec["containers"][0]["image"] == ref, name
        assert spec.get("imagePullSecrets") == (pull if images else None), name


def test_every_chart_pod_pulls_from_the_mirror_with_every_feature_on() -> None:
    """Whatever is switched on later (pre-pullers, user scheduler, placeholders, autohttps, the metadata
    block) comes from the mirror too, with the pull secret."""
    v = values({"registry": MIRROR, "hub": HUB_REF})
    v["scheduling"]["userScheduler"]["enabled"] = True
    v["scheduling"]["userPlaceholder"] |= {"enabled": True, "replicas": 1}
    v["prePuller"]["hook"]["enabled"] = True
    v["prePuller"]["continuous"]["enabled"] = True
    v["proxy"]["https"] = {"enabled": True, "type": "letsencrypt", "hosts": ["jupyter.lab.example"]}
    v["proxy"]["https"]["letsencrypt"] = {"contactEmail": "admin@lab.example"}
    v["singleuser"]["cloudMetadata"] = {"blockWithIptables": True}
    # The chart's pre-pullers write the users' image as name:tag too; ours is a whole reference with tag "", which
    # only KubeSpawner reads (the program keeps those pre-pullers off), so split it the same way here.
    v["singleuser"]["image"] |= image_value(v["singleuser"]["image"]["name"])
    pods = [
        o["spec"]["template"]["spec"] if "template" in o["spec"] else o["spec"]
        for o in render(v)
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "Pod")
    ]
    images = {
        c["image"]
        for spec in pods
        for c in spec.get("containers", []) + spec.get("initContainers", [])
        if not c["image"].startswith(USER_IMAGES)
    }
    assert images == set(chart_image_refs(MIRROR, HUB_REF, None).values())
    for spec in pods:
        assert {"name": PULL_SECRET} in spec["imagePullSecrets"]
    # network-tools also goes into user pods, as the hub's jupyterhub_config.py builds them
    c = hub_config(v)
    assert [x.image for x in c.KubeSpawner.init_containers] == [f"{MIRROR}/k8s-network-tools:4.4.0"]


@pytest.mark.parametrize("images", [{}, {"registry": MIRROR}], ids=["defaults", "mirror"])
def test_user_pods_name_the_pull_secret_once(images: dict[str, Any]) -> None:
    """The chart's jupyterhub_config.py joins imagePullSecrets and singleuser.image.pullSecrets as they are."""
    assert hub_config(values(images)).KubeSpawner.image_pull_secrets == [PULL_SECRET]


def test_the_values_pass_the_charts_schema() -> None:
    from tests.test_values_schema import SCHEMA, validate

    if not SCHEMA.exists():
        pytest.skip(f"z2jh 4.4.0 schema not found at {SCHEMA}")
    for images in ({"registry": MIRROR}, {"hub": HUB_REF, "proxy": PROXY_REF}, {"registry": MIRROR, "hub": HUB_REF}):
        validate(values(images))


# --- the plan -------------------------------------------------------------------------------------------


def _stack_file(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(yaml.safe_dump({"config": {f"gpu-jupyterhub:{k}": v for k, v in raw.items()}}))
    return path


def _section(table: str) -> list[str]:
    lines = table.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("Chart images"))
    end = lines.index("", start)
    return [" ".join(line.split()) for line in lines[start:end]]


def test_the_plan_table_shows_the_chart_images(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.json"
    nodes.write_text(nodes_json("mixed"))
    default = plan_cli("--stack-file", str(_stack_file(tmp_path, config())), "--nodes", str(nodes))
    assert default.returncode == 0, default.stderr
    assert _section(default.stdout)[:3] == [
        "Chart images (from the chart's defaults):",
        "hub.image quay.io/jupyterhub/k8s-hub:4.4.0",
        "proxy.chp.image quay.io/jupyterhub/configurable-http-proxy:5.2.0",
    ]
    assert len(_section(default.stdout)) == 1 + len(CHART_IMAGES)

    stack = _stack_file(tmp_path, config({"registry": MIRROR, "hub": HUB_REF}))
    table = plan_cli("--stack-file", str(stack), "--nodes", str(nodes))
    assert table.returncode == 0, table.stderr
    section = _section(table.stdout)
    assert section[:3] == [
        "Chart images (from chart.images):",
        f"hub.image {MIRROR}/k8s-hub@sha256:111111111111…",
        f"proxy.chp.image {MIRROR}/configurable-http-proxy:5.2.0",
    ]
    assert f"prePuller.pause.image {MIRROR}/pause:3.10.1" in section
    assert max(len(line) for line in table.stdout.split("\n")) <= 120
    wide = plan_cli("--stack-file", str(stack), "--nodes", str(nodes), "--wide")
    assert f"hub.image {HUB_REF}" in _section(wide.stdout)

    # the same references in --output values, from the same function
    planned = plan_values(stack, nodes)
    cfg = parse_config(config({"registry": MIRROR, "hub": HUB_REF}))
    for path, ref in chart_images(cfg).items():
        image = at(planned, path)
        assert f"{image['name']}:{image['tag']}" == ref, path
    assert planned["imagePullSecrets"] == [PULL_SECRET]


# --- the program ----------------------------------------------------------------------------------------


def test_the_release_gets_the_plans_values_after_the_pull_secret(tmp_path: Path) -> None:
    from tests.test_program import run

    raw = config({"registry": MIRROR, "hub": HUB_REF, "proxy": PROXY_REF})
    r = run(copy.deepcopy(raw))
    release = r.one("kubernetes:helm.sh/v3:Release")
    hub = r.one("gpu-jupyterhub:hub:JupyterHub")
    secret = r.by_name("harbor-pull-secret")
    assert secret.inputs["type"] == "kubernetes.io/dockerconfigjson"
    assert secret.inputs["metadata"]["name"] == PULL_SECRET
    # The pull Secret exists before the chart's pods need it: the hub component depends on it, and the SDK
    # registers the Release only once its parent's URN resolves, which waits for the parent's dependencies.
    assert any(urn.endswith("::harbor-pull-secret") for urn in hub.depends_on), hub.depends_on
    assert release.parent.endswith("gpu-jupyterhub:hub:JupyterHub::hub")
    nodes = tmp_path / "nodes.json"
    nodes.write_text(nodes_json("mixed"))
    stack = copy.deepcopy(raw)
    stack["auth"]["oidc"]["clientSecret"] = {"secure": "v1:abc"}
    stack["registry"]["password"] = {"secure": "v1:def"}
    assert plan_values(_stack_file(tmp_path, stack), nodes) == json.loads(json.dumps(release.inputs["values"]))
