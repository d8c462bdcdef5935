"""Typed stack configuration: every key of the ``gpu-jupyterhub:*`` namespace, declared once.

The model is the single place that says what a key means, its type and its default; the README's
config reference is generated from it (and a test keeps them in sync). Unknown keys are errors, so a
typo never silently falls back to a default. Loading reports every bad key at once.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from components.core.chart_images import CHART_VERSION
from components.core.image_specs import ALL_IMAGE_NAMES, CUDA12, CUDA13, ImageSpec, image_specs

NAMESPACE = "gpu-jupyterhub"
SECRET_PLACEHOLDER = "[secret]"

_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_REGISTRY_HOST = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$")
_DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[a-f0-9]{64}$")
_REPLICATION = re.compile(r"^[0-2][0-9]{2}$")
# SeaweedFS treats /buckets/<name> as an S3 bucket and refuses to create one whose name breaks S3's rules.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CPU = re.compile(r"^[0-9]+(\.[0-9]+)?$")
# One path component of an image repository (the OCI distribution spec's grammar).
_REPO_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


class ConfigError(Exception):
    """Bad stack configuration: one line per offending key, each naming what is allowed."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"invalid stack configuration ({len(self.problems)} problem(s)):\n{lines}"


def _quantity(value: str) -> str:
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise ValueError("a Kubernetes quantity with a unit, for example 100Gi, 512Mi or 8G")
    if not re.search(r"[A-Za-z]$", value):
        raise ValueError("a Kubernetes quantity with a unit, for example 100Gi, 512Mi or 8G (a bare number is bytes)")
    return value


def _dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError("a DNS label: lower-case letters, digits and '-', at most 63 characters")
    return value


def _abs_path(value: str) -> str:
    if not value.startswith("/") or "/../" in value + "/" or "//" in value:
        raise ValueError("an absolute path such as /buckets/jupyterhub, without '..' or '//'")
    return value


