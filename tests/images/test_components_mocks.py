"""ImageBuilds, PrePuller and RegistryPullSecret under Pulumi mocks: build order, the
registry password stays secret, digests reach ``refs``, DaemonSets land where they should."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import kubernetes_validate
import pulumi
import pulumi_kubernetes as kubernetes
import pytest
from pulumi.runtime import rpc

from components.core.image_specs import IMAGE_SPECS, build_order, gpu_images

PASSWORD = "pl41n-robot-s3cret"
REGISTRY = "harbor.test:8443"


class Mocks(pulumi.runtime.Mocks):
    """Records every resource; docker Images get a repo digest derived from their inputs,
    so a changed input (e.g. a new base digest) changes the digest as a real build would."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        with self.lock:
            self.created.append(args)
        state = dict(args.inputs)
        if args.typ == "docker:index/image:Image":
            name = args.inputs["imageName"]
            repo = name.rsplit(":", 1)[0]
            build_args = args.inputs.get("build", {}).get("args", {})
            digest = hashlib.sha256(repr((name, sorted(build_args.items()))).encode()).hexdigest()
            state["repoDigest"] = f"{repo}@sha256:{digest}"
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    def of_type(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.created if r.typ == typ]


@pytest.fixture
def mocks() -> Mocks:
    m = Mocks()
    pulumi.runtime.set_mocks(m, project="gpu-jupyterhub", stack="test", preview=False)
    return m


def plain_occurrences(value: Any, needle: str) -> list[str]:
    """Places where ``needle`` appears NOT wrapped as a Pulumi secret."""
    if rpc.is_rpc_secret(value):
        return []
    if isinstance(value, dict):
        return [f"{k}.{p}" for k, v in value.items() for p in plain_occurrences(v, needle)]
    if isinstance(value, list | tuple):
        return [f"[{i}].{p}" for i, v in enumerate(value) for p in plain_occurrences(v, needle)]
    return ["value"] if isinstance(value, str) and needle in value else []


