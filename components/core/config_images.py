"""The stack config of the images: the Harbor registry and which images are built or given by digest
(``registry``, ``images``)."""

from __future__ import annotations

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from components.core.config_fields import (
    DIGEST_REF,
    NAMESPACE,
    REGISTRY_HOST,
    DnsLabel,
    StrictModel,
)
from components.core.image_specs import ALL_IMAGE_NAMES, CUDA12, CUDA13, ImageSpec, image_specs


class RegistryConfig(StrictModel):
    host: str = Field(description="Harbor registry host[:port], for example harbor.lab.example.")
    project: DnsLabel = Field("jupyter", description="Harbor project that holds the images.")
    username: str | None = Field(
        None, description="Harbor robot account that pushes the images (e.g. robot$jupyter+builder); needed to build."
    )
    password: SecretStr | None = Field(None, description="Token of that push robot account (secret); needed to build.")
    pullUsername: str | None = Field(
        None,
        description="Pull-only robot account for the cluster (e.g. robot$jupyter+puller); without it, pods pull "
        "with the push account (a warning).",
    )
    pullPassword: SecretStr | None = Field(None, description="Token of the pull-only robot account (secret).")

    @model_validator(mode="after")
    def _pairs(self) -> RegistryConfig:
        pairs = (("username", "password"), ("pullUsername", "pullPassword"))
        for user_key, secret_key in pairs:
            user, secret = getattr(self, user_key), getattr(self, secret_key)
            if user is not None and secret is None:
                key = f"{NAMESPACE}:registry.{secret_key}"
                raise ValueError(
                    f"{key} is missing (it goes with registry.{user_key}); "
                    f"set it with: pulumi config set --secret --path '{key}' <value>"
                )
            if secret is not None and user is None:
                raise ValueError(f"{NAMESPACE}:registry.{user_key} is missing (it goes with registry.{secret_key})")
        return self

    def pull_credentials(self) -> tuple[str, SecretStr] | None:
        """What user pods and the pre-pullers pull with: the pull-only account, else the push account."""
        if self.pullUsername and self.pullPassword:
            return self.pullUsername, self.pullPassword
        if self.username and self.password:
            return self.username, self.password
        return None

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not REGISTRY_HOST.match(v):
            raise ValueError("a registry host[:port] without scheme or path, e.g. harbor.lab.example")
        if "." not in v and ":" not in v and v != "localhost":
            # Docker reads "harbor/x" as Docker Hub's user "harbor": the image rule would then admit Docker Hub
            raise ValueError("a registry host needs a dot or a port (harbor.lab.example, harbor:443)")
        return v


IMAGE_NAMES = ALL_IMAGE_NAMES


class ImagesConfig(StrictModel):
    build: bool = Field(True, description="Build and push the images; false uses `refs`.")
    refs: dict[str, str] = Field(
        {},
        description="Digest-pinned references (name@sha256:...) per image, required when build is false.",
    )
    baseImage: str = Field(
        "debian:bookworm-slim",
        description="Base of the root images (point it at your Harbor proxy cache).",
    )
    version: str = Field("0.1.0", description="Version label and tag of the built images.")
    cuda12: bool = Field(
        False,
        description=f"Also build the CUDA 12 variant of the GPU images (`-cu12`) for GPU nodes whose NVIDIA "
        f"driver is {CUDA12.min_driver_major}-{CUDA13.min_driver_major - 1}; without it such nodes get no GPU "
        f"profiles (the default images need driver {CUDA13.min_driver_major}+).",
    )
    jax: bool = Field(
        True,
        description="Build and offer `jupyter-jax` (JAX with CUDA) on GPU nodes; false leaves it out of the "
        "builds, the image pickers and the GPU nodes' pre-pull (several GB per node).",
    )
    rapids: bool = Field(
        True,
        description="Build and offer `jupyter-rapids` (cuDF, cuML) on GPU nodes; false leaves it out as `jax` does.",
    )
    rust: bool = Field(
        False,
        description="Build and offer `jupyter-rust` (a Rust kernel, evcxr, with Debian's Rust toolchain) in the CPU "
        "profile's image picker; off by default: its first build compiles the kernel (see images/README.md).",
    )
    trixieBaseImage: str = Field(
        "debian:trixie-slim",
        description="Base of the images built on Debian trixie (jupyter-rust; point it at your Harbor proxy cache).",
    )

    def specs(self) -> tuple[ImageSpec, ...]:
        """The images this stack builds (or takes from ``refs``), in FROM-chain order."""
        optional = (("jupyter-jax", self.jax), ("jupyter-rapids", self.rapids), ("jupyter-rust", self.rust))
        without = [name for name, on in optional if not on]
        return image_specs(self.cuda12, without)

    @field_validator("refs")
    @classmethod
    def _refs(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(IMAGE_NAMES))
        if unknown:
            raise ValueError(f"unknown image(s) {unknown}; allowed: {list(IMAGE_NAMES)}")
        for name, ref in v.items():
            if not DIGEST_REF.match(ref):
                raise ValueError(f"{name}: {ref!r} is not digest-pinned (registry/project/name@sha256:<64 hex>)")
        return dict(sorted(v.items()))