Quantity = Annotated[str, AfterValidator(_quantity)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
AbsPath = Annotated[str, AfterValidator(_abs_path)]


class _Model(BaseModel):
    """Strict base: unknown keys are errors; keys are camelCase as in the stack file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)


def _is_registry_host(host: str) -> bool:
    """A host[:port] that Docker reads as a registry: with a dot or a port, or localhost (Docker reads
    "harbor/x" as Docker Hub's user "harbor")."""
    return bool(_REGISTRY_HOST.match(host)) and ("." in host or ":" in host or host == "localhost")


class ChartImagesConfig(_Model):
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
        if not _is_registry_host(host):
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
            _DIGEST_REF.match(v)
            and _is_registry_host(host)
            and path
            and all(_REPO_COMPONENT.match(c) for c in path.split("/"))
        ):
            raise ValueError(
                "a digest-pinned reference host[:port]/path/name@sha256:<64 hex>, e.g. "
                "harbor.lab.example/jupyterhub-mirror/k8s-hub@sha256:<digest>"
            )
        return v


class ChartConfig(_Model):
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


class TlsConfig(_Model):
    secretName: str | None = Field(None, description="Existing TLS secret for the hub host.")
    clusterIssuer: str | None = Field(None, description="cert-manager ClusterIssuer that issues the hub's certificate.")

    @model_validator(mode="after")
    def _one(self) -> TlsConfig:
        if bool(self.secretName) == bool(self.clusterIssuer):
            raise ValueError("set exactly one of secretName (an existing TLS secret) or clusterIssuer (cert-manager)")
        return self


class HubConfig(_Model):
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


class OidcConfig(_Model):
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


class AuthConfig(_Model):
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
            if _too_short(self.sharedPassword, 8):
                raise ValueError("auth.sharedPassword must be at least 8 characters (the hub refuses to start)")
            if self.adminUsers and self.adminPassword is None:
                raise ValueError(f"mode shared-password with auth.adminUsers needs auth.adminPassword; {set_admin}")
            if self.adminPassword is not None and _too_short(self.adminPassword, 32):
                raise ValueError("auth.adminPassword must be at least 32 characters in mode shared-password")
            shared = self.sharedPassword.get_secret_value()
            if self.adminPassword is not None and self.adminPassword.get_secret_value() == shared != SECRET_PLACEHOLDER:
                raise ValueError("auth.adminPassword must differ from auth.sharedPassword")
        if self.mode == "native":
            if not self.adminUsers:
                raise ValueError("mode native needs auth.adminUsers (who approves sign-ups)")
            if self.adminPassword is None:
                raise ValueError(f"mode native needs auth.adminPassword (how the adminUsers log in); {set_admin}")
            if _too_short(self.adminPassword, 12):
                raise ValueError("auth.adminPassword must be at least 12 characters")
        return self


def _too_short(secret: SecretStr, minimum: int) -> bool:
    """A secret shorter than ``minimum`` (a plan's placeholder for an encrypted value is never judged)."""
    value = secret.get_secret_value()
    return value != SECRET_PLACEHOLDER and len(value) < minimum


class CullingConfig(_Model):
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


class NetworkConfig(_Model):
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
        import ipaddress

        for c in v:
            try:
                ipaddress.ip_network(c)
            except ValueError as e:
                raise ValueError(f"{c!r} is not a CIDR such as 10.0.0.0/8") from e
        return v


MAX_CORES = 4096
MAX_MEMORY_BYTES = 64 * 1024**4


def _bytes(quantity: str) -> float:
    """A memory quantity in bytes, for comparisons (KubeSpawner's K/M/G/T are 1024-based; so here)."""
    m = re.fullmatch(r"([0-9.]+)([KMGTPE]i?|[kmgt]?)", quantity)
    if not m:
        return math.inf
    units = {"": 1, "k": 1e3, "m": 1e-3, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
    unit = m.group(2)
    factor = units.get(unit.removesuffix("i"), 1024**6)  # KubeSpawner reads "G" and "Gi" alike
    return float(m.group(1)) * factor


class Resources(_Model):
    cpuGuarantee: float = Field(description="CPU cores reserved for the server.")
    cpuLimit: float = Field(description="CPU cores the server may use at most.")
    memGuarantee: Quantity = Field(description="Memory reserved, e.g. 4G.")
    memLimit: Quantity = Field(description="Memory limit, e.g. 8G.")

    @model_validator(mode="after")
    def _order(self) -> Resources:
        if not (math.isfinite(self.cpuGuarantee) and math.isfinite(self.cpuLimit)):
            raise ValueError("cpuGuarantee and cpuLimit must be finite numbers of cores")
        if self.cpuGuarantee <= 0 or self.cpuLimit < self.cpuGuarantee:
            raise ValueError("need 0 < cpuGuarantee <= cpuLimit")
        if self.cpuLimit > MAX_CORES:
            raise ValueError(f"cpuLimit above {MAX_CORES} cores is no machine's")
        guarantee, limit = _bytes(self.memGuarantee), _bytes(self.memLimit)
        if guarantee > limit:
            raise ValueError(f"memGuarantee ({self.memGuarantee}) is above memLimit ({self.memLimit})")
        if limit > MAX_MEMORY_BYTES:
            raise ValueError("memLimit above 64Ti is no machine's")
        return self


class SizingConfig(_Model):
    enabled: bool = Field(
        True,
        description="Offer sizes computed from the nodes (CPU: a size picker; GPU: CPU and memory in "
        "proportion to the GPUs taken); false: the fixed profiles.cpu/gpu/fineTuning resources.",
    )
    fractions: list[float] = Field(
        [0.0625, 0.125, 0.25, 0.5],
        description="CPU profile sizes as fractions of a typical user node (after the reserve).",
    )
    maxShare: float = Field(0.5, description="Largest fraction of a node one CPU-only server may take.")
    reserveCpu: float = Field(1.0, description="CPU cores per node kept for system pods and daemons.")
    reserveMemory: Quantity = Field("2Gi", description="Memory per node kept for system pods and daemons.")
    guaranteeRatio: float = Field(
        1.0,
        description="Guarantee as a fraction of the size (the limit); 1 gives Guaranteed QoS and pods that "
        "pack without overcommitting a node.",
    )

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("at least one fraction, for example [0.125, 0.25, 0.5]")
        bad = [f for f in v if not 0 < f <= 1]
        if bad:
            raise ValueError(f"fractions must be in (0, 1], not {bad}")
        return sorted(set(v))

    @field_validator("maxShare", "guaranteeRatio")
    @classmethod
    def _unit_interval(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise ValueError("must be in (0, 1]")
        return v

    @field_validator("reserveCpu")
    @classmethod
    def _reserve(cls, v: float) -> float:
        if v < 0:
            raise ValueError("must be 0 or more")
        return v


class ProfilesConfig(_Model):
    sizing: SizingConfig = Field(SizingConfig(), description="Server sizes computed from node capacity.")
    cpu: Resources = Field(
        Resources(cpuGuarantee=0.5, cpuLimit=2, memGuarantee="2G", memLimit="8G"),
        description="Resources of the CPU profiles (Standard Environment, Agent Development) when sizing is off "
        "or no node reports its capacity.",
    )
    gpu: Resources = Field(
        Resources(cpuGuarantee=2, cpuLimit=8, memGuarantee="8G", memLimit="32G"),
        description="Resources of the GPU profiles when sizing is off.",
    )
    fineTuning: Resources = Field(
        Resources(cpuGuarantee=4, cpuLimit=16, memGuarantee="24G", memLimit="64G"),
        description="Resources of the fine-tuning profile (one GPU, more memory) when sizing is off.",
    )
    gpuTolerations: list[dict[str, str]] = Field(
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        description="Tolerations GPU pods carry; GPU nodes with other NoSchedule taints are left out.",
    )
    cpuPreferNonGpuNodes: bool = Field(
        True,
        description="CPU-only servers prefer nodes without GPUs (preferred, never required: a one-node lab "
        "still works), so GPU machines keep their CPU and memory for GPU users.",
    )
    liveAvailability: bool = Field(True, description="Refresh GPU choices at spawn time with free/total GPUs per node.")
    gpuOverview: bool = Field(
        True,
        description="The GPU overview page in the hub's Services menu: who holds which GPU, since when, last "
        "activity (users see their own servers, admins all); needs liveAvailability.",
    )
    dcgmExporterUrl: str | None = Field(
        None,
        description="Metrics URL of NVIDIA's DCGM exporter in the cluster (e.g. "
        "http://nvidia-dcgm-exporter.gpu-operator.svc:9400/metrics): the GPU overview adds utilization and memory "
        "per GPU.",
    )
    maxGpusPerUser: int = Field(
        2,
        ge=0,
        le=1024,
        description="GPUs one user may hold across all their running servers (0: no limit); checked before "
        "every spawn.",
    )
    gpuQuota: dict[str, int] = Field(
        {}, description="Per-group GPU limits, e.g. {ml-team: 8}; a user gets the largest of theirs (0: no limit)."
    )
    adminMaxGpus: int | None = Field(
        None, ge=0, le=1024, description="GPU limit of hub admins (0: no limit); unset: the same rules as users."
    )
    gpuGroups: list[str] = Field(
        [], description="If set, only members of these groups see GPU profiles (live availability on)."
    )

    @field_validator("dcgmExporterUrl")
    @classmethod
    def _metrics_url(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?", v):
            raise ValueError(
                "an http:// or https:// URL of host, optional port and path, e.g. http://dcgm:9400/metrics"
            )
        return v

    @field_validator("gpuQuota")
    @classmethod
    def _quota(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {g: n for g, n in v.items() if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 1024}
        if bad:
            raise ValueError(f"group limits must be whole numbers 0-1024, not {bad}")
        return dict(sorted(v.items()))

    @field_validator("gpuTolerations")
    @classmethod
    def _tol(cls, v: list[dict[str, str]]) -> list[dict[str, str]]:
        allowed = {"key", "operator", "value", "effect"}
        for t in v:
            extra = set(t) - allowed
            if extra:
                raise ValueError(f"toleration keys must be among {sorted(allowed)}, not {sorted(extra)}")
            if t.get("operator", "Equal") not in ("Equal", "Exists"):
                raise ValueError("toleration operator must be Equal or Exists")
            if t.get("effect", "") not in ("", "NoSchedule", "PreferNoSchedule", "NoExecute"):
                raise ValueError("toleration effect must be NoSchedule, PreferNoSchedule or NoExecute")
        return v


class NodesConfig(_Model):
    file: str | None = Field(
        None,
        description="Read nodes from this `kubectl get nodes -o json` file instead of the cluster "
        "(air-gapped previews).",
    )


class RegistryConfig(_Model):
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
        if not _REGISTRY_HOST.match(v):
            raise ValueError("a registry host[:port] without scheme or path, e.g. harbor.lab.example")
        if "." not in v and ":" not in v and v != "localhost":
            # Docker reads "harbor/x" as Docker Hub's user "harbor": the image rule would then admit Docker Hub
            raise ValueError("a registry host needs a dot or a port (harbor.lab.example, harbor:443)")
        return v


IMAGE_NAMES = ALL_IMAGE_NAMES


class ImagesConfig(_Model):
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
            if not _DIGEST_REF.match(ref):
                raise ValueError(f"{name}: {ref!r} is not digest-pinned (registry/project/name@sha256:<64 hex>)")
        return dict(sorted(v.items()))


# Host directories storage.sharedCode may not mount (normalised paths). Trees: the directory and everything in
# it, because they hold the node's credentials or live state, and a read-only mount still leaks them: /etc
# (/etc/kubernetes/pki has the cluster CA key), /root, /boot, /var/lib/kubelet (pod secrets and tokens),
# /var/lib/etcd (every Secret of the cluster), the container runtimes' and MicroK8s'/k3s' state
# (/var/lib/containerd, /var/lib/docker, /var/snap, /var/lib/rancher), /var/lib/cni, /var/log; /proc, /sys,
# /dev (the kernel and devices) and /run, /var/run (runtime sockets: a Unix socket accepts connections even on
# a read-only mount, so containerd.sock there is root on the node). Directories: refused themselves only,
# because a directory below them can be a fine place for code (/srv/shared-code, /opt/lab-code), but they
# themselves are the system, everyone's homes or world-writable: / (also "/." and such), /bin, /sbin, /lib*,
# /usr, /var, /var/lib, /home, /opt, /srv, /mnt, /media, /snap, /tmp, /var/tmp.
_SYSTEM_TREES = (
    "/boot",
    "/dev",
    "/etc",
    "/proc",
    "/root",
    "/run",
    "/sys",
    "/var/lib/cni",
    "/var/lib/containerd",
    "/var/lib/docker",
    "/var/lib/etcd",
    "/var/lib/kubelet",
    "/var/lib/rancher",
    "/var/log",
    "/var/run",
    "/var/snap",
)
_SYSTEM_DIRS = re.compile(r"/(bin|sbin|lib[^/]*|usr|var|var/lib|home|opt|srv|mnt|media|snap|tmp|var/tmp)")
_SHARED_CODE_HINT = "use a directory made for the shared code, such as /srv/shared-code"


class SharedCodeConfig(_Model):
    hostPath: AbsPath = Field(
        description="Directory on the control-plane node, mounted read-only; normalised, and never a system "
        "directory (/, /etc, /proc, /var/lib/kubelet, ...: components/core/config.py lists them and says why)."
    )
    mountPath: AbsPath = Field("/home/jovyan/shared-code", description="Where user pods see it.")

    @field_validator("hostPath", "mountPath")
    @classmethod
    def _plain_path(cls, v: str) -> str:
        if v.rstrip("/") == "":
            raise ValueError("not / itself: that would show the node's whole file system")
        if not re.fullmatch(r"[A-Za-z0-9._/@+-]+", v):
            # braces break KubeSpawner's name expansion; anything else has no place in a path shown in a form
            raise ValueError("letters, digits and . _ - + @ / only")
        return v

    @field_validator("hostPath")
    @classmethod
    def _not_a_system_directory(cls, v: str) -> str:
        import posixpath  # here, not at the top: this section's own need

        if ".." in v.split("/"):
            raise ValueError("no '..': name the directory itself")
        path = posixpath.normpath(v)
        said = "" if path == v.rstrip("/") else f"{v} is {path}: "
        if path == "/":
            raise ValueError(f"{said}not / itself: that would show the node's whole file system")
        if _SYSTEM_DIRS.fullmatch(path):
            raise ValueError(f"{said}{path} is a system directory of the node: {_SHARED_CODE_HINT}")
        for tree in _SYSTEM_TREES:
            if path == tree or path.startswith(tree + "/"):
                where = f"{path} is in {tree}," if path != tree else f"{path} is"
                raise ValueError(
                    f"{said}{where} where the node keeps credentials, devices or runtime state: {_SHARED_CODE_HINT}"
                )
        return path


class StorageConfig(_Model):
    mode: Literal["static", "dynamic"] = Field(
        "static",
        description="static: a ReadWriteMany PV on the SeaweedFS CSI driver plus a claim; dynamic: a claim "
        "on `storageClass`.",
    )
    driver: str = Field("seaweedfs-csi-driver", description="CSI driver name (static mode).")
    volumeHandle: str = Field("jupyterhub-notebooks", description="CSI volume handle (static mode).")
    collection: DnsLabel = Field("jupyterhub", description="SeaweedFS collection (static mode).")
    replication: str = Field(
        "000", description="SeaweedFS replication XYZ (data centers, racks, servers), digits 0-2 first."
    )
    path: AbsPath = Field("/buckets/jupyterhub", description="Path in the SeaweedFS filer (static mode).")
    capacity: Quantity = Field("500Gi", description="Capacity of the notebooks volume.")
    storageClass: str | None = Field(None, description="ReadWriteMany StorageClass (dynamic mode).")
    scratchSize: Quantity = Field("50Gi", description="Size limit of the per-pod local scratch directory.")
    shmSize: Quantity = Field("8Gi", description="Size of /dev/shm (memory) for PyTorch data loaders.")
    sharedCode: SharedCodeConfig | None = Field(
        None,
        description="Optional read-only directory of the control-plane node, offered in the CPU profile "
        "through a local PersistentVolume (the namespace stays Pod Security restricted).",
    )
    verifyTimeoutSeconds: int = Field(
        180, ge=10, le=3600, description="How long a verification reader waits for other nodes' markers."
    )
    cacheMetaTtlSec: int | None = Field(
        10,
        ge=1,
        le=3600,
        description="SeaweedFS mount metadata cache TTL in seconds, set on the PV (static mode): how long a "
        "node may serve a cached directory listing that missed an update. Saves reach other nodes in well "
        "under a second either way (docs/troubleshooting.md). null leaves the CSI node plugin's default (60); "
        "0 is refused because the mount then never expires its cache.",
    )

    @field_validator("replication")
    @classmethod
    def _replication(cls, v: str) -> str:
        if not _REPLICATION.match(v):
            raise ValueError("three digits XYZ with X in 0-2 (e.g. 000, 001, 010)")
        return v

    @field_validator("path")
    @classmethod
    def _bucket(cls, v: str) -> str:
        parts = v.strip("/").split("/")
        if parts[0] == "buckets" and len(parts) > 1 and not _BUCKET.match(parts[1]):
            raise ValueError(
                f"{parts[1]!r} under /buckets is an S3 bucket name to SeaweedFS: 3-63 characters, lowercase "
                "letters, digits, '.' and '-', starting and ending with a letter or digit"
            )
        return v

    @model_validator(mode="after")
    def _dyn(self) -> StorageConfig:
        if self.mode == "dynamic" and not self.storageClass:
            raise ValueError("mode dynamic needs storage.storageClass")
        ttl = 60 if self.cacheMetaTtlSec is None else self.cacheMetaTtlSec
        if self.verifyTimeoutSeconds <= ttl:
            raise ValueError(
                f"storage.verifyTimeoutSeconds ({self.verifyTimeoutSeconds}) must exceed the mounts' metadata TTL "
                f"(storage.cacheMetaTtlSec, {ttl} s), or a reader may fail on a listing it is allowed to cache"
            )
        return self


_CRON_FIELD = re.compile(r"^(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*$")
_S3_TARGET = re.compile(r"^s3:https?://[A-Za-z0-9.-]+(:[0-9]+)?/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?$")


def _cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError("a five-field cron schedule (minute hour day-of-month month day-of-week), e.g. '17 3 * * *'")
    return value


Cron = Annotated[str, AfterValidator(_cron)]


# The notebooks claim (components.core.storage_spec.CLAIM_NAME, which a test keeps equal): user pods mount it.
NOTEBOOKS_CLAIM = "jupyterhub-notebooks"


def backup_target_refusal(claim: str) -> str:
    """Why ``claim:<claim>`` cannot hold the backups, and what can (shared with components.core.backup_spec)."""
    return (
        f"claim:{claim} is mounted by user pods: its top-level folders are users' homes, so a user could "
        "delete or corrupt every backup, and each backup would copy the repository into itself; use an "
        "s3: target (another volume or cluster) or claim:<pvc> of a claim that no user pod mounts"
    )


class BackupKeepConfig(_Model):
    last: int = Field(3, ge=0, le=1000, description="Most recent snapshots to keep, whatever their age.")
    daily: int = Field(7, ge=0, le=3660, description="Daily snapshots to keep.")
    weekly: int = Field(4, ge=0, le=520, description="Weekly snapshots to keep.")
    monthly: int = Field(6, ge=0, le=240, description="Monthly snapshots to keep.")

    @model_validator(mode="after")
    def _some(self) -> BackupKeepConfig:
        if not (self.last or self.daily or self.weekly or self.monthly):
            raise ValueError("keep at least one snapshot: last, daily, weekly and monthly cannot all be 0")
        return self


class BackupCredentialsConfig(_Model):
    accessKey: SecretStr = Field(description="S3 access key of the backup target (secret).")
    secretKey: SecretStr = Field(description="S3 secret key of the backup target (secret).")


class BackupConfig(_Model):
    enabled: bool = Field(False, description="Scheduled, encrypted restic backups of the notebooks volume.")
    schedule: Cron = Field("17 3 * * *", description="When the backup runs (cron, the cluster's time zone).")
    checkSchedule: Cron = Field("47 4 * * 0", description="When `restic check` verifies the repository (cron).")
    keep: BackupKeepConfig = Field(BackupKeepConfig(), description="Snapshots kept after each backup.")
    target: str | None = Field(
        None,
        description="Where the repository lives: `s3:https://host[:port]/bucket[/prefix]` (any S3-compatible "
        "store, e.g. a SeaweedFS S3 gateway on another volume or cluster) or `claim:<pvc>` (a claim in the "
        "namespace that no user pod mounts: never the notebooks claim).",
    )
    credentials: BackupCredentialsConfig | None = Field(None, description="S3 keys; required for an s3: target.")
    password: SecretStr | None = Field(
        None, description="Repository encryption password (secret, at least 16 characters); keep a copy off-site."
    )
    image: str | None = Field(
        None, description="Digest-pinned image with restic >= 0.17 and /bin/sh (e.g. through Harbor's proxy cache)."
    )
    timeoutSeconds: int = Field(21600, ge=300, le=86400, description="A backup Job running longer fails.")

    @field_validator("target")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if v.startswith("claim:"):
            claim = v.removeprefix("claim:")
            _dns_label(claim)
            if claim.endswith("\n"):  # the label's `$` lets one trailing line break through
                raise ValueError("a DNS label: lower-case letters, digits and '-', without a line break")
            if claim == NOTEBOOKS_CLAIM:
                raise ValueError(backup_target_refusal(claim))
            return v
        if not _S3_TARGET.fullmatch(v):
            raise ValueError(
                "s3:http(s)://host[:port]/bucket[/prefix] (bucket: 3-63 lower-case letters, digits, '.', '-') "
                "or claim:<pvc-name>"
            )
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is not None and not _DIGEST_REF.match(v):
            raise ValueError(f"{v!r} is not digest-pinned (registry/project/name@sha256:<64 hex>)")
        return v

    @model_validator(mode="after")
    def _complete(self) -> BackupConfig:
        if not self.enabled:
            return self
        missing = [k for k in ("target", "password", "image") if getattr(self, k) is None]
        if self.target and self.target.startswith("s3:") and self.credentials is None:
            missing.append("credentials (accessKey, secretKey)")
        if missing:
            raise ValueError("backup.enabled needs backup." + ", backup.".join(missing))
        if _too_short(self.password, 16):  # type: ignore[arg-type]
            raise ValueError("backup.password: at least 16 characters (the value is a secret and not shown)")
        return self


class StackConfig(_Model):
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


def _describe_allowed(model: type[BaseModel]) -> str:
    return ", ".join(sorted(model.model_fields))


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at ``path`` (to say what keys are allowed there)."""
    model: Any = StackConfig
    for part in path[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = _submodel(field.annotation)
        if model is None:
            return None
    return model


def _format_error(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    key = f"{NAMESPACE}:" + ".".join(str(p) for p in loc) if loc else f"{NAMESPACE}"
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc)
        allowed = _describe_allowed(owner) if owner else "see README config reference"
        return f"{key}: unknown key; allowed here: {allowed}"
    if kind == "missing":
        owner = _model_at(loc)
        desc = ""
        if owner is not None and str(loc[-1]) in owner.model_fields:
            field = owner.model_fields[str(loc[-1])]
            if field.annotation is SecretStr:
                return (
                    f"{key}: required secret is missing; set it with: pulumi config set --secret --path '{key}' <value>"
                )
            desc = field.description
        return f"{key}: required key is missing ({desc})" if desc else f"{key}: required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    if _is_secret_field(loc):
        return f"{key}: {msg} (the value is a secret and not shown)"
    if isinstance(got, str | int | float | bool) and not isinstance(got, SecretStr):
        return f"{key}: {msg} (got {got!r})"
    return f"{key}: {msg}"


def _is_secret_field(loc: tuple[Any, ...]) -> bool:
    """Whether an error's location is a secret field: its input must never reach a message."""
    if not loc:
        return False
    owner = _model_at(loc)
    field = owner.model_fields.get(str(loc[-1])) if owner is not None else None
    if field is None:
        return False
    ann = field.annotation
    return ann is SecretStr or SecretStr in getattr(ann, "__args__", ())


def parse_config(raw: Mapping[str, Any]) -> StackConfig:
    """Validate the namespace's keys (without the ``gpu-jupyterhub:`` prefix); raise ConfigError."""
    try:
        return StackConfig.model_validate(dict(raw))
    except ValidationError as e:
        raise ConfigError(_format_error(err) for err in e.errors()) from None


def _strip_secure(value: Any) -> Any:
    """Replace Pulumi ``{secure: ...}`` ciphertext with a placeholder; we never decrypt it here."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER
        return {k: _strip_secure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_secure(v) for v in value]
    return value


def namespace_keys(config: Mapping[str, Any], *, decode_json: bool) -> dict[str, Any]:
    """Pick this project's keys from a flat Pulumi config map, dropping the namespace prefix."""
    out: dict[str, Any] = {}
    prefix = f"{NAMESPACE}:"
    for key, value in config.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        if name.startswith("config:"):  # pulumi stores some keys as ns:config:key
            name = name[len("config:") :]
        if decode_json and isinstance(value, str) and value[:1] in ("{", "["):
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        out[name] = value
    return out


def load_stack_file(data: Mapping[str, Any]) -> StackConfig:
    """Config from a parsed ``Pulumi.<stack>.yaml``; secure values become placeholders."""
    if not isinstance(data, Mapping):
        raise ConfigError(["stack file: top level must be a mapping with a `config:` key"])
    config = data.get("config") or {}
    if not isinstance(config, Mapping):
        raise ConfigError(["stack file: `config:` must be a mapping of namespace:key to value"])
    raw = _strip_secure(namespace_keys(config, decode_json=False))
    return parse_config(_fill_missing_secrets(raw, StackConfig))


def _submodel(ann: Any) -> type[BaseModel] | None:
    """The model a field holds (``Model`` or ``Model | None``), if any."""
    return next(
        (a for a in [ann, *getattr(ann, "__args__", ())] if isinstance(a, type) and issubclass(a, BaseModel)),
        None,
    )


# Optional secrets that a set key implies: registry.username needs registry.password, and so on.
_SECRET_PARTNERS = {"password": "username", "pullPassword": "pullUsername", "adminPassword": "adminUsers"}


def _fill_missing_secrets(raw: Any, model: type[BaseModel]) -> Any:
    """Placeholders for required secrets a stack file does not hold yet: the plan never needs their values
    (a deploy does, and reports each one missing by name)."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for name, field in model.model_fields.items():
        ann = field.annotation
        if ann is SecretStr and field.is_required() and name not in out:
            out[name] = SECRET_PLACEHOLDER
        partner = _SECRET_PARTNERS.get(name)
        if partner and out.get(partner) and name not in out:
            out[name] = SECRET_PLACEHOLDER  # an optional secret that goes with a key that is set
        sub = _submodel(ann)
        if sub is not None and isinstance(out.get(name), dict):
            out[name] = _fill_missing_secrets(out[name], sub)
    return out


def load_pulumi_config() -> StackConfig:
    """Config of the running Pulumi program (every key of our namespace, secrets decrypted in memory)."""
    from pulumi.runtime import config as rc

    merged: dict[str, Any] = dict(rc.get_config_env())
    merged.update(rc.CONFIG.get())
    return parse_config(namespace_keys(merged, decode_json=True))


def reference_rows(model: type[BaseModel] = StackConfig, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for every leaf key: the README's config reference."""
    rows: list[tuple[str, str, str, str]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        sub = _submodel(ann)
        type_name = _type_name(ann)
        if field.is_required():
            default = "required"
        elif isinstance(field.default, BaseModel):
            default = "see below"
        elif type_name.startswith("secret"):
            default = "secret"
        else:
            default = json.dumps(field.default)
        rows.append((key, type_name, default, field.description))
        if sub is not None:
            rows.extend(reference_rows(sub, prefix=f"{key}."))
    return rows


def _type_name(ann: Any) -> str:
    text = str(ann).replace("typing.", "").replace("components.core.config.", "")
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text)
    text = text.replace("pydantic.types.SecretStr", "secret string")
    text = text.replace(" | None", " (optional)")
    return text
