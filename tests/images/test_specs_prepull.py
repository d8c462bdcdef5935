"""Pure parts: FROM-chain order, digest checks, pre-pull DaemonSet manifests, pull secret."""

from __future__ import annotations

import base64
import json
import re

import kubernetes_validate
import pytest

from components.core.image_specs import (
    CUDA12,
    CUDA13,
    IMAGE_SPECS,
    ImageSpec,
    build_order,
    check_digest_refs,
    gpu_images,
    platform_expressions,
)
from components.core.prepull_spec import GPU_NODE_LABEL, container_name, image_groups, prepull_daemonsets
from components.image_builds import dockerconfigjson, repository
from tests.images.docker_env import IMAGES

DIGEST = "sha256:" + "ab" * 32
REFS = {s.name: f"harbor.test/jupyter/{s.name}@{DIGEST}" for s in IMAGE_SPECS}
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
USER_SELECTOR = {"hub.jupyter.org/node-purpose": "user"}


def test_build_order_follows_from_chain() -> None:
    order = build_order()
    assert sorted(order) == sorted(s.name for s in IMAGE_SPECS)
    for spec in IMAGE_SPECS:
        if spec.base:
            assert order.index(spec.base) < order.index(spec.name)


def test_build_order_independent_of_listing_order() -> None:
    reordered = tuple(reversed(IMAGE_SPECS))
    order = build_order(reordered)
    assert order.index("jupyter-ml-gpu") < order.index("jupyter-fine-tuning")
    assert order.index("jupyter-ml-cpu") < order.index("jupyter-agent-dev")


def test_build_order_rejects_cycles_and_unknown_bases() -> None:
    with pytest.raises(ValueError, match="cycle"):
        build_order([ImageSpec("a", "b", False, ""), ImageSpec("b", "a", False, "")])
    with pytest.raises(ValueError, match="unknown image 'nope'"):
        build_order([ImageSpec("a", "nope", False, "")])
    with pytest.raises(ValueError, match="duplicate"):
        build_order([ImageSpec("a", None, False, ""), ImageSpec("a", None, False, "")])


def test_specs_match_dockerfiles() -> None:
    """The spec's FROM chain and GPU flag must be what the Dockerfiles say."""
    for spec in IMAGE_SPECS:
        text = (IMAGES / spec.name / "Dockerfile").read_text()
        default_base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
        assert default_base, spec.name
        if spec.base:
            assert default_base.group(1).split("/")[-1].split(":")[0] == spec.base
        else:
            assert default_base.group(1).startswith(f"debian:{spec.debian}")
        flag = re.search(r'io\.gpu-jupyterhub\.gpu-required="(true|false)"', text)
        assert flag and (flag.group(1) == "true") == spec.gpu_required, spec.name
    assert set(gpu_images()) == {"jupyter-ml-gpu", "jupyter-fine-tuning", "jupyter-jax", "jupyter-rapids"}


def test_digest_refs_are_required() -> None:
    assert check_digest_refs(REFS, build_order()) == REFS
    bad = dict(REFS, **{"jupyter-ml-gpu": "harbor.test/jupyter/jupyter-ml-gpu:latest"})
    with pytest.raises(ValueError, match="jupyter-ml-gpu"):
        check_digest_refs(bad, build_order())
    short = dict(REFS, **{"jupyter-ml-cpu": "h/p/jupyter-ml-cpu@sha256:abc"})
    with pytest.raises(ValueError, match="jupyter-ml-cpu"):
        check_digest_refs(short, build_order())
    missing = {k: v for k, v in REFS.items() if k != "jupyter-agent-dev"}
    with pytest.raises(ValueError, match="jupyter-agent-dev"):
        check_digest_refs(missing, build_order())


def test_repository_and_dockerconfigjson() -> None:
    assert repository("harbor.test:8443/", "jupyter", "x") == "harbor.test:8443/jupyter/x"
    text = dockerconfigjson("harbor.test", "robot$jupyter", "s3cr:et")
    entry = json.loads(text)["auths"]["harbor.test"]
    assert base64.b64decode(entry["auth"]).decode() == "robot$jupyter:s3cr:et"
    assert entry["username"] == "robot$jupyter" and entry["password"] == "s3cr:et"
    assert dockerconfigjson("harbor.test", "u", "p") == dockerconfigjson("harbor.test", "u", "p")


def _by_group(manifests: list[dict]) -> dict[str, dict]:
    return {m["metadata"]["labels"]["app.kubernetes.io/component"]: m for m in manifests}


def _required_terms(ds: dict) -> list[dict]:
    affinity = ds["spec"]["template"]["spec"].get("affinity", {})
    node = affinity.get("nodeAffinity", {})
    return node.get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", [])


