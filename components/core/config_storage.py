"""The stack config of the users' files: the notebooks volume, local scratch, shared code from the nodes and
the restic backups (``storage``, ``backup``)."""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from components.core.config_fields import (
    DIGEST_REF,
    AbsPath,
    DnsLabel,
    Quantity,
    StrictModel,
    dns_label,
    too_short,
)

_REPLICATION = re.compile(r"^[0-2][0-9]{2}$")
# SeaweedFS treats /buckets/<name> as an S3 bucket and refuses to create one whose name breaks S3's rules.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

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


class SharedCodeConfig(StrictModel):
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


class StorageConfig(StrictModel):
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


class BackupKeepConfig(StrictModel):
    last: int = Field(3, ge=0, le=1000, description="Most recent snapshots to keep, whatever their age.")
    daily: int = Field(7, ge=0, le=3660, description="Daily snapshots to keep.")
    weekly: int = Field(4, ge=0, le=520, description="Weekly snapshots to keep.")
    monthly: int = Field(6, ge=0, le=240, description="Monthly snapshots to keep.")

    @model_validator(mode="after")
    def _some(self) -> BackupKeepConfig:
        if not (self.last or self.daily or self.weekly or self.monthly):
            raise ValueError("keep at least one snapshot: last, daily, weekly and monthly cannot all be 0")
        return self


class BackupCredentialsConfig(StrictModel):
    accessKey: SecretStr = Field(description="S3 access key of the backup target (secret).")
    secretKey: SecretStr = Field(description="S3 secret key of the backup target (secret).")


class BackupConfig(StrictModel):
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
            dns_label(claim)
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
        if v is not None and not DIGEST_REF.match(v):
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
        if too_short(self.password, 16):  # type: ignore[arg-type]
            raise ValueError("backup.password: at least 16 characters (the value is a secret and not shown)")
        return self
