"""Build the Jupyter images, push them to Harbor and hand out digest-pinned references.

One ``pulumi_docker.Image`` per image in ``components.core.image_specs``, in FROM-chain order:
a derived image gets its parent's *stack* digest as ``BASE_IMAGE`` (the parent's Dockerfile
up to its ``stack`` stage, pushed as ``<version>-stack``: everything but the examples), so a
rebuilt base rebuilds its children, a notebook-only change does not rerun their package
layers, and every reference that reaches the profiles names a digest, never a moving tag.
With ``build=False`` the component only validates and passes on given references (for
clusters whose images are built elsewhere).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as kubernetes

from components.core.image_specs import (
    IMAGE_ARCHITECTURES,
    IMAGE_OS,
    IMAGE_SPECS,
    STACK_TARGET,
    CudaVariant,
    ImageSpec,
    build_order,
    check_digest_refs,
    gpu_images,
    parents,
    specs_by_name,
)


@dataclass
class ImageBuildsArgs:
    """Everything ImageBuilds needs; ``password`` should be a Pulumi secret (it is made one
    here in any case).

    registry: Harbor host[:port]; images go to ``<registry>/<project>/<name>``.
    given_refs: used when ``build`` is False: image name -> ``repo@sha256:<64 hex>``.
    base_image: BASE_IMAGE of the images with no base in the set (a Debian bookworm
        reference, typically Harbor's proxy cache of it, ideally by digest).
    images_dir: the ``images/`` folder; context_dir: the build context (repository root).
    """

    registry: str
    project: str
    username: pulumi.Input[str]
    password: pulumi.Input[str]
    build: bool = True
    given_refs: dict[str, str] = field(default_factory=dict)
    base_image: str = "debian:bookworm-slim"
    # BASE_IMAGE of the images built on Debian trixie (ImageSpec.debian), e.g. jupyter-rust
    trixie_base_image: str = "debian:trixie-slim"
    images_dir: str = "images"
    context_dir: str = "."
    version: str = "0.0.0-dev"
    source: str = "gpu-jupyterhub"
    platform: str = f"{IMAGE_OS}/{IMAGE_ARCHITECTURES[0]}"
    # Network of the RUN steps ("host" where the builder's default bridge has no egress).
    build_network: str | None = None
    specs: tuple[ImageSpec, ...] = IMAGE_SPECS


def repository(registry: str, project: str, name: str) -> str:
    """``<registry>/<project>/<name>``, the Harbor repository of one image."""
    return f"{registry.rstrip('/')}/{project.strip('/')}/{name}"


def dockerconfigjson(registry: str, username: str, password: str) -> str:
    """The ``.dockerconfigjson`` text of an imagePullSecret for one registry.

    Kubelet reads ``auth`` (base64 of ``user:password``); username/password are kept too
    for tools that read those. Sorted keys: the same input gives the same text, so the
    Secret does not show a diff on every ``pulumi up``.
    """
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    doc = {"auths": {registry: {"username": username, "password": password, "auth": auth}}}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


class ImageBuilds(pulumi.ComponentResource):
    """Builds and pushes the images (or takes given ones); ``refs`` maps name -> digest ref."""

    refs: pulumi.Output[dict[str, str]]
    ref_outputs: dict[str, pulumi.Output[str]]
    images: dict[str, docker.Image]
    gpu_images: dict[str, CudaVariant]

    def __init__(self, name: str, args: ImageBuildsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-jupyterhub:images:ImageBuilds", name, None, opts)
        specs = specs_by_name(args.specs)
        order = build_order(args.specs)
        self.gpu_images = gpu_images(args.specs)
        self.images = {}
        self.ref_outputs = {}

        if not args.build:
            given = check_digest_refs(args.given_refs, order)
            for image in order:
                self.ref_outputs[image] = pulumi.Output.from_input(given[image])
        else:
            # Secret even if the caller passed a plain string: it then never shows up in
            # the state or the logs in plain text.
            password = pulumi.Output.secret(args.password)
            registry = docker.RegistryArgs(server=args.registry, username=args.username, password=password)
            build = _Builder(self, name, args, registry, os.path.abspath(args.context_dir))
            with_children = parents(args.specs)
            stacks: dict[str, docker.Image] = {}
            for image in order:
                spec = specs[image]
                parent_stack = stacks.get(spec.base) if spec.base else None
                outside = args.trixie_base_image if spec.debian == "trixie" else args.base_image
                base_ref: pulumi.Input[str] = parent_stack.repo_digest if parent_stack is not None else outside
                after = [parent_stack] if parent_stack is not None else []
                if image in with_children:
                    stack_tag = f"{args.version}-stack"
                    stacks[image] = build(f"{image}-stack", spec, stack_tag, base_ref, STACK_TARGET, after)
                    after = [stacks[image]]  # the final image then builds its stack stage from the cache
                built = build(image, spec, args.version, base_ref, None, after)
                self.images[image] = built
                self.ref_outputs[image] = built.repo_digest

        self.refs = pulumi.Output.all(**self.ref_outputs).apply(lambda resolved: dict(resolved))
        self.register_outputs({"refs": self.refs})


@dataclass
class _Builder:
    """Makes the ``docker.Image`` resources of one ImageBuilds (all children of it)."""

    owner: ImageBuilds
    prefix: str
    args: ImageBuildsArgs
    registry: docker.RegistryArgs
    context: str

    def __call__(
        self,
        resource: str,
        spec: ImageSpec,
        tag: str,
        base_ref: pulumi.Input[str],
        target: str | None,
        after: list[docker.Image],
    ) -> docker.Image:
        args = self.args
        return docker.Image(
            f"{self.prefix}-{resource}",
            image_name=f"{repository(args.registry, args.project, spec.name)}:{tag}",
            build=docker.DockerBuildArgs(
                context=self.context,
                # The provider wants an absolute path or one relative to the program.
                dockerfile=os.path.join(os.path.abspath(args.images_dir), spec.dockerfile_dir, "Dockerfile"),
                args={
                    "BASE_IMAGE": base_ref,
                    "IMAGE_VERSION": args.version,
                    "IMAGE_SOURCE": f"{args.source}/images/{spec.dockerfile_dir}",
                    "LOCK_SUFFIX": spec.lock_suffix,
                },
                builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
                platform=args.platform,
                network=args.build_network,
                target=target,
            ),
            registry=self.registry,
            opts=pulumi.ResourceOptions(parent=self.owner, depends_on=list(after) or None),
        )


@dataclass
class RegistryPullSecretArgs:
    """A kubernetes.io/dockerconfigjson Secret for Harbor in ``namespace``; the
    Kubernetes provider is explicit so the Secret never lands in an ambient cluster."""

    registry: str
    username: pulumi.Input[str]
    password: pulumi.Input[str]
    namespace: pulumi.Input[str]
    provider: pulumi.ProviderResource
    secret_name: str = "harbor-pull"


class RegistryPullSecret(pulumi.ComponentResource):
    """The imagePullSecret user pods (and the pre-pullers) need for Harbor's project."""

    secret_name: pulumi.Output[str]

    def __init__(self, name: str, args: RegistryPullSecretArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-jupyterhub:images:RegistryPullSecret", name, None, opts)
        config_json = pulumi.Output.secret(
            pulumi.Output.all(args.username, args.password).apply(
                lambda up: dockerconfigjson(args.registry, up[0], up[1])
            )
        )
        secret = kubernetes.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": args.secret_name, "namespace": args.namespace},
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": config_json},
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
        )
        self.secret_name = secret.metadata.apply(lambda m: m["name"] if isinstance(m, Mapping) else m.name)
        self.register_outputs({"secret_name": self.secret_name})
