"""Typed stack configuration: every key of the ``gpu-jupyterhub:*`` namespace, declared once.

The model is the single place that says what a key means, its type and its default; the README's
config reference is generated from it (and a test keeps them in sync). Unknown keys are errors, so a
typo never silently falls back to a default. ``StackConfig`` joins the parts, each in its own module
(config_hub, config_compute, config_images, config_storage, on config_fields); reading a stack's
config, with every bad key reported at once, is config_load's.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from components.core.config_compute import (
    MAX_CORES,
    MAX_MEMORY_BYTES,
    NodesConfig,
    ProfilesConfig,
    Resources,
    SizingConfig,
)
from components.core.config_fields import NAMESPACE, SECRET_PLACEHOLDER, ConfigError, DnsLabel, StrictModel
from components.core.config_hub import (
    AuthConfig,
    ChartConfig,
    ChartImagesConfig,
    CullingConfig,
    HubConfig,
    NetworkConfig,
    OidcConfig,
    TlsConfig,
)
from components.core.config_images import IMAGE_NAMES, ImagesConfig, RegistryConfig
from components.core.config_storage import (
    NOTEBOOKS_CLAIM,
    BackupConfig,
    BackupCredentialsConfig,
    BackupKeepConfig,
    SharedCodeConfig,
    StorageConfig,
    backup_target_refusal,
)

__all__ = [
    "IMAGE_NAMES", "MAX_CORES", "MAX_MEMORY_BYTES", "NAMESPACE", "NOTEBOOKS_CLAIM", "SECRET_PLACEHOLDER",
    "AuthConfig", "BackupConfig", "BackupCredentialsConfig", "BackupKeepConfig", "ChartConfig", "ChartImagesConfig",
    "ConfigError", "CullingConfig", "HubConfig", "ImagesConfig", "NetworkConfig", "NodesConfig", "OidcConfig",
    "ProfilesConfig", "RegistryConfig", "Resources", "SharedCodeConfig", "SizingConfig", "StackConfig",
    "StorageConfig", "TlsConfig", "backup_target_refusal",
]  # fmt: skip


class StackConfig(StrictModel):
    """Every key of the ``gpu-jupyterhub:`` config namespace."""

    kubeContext: str = Field(description="kubeconfig context of the target cluster (never the ambient one).")
    kubeconfig: SecretStr | None = Field(
        None, description="Whole kubeconfig (secret); default: the kubeconfig file on the machine."
    )
    namespace: DnsLabel = Field("jupyterhub", description="Namespace of the hub and user pods.")
    chart: ChartConfig = Field(ChartConfig(), description="Which z2jh chart and where from.")
    hub: HubConfig = Field(description="Host, TLS and hub behaviour.")
    auth: AuthConfig = Field(description="How users log in.")
    culling: CullingConfig = Field(CullingConfig(), description="Idle server culling.")
    network: NetworkConfig = Field(NetworkConfig(), description="Network policy additions.")
    profiles: ProfilesConfig = Field(ProfilesConfig(), description="Resources and GPU scheduling of profiles.")
    nodes: NodesConfig = Field(NodesConfig(), description="Where the node inventory comes from.")
    registry: RegistryConfig = Field(description="Harbor registry for images and pulls.")
    images: ImagesConfig = Field(ImagesConfig(), description="Image build or given references.")
    storage: StorageConfig = Field(StorageConfig(), description="Notebook storage and local scratch.")
    backup: BackupConfig = Field(BackupConfig(), description="Backups of the notebooks volume (restic).")
    verifyStorage: bool = Field(False, description="On `pulumi up`, prove every node sees every other node's files.")

    @model_validator(mode="after")
    def _images(self) -> StackConfig:
        if self.images.build and self.registry.password is None:
            raise ValueError(
                "images.build is true, so registry.username and registry.password (the push robot account) are "
                "needed; set the token with: pulumi config set --secret --path 'gpu-jupyterhub:registry.password'"
            )
        if not self.images.build:
            missing = [s.name for s in self.images.specs() if s.name not in self.images.refs]
            if missing:
                raise ValueError(f"images.build is false, so images.refs needs {missing}")
        return self