def test_prepull_groups_and_affinity() -> None:
    manifests = prepull_daemonsets(REFS, gpu_images(), "jhub", "harbor-pull", GPU_TOLERATIONS, USER_SELECTOR)
    groups = _by_group(manifests)
    assert set(groups) == {"cpu", "gpu"}

    def pulled(ds: dict) -> set[str]:
        return {c["image"] for c in ds["spec"]["template"]["spec"]["initContainers"]}

    assert pulled(groups["cpu"]) == {REFS["jupyter-ml-cpu"], REFS["jupyter-agent-dev"], REFS["jupyter-rust"]}
    gpu_names = ("jupyter-ml-gpu", "jupyter-fine-tuning", "jupyter-jax", "jupyter-rapids")
    assert pulled(groups["gpu"]) == {REFS[n] for n in gpu_names}

    cpu_terms, gpu_terms = _required_terms(groups["cpu"]), _required_terms(groups["gpu"])
    gpu_expr = {"key": GPU_NODE_LABEL, "operator": "In", "values": ["true"]}
    user_expr = {"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}
    # Terms are ORed, a term's expressions ANDed. GPU images: user nodes that have a GPU, in every
    # term (the terms differ only in the driver labels: tests/test_drivers.py checks those).
    assert len(gpu_terms) == 3
    for term in gpu_terms:
        assert gpu_expr in term["matchExpressions"] and user_expr in term["matchExpressions"]
    assert len(cpu_terms) == 1 and cpu_terms[0]["matchExpressions"] == [user_expr, *platform_expressions()]

    assert groups["gpu"]["spec"]["template"]["spec"]["tolerations"] == GPU_TOLERATIONS
    assert "tolerations" not in groups["cpu"]["spec"]["template"]["spec"]
    for ds in manifests:
        pod = ds["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "harbor-pull"}]
        assert ds["metadata"]["namespace"] == "jhub"
        # the holding container reuses an image of its group: nothing else to pull
        assert pod["containers"][0]["image"] in pulled(ds)


def test_prepull_without_user_selector_and_only_cpu_images() -> None:
    cpu_only = {k: v for k, v in REFS.items() if k not in gpu_images()}
    manifests = prepull_daemonsets(cpu_only, gpu_images(), "jhub", None, GPU_TOLERATIONS, None)
    assert len(manifests) == 1
    pod = manifests[0]["spec"]["template"]["spec"]
    assert "imagePullSecrets" not in pod
    # no user selector: only the platform the images are built for
    assert _required_terms(manifests[0]) == [{"matchExpressions": platform_expressions()}]
    gpu_only = prepull_daemonsets(
        {k: v for k, v in REFS.items() if k in gpu_images()},
        gpu_images(),
        "jhub",
        None,
        GPU_TOLERATIONS,
        None,
    )
    terms = _required_terms(gpu_only[0])
    assert terms and all(
        t["matchExpressions"][0] == {"key": GPU_NODE_LABEL, "operator": "In", "values": ["true"]} for t in terms
    )


def test_prepull_user_tolerations_and_pause_image() -> None:
    user_tol = [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}]
    manifests = prepull_daemonsets(
        REFS,
        gpu_images(),
        "jhub",
        None,
        GPU_TOLERATIONS,
        USER_SELECTOR,
        user_tolerations=user_tol,
        pause_image="harbor.test/proxy/pause@" + DIGEST,
    )
    groups = _by_group(manifests)
    assert groups["cpu"]["spec"]["template"]["spec"]["tolerations"] == user_tol
    assert groups["gpu"]["spec"]["template"]["spec"]["tolerations"] == user_tol + GPU_TOLERATIONS
    hold = groups["cpu"]["spec"]["template"]["spec"]["containers"][0]
    assert hold["image"].startswith("harbor.test/proxy/pause@") and "command" not in hold


@pytest.mark.parametrize("with_selector", [True, False])
def test_prepull_manifests_validate_strictly(with_selector: bool) -> None:
    manifests = prepull_daemonsets(
        REFS, gpu_images(), "jhub", "harbor-pull", GPU_TOLERATIONS, USER_SELECTOR if with_selector else None
    )
    for ds in manifests:
        kubernetes_validate.validate(ds, "1.30", strict=True)
        assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()


def test_prepull_invalid_field_is_caught_by_validation() -> None:
    """Guard for the strict validation above: a misspelt field must fail it."""
    ds = prepull_daemonsets(REFS, gpu_images(), "jhub", None, GPU_TOLERATIONS, None)[0]
    ds["spec"]["template"]["spec"]["initContainers"][0]["imagePulPolicy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, "1.30", strict=True)


def test_container_names_are_dns_labels() -> None:
    for name in ["jupyter-ml-cpu", "Weird_Name.v2", "x" * 80]:
        got = container_name(name)
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", got) and len(got) <= 63


def test_image_groups() -> None:
    assert image_groups(["b", "a", "g"], {"g": CUDA13}) == {"cpu": ["a", "b"], "gpu": ["g"]}
    assert image_groups(["g"], {"g": CUDA13}) == {"gpu": ["g"]}
    assert image_groups(["g", "g12", "c"], {"g": CUDA13, "g12": CUDA12}) == {
        "cpu": ["c"],
        "gpu": ["g"],
        "gpu-cu12": ["g12"],
    }
