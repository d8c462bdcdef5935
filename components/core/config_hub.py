"""The stack config of the hub itself: where the chart and its images come from, host and TLS, how users log in,
idle culling and the network policy additions (``chart``, ``hub``, ``auth``, ``culling``, ``network``)."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from components.core.chart_images import CHART_VERSION
from components.core.config_fields import (
    DIGEST_REF,
    SECRET_PLACEHOLDER,
    StrictModel,
    is_registry_host,
    too_short,
)
from components.core.image_rule import REPO_COMPONENT

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_REPO_COMPONENT = re.compile(rf"^{REPO_COMPONENT}$")


class ChartImagesConfig(StrictModel):
    registry: str | None = Field(
        None,
        description="Registry host[:port][/path] where the chart's own images are mirrored (no scheme, tag or "
        "trailing slash), e.g. `harbor.lab.example/jupyterhub-mirror`, for clusters without internet: every image "
        "the chart's values name (hub, proxy, traefik, secret-sync, network-tools, user-scheduler, pause, "
        "image-awaiter) is pulled as `<registry>/<last path component>:<chart's tag>` "
        "(`quay.io/jupyterhub/k8s-hub:4.4.0` -> `harbor.lab.example/jupyterhub-mirror/k8s-hub:4.4.0`), with the "
        "user pods' pull secret when `registry` has credentials. Unset: the chart's defaults.",
    )
    hub: str | None = Field(
        None,
        description="Digest-pinned hub image, `host[:port]/path/name@sha256:<64 hex>`; wins over `registry`.",
    )
    proxy: str | None = Field(
        None,
        description="Digest-pinned configurable-http-proxy image, `host[:port]/path/name@sha256:<64 hex>`; wins "
        "over `registry`.",
    )

    @field_validator("registry")
    @classmethod
    def _registry(cls, v: str | None) -> str | None:
        if v is None:
            return v
        example = "e.g. harbor.lab.example/jupyterhub-mirror"
        if "://" in v:
            raise ValueError(f"a registry host[:port][/path] without a scheme, {example}")
        if v.endswith("/"):
            raise ValueError(f"a registry host[:port][/path] without a trailing slash, {example}")
        host, _, path = v.partition("/")
        if not is_registry_host(host):
            raise ValueError(
                f"must start with a registry host[:port] with a dot or a port (harbor.lab.example, harbor:443) or "
                f"localhost, {example}"
            )
        components = path.split("/") if path else []
        if any("@" in c or ":" in c for c in components):
            raise ValueError(f"a registry prefix without a tag or digest (each image keeps the chart's tag), {example}")
        if not all(_REPO_COMPONENT.match(c) for c in components):
            raise ValueError(
                f"path components of lower-case letters and digits, separated by '.', '_', '__' or '-', {example}"
            )
        return v

    @field_validator("hub", "proxy")
    @classmethod
    def _digest_ref(cls, v: str | None) -> str | None:
        if v is None:
            return v
        repository = v.split("@", 1)[0]
        host, _, path = repository.partition("/")
        if not (
            DIGEST_REF.match(v)
            and is_registry_host(host)
            and path
            and all(_REPO_COMPONENT.match(c) for c in path.split("/"))
        ):
            raise ValueError(
                "a digest-pinned reference host[:port]/path/name@sha256:<64 hex>, e.g. "
                "harbor.lab.example/jupyterhub-mirror/k8s-hub@sha256:<digest>"
            )
        return v


class ChartConfig(StrictModel):
    version: str = Field("4.4.0", description="Zero to JupyterHub chart version to deploy.")
    repository: str = Field(
        "https://hub.jupyter.org/helm-chart/",
        description="Helm chart repository URL; ignored when `oci` is set.",
    )
    oci: str | None = Field(
        None,
        description="OCI chart reference (for example oci://harbor.lab/charts/jupyterhub) for clusters "
        "without internet; replaces `repository`.",
    )
    path: str | None = Field(
        None,
        description="A chart on disk: an unpacked chart directory or a packaged `.tgz` (air-gapped clusters); "
        "relative to the project directory; replaces `repository` and `oci`. Its Chart.yaml must be the "
        "jupyterhub chart at `version`.",
    )
    timeoutSeconds: int = Field(900, ge=60, le=7200, description="How long Helm waits for the release.")
    images: ChartImagesConfig = Field(
        ChartImagesConfig(),
        description="Where the chart's own images (hub, proxy and the rest) are pulled from; unset: the chart's "
        "defaults on quay.io, registry.k8s.io and Docker Hub.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ChartConfig:
        if self.path and self.oci:
            raise ValueError("set at most one of path (a chart on disk) or oci (an OCI reference)")
        if self.images.registry and self.version != CHART_VERSION:
            raise ValueError(
                f"chart.images.registry takes the image names and tags of chart {CHART_VERSION} "
                f"(components/core/chart_images.py), but chart.version is {self.version!r}: "
                f"deploy chart {CHART_VERSION}, "
                "or update that table for the new chart first"
            )
        return self

    @field_validator("repository")
    @classmethod
    def _repository(cls, v: str) -> str:
        if not v.startswith("https://"):
            raise ValueError("an https:// chart repository URL (a chart over http can be swapped on the way)")
        return v

    @field_validator("oci")
    @classmethod
    def _oci(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("oci://"):
            raise ValueError("an OCI reference starting with oci://")
        return v


class TlsConfig(StrictModel):
    secretName: str | None = Field(None, description="Existing TLS secret for the hub host.")
    clusterIssuer: str | None = Field(None, description="cert-manager ClusterIssuer that issues the hub's certificate.")

    @model_validator(mode="after")
    def _one(self) -> TlsConfig:
        if bool(self.secretName) == bool(self.clusterIssuer):
            raise ValueError("set exactly one of secretName (an existing TLS secret) or clusterIssuer (cert-manager)")
        return self


class HubConfig(StrictModel):
    host: str = Field(description="Public host name of the hub (ingress host), for example jupyter.lab.example.")
    ingressClassName: str | None = Field(None, description="Ingress class; cluster default when unset.")
    tls: TlsConfig = Field(description="TLS for the ingress: an existing secret or a cert-manager issuer.")
    allowNamedServers: bool = Field(True, description="Let users run several servers (one per profile).")
    namedServerLimitPerUser: int = Field(
        2,
        ge=1,
        le=100,
        description="Named servers a user may have besides the default one (each may hold GPUs; JupyterHub's "
        "0, unlimited, is not allowed).",
    )
    concurrentSpawnLimit: int = Field(20, ge=1, description="Spawns in flight at once across the hub.")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not _DNS_SUBDOMAIN.match(v) or "." not in v:
            raise ValueError("a fully qualified DNS name such as jupyter.lab.example")
        return v


class OidcConfig(StrictModel):
    issuer: str = Field(description="OIDC issuer URL, for example https://keycloak.lab/realms/lab.")
    clientId: str = Field(description="OAuth client id registered with the identity provider.")
    clientSecret: SecretStr = Field(description="OAuth client secret (set with `pulumi config set --secret`).")
    usernameClaim: str = Field("preferred_username", description="Claim used as the JupyterHub user name.")
    groupsClaim: str = Field("groups", description="Claim that lists the user's groups.")
    scopes: list[str] = Field(["openid", "profile", "email"], description="Scopes requested at login.")
    allowedGroups: list[str] = Field([], description="Groups allowed to log in.")
    adminGroups: list[str] = Field([], description="Groups whose members are hub admins.")
    authorizeUrl: str | None = Field(None, description="Override; default <issuer>/protocol/openid-connect/auth.")
    tokenUrl: str | None = Field(None, description="Override; default <issuer>/protocol/openid-connect/token.")
    userdataUrl: str | None = Field(None, description="Override; default <issuer>/protocol/openid-connect/userinfo.")

    @field_validator("issuer", "authorizeUrl", "tokenUrl", "userdataUrl")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("https://"):
            raise ValueError("an https:// URL")
        return v.rstrip("/") if v else v


class AuthConfig(StrictModel):
    mode: Literal["oidc", "native", "shared-password"] = Field(
        "oidc",
        description="oidc (GenericOAuthenticator, e.g. Keycloak), native (NativeAuthenticator sign-up with "
        "admin approval) or shared-password (one password from a secret).",
    )
    oidc: OidcConfig | None = Field(None, description="OIDC settings; required when mode is oidc.")
    sharedPassword: SecretStr | None = Field(
        None, description="The shared password (secret); required when mode is shared-password."
    )
    allowedUsers: list[str] = Field(
        [],
        description="User names allowed to log in (besides groups). native: empty means any account an admin "
        "approved; shared-password: required.",
    )
    adminUsers: list[str] = Field([], description="User names that are hub admins.")
    adminPassword: SecretStr | None = Field(
        None,
        description="Password of the adminUsers (secret): required by native (at least 12 characters; admin names "
        "cannot be claimed by a sign-up) and by shared-password with adminUsers (at least 32, unlike the shared one).",
    )

    @model_validator(mode="after")
    def _mode(self) -> AuthConfig:
        set_admin = "set one with: openssl rand -base64 33 | pulumi config set --secret --path auth.adminPassword"
        if self.mode == "oidc" and self.oidc is None:
            raise ValueError("mode oidc needs auth.oidc (issuer, clientId, clientSecret)")
        if self.mode == "shared-password":
            if self.sharedPassword is None:
                raise ValueError("mode shared-password needs auth.sharedPassword (a secret)")
            if not self.allowedUsers:
                raise ValueError("mode shared-password needs auth.allowedUsers (who may log in)")
            if too_short(self.sharedPassword, 8):
                raise ValueError("auth.sharedPassword must be at least 8 characters (the hub refuses to start)")
            if self.adminUsers and self.adminPassword is None:
                raise ValueError(f"mode shared-password with auth.adminUsers needs auth.adminPassword; {set_admin}")
            if self.adminPassword is not None and too_short(self.adminPassword, 32):
                raise ValueError("auth.adminPassword must be at least 32 characters in mode shared-password")
            shared = self.sharedPassword.get_secret_value()
            if self.adminPassword is not None and self.adminPassword.get_secret_value() == shared != SECRET_PLACEHOLDER:
                raise ValueError("auth.adminPassword must differ from auth.sharedPassword")
        if self.mode == "native":
            if not self.adminUsers:
                raise ValueError("mode native needs auth.adminUsers (who approves sign-ups)")
            if self.adminPassword is None:
                raise ValueError(f"mode native needs auth.adminPassword (how the adminUsers log in); {set_admin}")
            if too_short(self.adminPassword, 12):
                raise ValueError("auth.adminPassword must be at least 12 characters")
        return self



class CullingConfig(StrictModel):
    enabled: bool = Field(True, description="Stop idle servers.")
    timeoutSeconds: int = Field(3600, ge=60, description="Idle time after which a server is stopped.")
    everySeconds: int = Field(600, ge=30, description="How often the culler checks.")
    maxAgeSeconds: int = Field(0, ge=0, description="Stop servers older than this even if busy; 0 = never.")
    gpuTimeoutSeconds: int = Field(
        1800,
        ge=0,
        description="Idle time after which a server of a GPU profile is stopped (a hub service; 0: only the "
        "general timeout applies).",
    )


class NetworkConfig(StrictModel):
    userEgressCidrs: list[str] = Field(
        [],
        description="Extra CIDRs user pods may reach (e.g. an in-cluster model endpoint); the internet "
        "without private, CGNAT, link-local and node addresses, and the cluster's DNS, are always allowed.",
    )
    hubPrivateEgress: bool = Field(
        True, description="Let the hub reach private IPs (an in-cluster identity provider such as Keycloak)."
    )

    @field_validator("userEgressCidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:

        for c in v:
            try:
                ipaddress.ip_network(c)
            except ValueError as e:
                raise ValueError(f"{c!r} is not a CIDR such as 10.0.0.0/8") from e
        return v