def secret_occurrences(value: Any, needle: str) -> int:
    if rpc.is_rpc_secret(value):
        return int(needle in repr(rpc.unwrap_rpc_secret(value)))
    if isinstance(value, dict):
        return sum(secret_occurrences(v, needle) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(secret_occurrences(v, needle) for v in value)
    return 0


def _builds(**overrides: Any):
    from components.image_builds import ImageBuilds, ImageBuildsArgs

    args = ImageBuildsArgs(
        registry=REGISTRY,
        project="jupyter",
        username="robot$jupyter+builder",
        password=overrides.pop("password", PASSWORD),
        build=overrides.pop("build", True),
        base_image="harbor.test:8443/proxy/library/debian@sha256:" + "0" * 64,
        trixie_base_image="harbor.test:8443/proxy/library/debian@sha256:" + "7" * 64,
        images_dir="images",
        context_dir=".",
        version="1.2.3",
        **overrides,
    )
    return ImageBuilds("images", args)


@pulumi.runtime.test
def test_images_build_in_from_chain_order_with_parent_digests(mocks: Mocks):
    comp = _builds()

    def check(refs: dict[str, str]) -> None:
        images = mocks.of_type("docker:index/image:Image")
        with_children = {s.base for s in IMAGE_SPECS if s.base}
        assert with_children == {"jupyter-ml-cpu", "jupyter-ml-gpu"}
        # every image, plus the stack stage of each image that another is built FROM
        assert len(images) == len(IMAGE_SPECS) + len(with_children)
        by_image = {r.name.removeprefix("images-"): r for r in images}
        names = [r.name.removeprefix("images-") for r in images]
        for spec in IMAGE_SPECS:
            inputs = by_image[spec.name].inputs
            assert inputs["imageName"] == f"{REGISTRY}/jupyter/{spec.name}:1.2.3"
            assert inputs["build"]["dockerfile"].endswith(f"images/{spec.name}/Dockerfile")
            assert inputs["build"]["args"]["IMAGE_VERSION"] == "1.2.3"
            assert "target" not in inputs["build"], "the image users run is the Dockerfile's final stage"
            base = inputs["build"]["args"]["BASE_IMAGE"]
            if spec.name in with_children:
                stack = by_image[f"{spec.name}-stack"].inputs
                assert stack["imageName"] == f"{REGISTRY}/jupyter/{spec.name}:1.2.3-stack"
                assert stack["build"]["target"] == "stack"
                assert stack["build"]["args"] == inputs["build"]["args"]
                assert names.index(f"{spec.name}-stack") < names.index(spec.name)
            if spec.base:
                # registered after its base's stack, built FROM exactly that stage's pushed digest (the
                # base without its examples), never the base users run
                stack_digest = (
                    f"{REGISTRY}/jupyter/{spec.base}@sha256:"
                    + hashlib.sha256(
                        repr(
                            (
                                f"{REGISTRY}/jupyter/{spec.base}:1.2.3-stack",
                                sorted(by_image[spec.base].inputs["build"]["args"].items()),
                            )
                        ).encode()
                    ).hexdigest()
                )
                assert names.index(f"{spec.base}-stack") < names.index(spec.name)
                assert base == stack_digest != refs[spec.base]
            else:  # the outside base of its Debian release (jupyter-rust: trixie's)
                digit = "7" if spec.debian == "trixie" else "0"
                assert base == "harbor.test:8443/proxy/library/debian@sha256:" + digit * 64
        assert set(refs) == set(build_order())
        for name, ref in refs.items():
            assert ref.startswith(f"{REGISTRY}/jupyter/{name}@sha256:") and len(ref.split(":")[-1]) == 64

    assert comp.gpu_images == gpu_images()
    return comp.refs.apply(check)


@pulumi.runtime.test
def test_registry_password_only_travels_as_secret(mocks: Mocks):
    comp = _builds()

    def check(_: Any) -> None:
        assert mocks.created, "no resources registered"
        leaks = {r.name: plain_occurrences(r.inputs, PASSWORD) for r in mocks.created}
        assert not any(leaks.values()), f"password in plain text: {leaks}"
        images = mocks.of_type("docker:index/image:Image")
        # ...but it does reach every image's registry login, as a secret
        assert all(secret_occurrences(r.inputs, PASSWORD) == 1 for r in images)

    return comp.refs.apply(check)


def test_plain_occurrence_detector_detects() -> None:
    """The leak check above must be able to fail."""
    assert plain_occurrences({"registry": {"password": PASSWORD}}, PASSWORD) == ["registry.password.value"]
    wrapped = {rpc._special_sig_key: rpc._special_secret_sig, "value": PASSWORD}
    assert plain_occurrences({"registry": {"password": wrapped}}, PASSWORD) == []


@pulumi.runtime.test
def test_given_refs_pass_through_without_builds(mocks: Mocks):
    given = {n: f"{REGISTRY}/jupyter/{n}@sha256:" + "c" * 64 for n in build_order()}
    comp = _builds(build=False, given_refs=given)

    def check(refs: dict[str, str]) -> None:
        assert refs == given
        assert not mocks.of_type("docker:index/image:Image")

    return comp.refs.apply(check)


class PreviewMocks(Mocks):
    """As in a real preview: the provider does not build, so repo digests are unknown."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        with self.lock:
            self.created.append(args)
        return f"{args.name}-id", dict(args.inputs)


@pulumi.runtime.test
def test_preview_leaves_derived_base_unknown_without_failing():
    mocks = PreviewMocks()
    pulumi.runtime.set_mocks(mocks, project="gpu-jupyterhub", stack="test", preview=True)
    comp = _builds()

    def check(_: Any) -> None:
        names = {r.name for r in mocks.of_type("docker:index/image:Image")}
        # the root images are registered; derived ones wait for their base's digest
        assert {"images-jupyter-ml-cpu", "images-jupyter-ml-gpu"} <= names

    return pulumi.Output.all(*[img.urn for img in comp.images.values()]).apply(check)


def test_given_refs_must_be_digest_pinned(mocks: Mocks) -> None:
    given = {n: f"{REGISTRY}/jupyter/{n}@sha256:" + "c" * 64 for n in build_order()}
    given["jupyter-fine-tuning"] = f"{REGISTRY}/jupyter/jupyter-fine-tuning:latest"
    with pytest.raises(ValueError, match="jupyter-fine-tuning"):
        _builds(build=False, given_refs=given)


@pulumi.runtime.test
def test_prepuller_daemonsets_from_build_refs(mocks: Mocks):
    from components.core.prepull_spec import GPU_NODE_LABEL
    from components.prepull import PrePuller, PrePullerArgs

    comp = _builds()
    provider = kubernetes.Provider("k8s", kubeconfig="{}")
    tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    puller = PrePuller(
        "prepull",
        PrePullerArgs(
            refs=comp.ref_outputs,
            gpu_images=comp.gpu_images,
            namespace="jhub",
            provider=provider,
            pull_secret="harbor-pull",
            gpu_tolerations=tolerations,
            user_node_selector={"hub.jupyter.org/node-purpose": "user"},
        ),
    )
    assert set(puller.daemonsets) == {"cpu", "gpu"}

    def check(values: list[Any]) -> None:
        refs = values[0]
        sets = mocks.of_type("kubernetes:apps/v1:DaemonSet")
        assert len(sets) == 2
        for r in sets:
            assert r.provider and r.provider.split("::")[-2] == "k8s", "DaemonSet must use the explicit provider"
            manifest = {"apiVersion": "apps/v1", "kind": "DaemonSet", **r.inputs}
            kubernetes_validate.validate(manifest, "1.30", strict=True)
            pod = r.inputs["spec"]["template"]["spec"]
            pulled = {c["image"] for c in pod["initContainers"]}
            exprs = pod.get("affinity", {}).get("nodeAffinity", {})
            exprs = exprs["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
            keys = {e["key"] for e in exprs["matchExpressions"]}
            if r.inputs["metadata"]["name"].endswith("-gpu"):
                gpu = ("jupyter-ml-gpu", "jupyter-fine-tuning", "jupyter-jax", "jupyter-rapids")
                assert pulled == {refs[n] for n in gpu}, "GPU images on GPU nodes only, stack stages on none"
                assert GPU_NODE_LABEL in keys and pod["tolerations"] == tolerations
            else:
                cpu = ("jupyter-ml-cpu", "jupyter-agent-dev", "jupyter-rust")  # all built here (IMAGE_SPECS)
                assert pulled == {refs[n] for n in cpu}, "CPU images everywhere"
                assert GPU_NODE_LABEL not in keys and "tolerations" not in pod

    return pulumi.Output.all(comp.refs, *[ds.urn for ds in puller.daemonsets.values()]).apply(check)


@pulumi.runtime.test
def test_registry_pull_secret_is_secret_and_uses_provider(mocks: Mocks):
    from components.image_builds import RegistryPullSecret, RegistryPullSecretArgs

    provider = kubernetes.Provider("k8s", kubeconfig="{}")
    comp = RegistryPullSecret(
        "pull",
        RegistryPullSecretArgs(
            registry=REGISTRY,
            username="robot$jupyter+pull",
            password=pulumi.Output.secret(PASSWORD),
            namespace="jhub",
            provider=provider,
        ),
    )

    def check(name: str) -> None:
        assert name == "harbor-pull"
        (secret,) = mocks.of_type("kubernetes:core/v1:Secret")
        assert secret.inputs["type"] == "kubernetes.io/dockerconfigjson"
        assert secret.provider and secret.provider.split("::")[-2] == "k8s"
        assert not plain_occurrences(secret.inputs, PASSWORD)
        assert secret_occurrences(secret.inputs, "auths") == 1

    return comp.secret_name.apply(check)
