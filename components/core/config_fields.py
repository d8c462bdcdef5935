"""What every part of the stack config shares: the namespace, the error type, the strict base model and the
field types and checks more than one part uses (quantities, DNS labels, absolute paths, registry hosts, digests)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    SecretStr,
)

NAMESPACE = "gpu-jupyterhub"
SECRET_PLACEHOLDER = "[secret]"

_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
REGISTRY_HOST = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$")
DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[a-f0-9]{64}$")


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


def dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError("a DNS label: lower-case letters, digits and '-', at most 63 characters")
    return value


def _abs_path(value: str) -> str:
    if not value.startswith("/") or "/../" in value + "/" or "//" in value:
        raise ValueError("an absolute path such as /buckets/jupyterhub, without '..' or '//'")
    return value


Quantity = Annotated[str, AfterValidator(_quantity)]
DnsLabel = Annotated[str, AfterValidator(dns_label)]
AbsPath = Annotated[str, AfterValidator(_abs_path)]


class StrictModel(BaseModel):
    """Strict base: unknown keys are errors; keys are camelCase as in the stack file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)


def is_registry_host(host: str) -> bool:
    """A host[:port] that Docker reads as a registry: with a dot or a port, or localhost (Docker reads
    "harbor/x" as Docker Hub's user "harbor")."""
    return bool(REGISTRY_HOST.match(host)) and ("." in host or ":" in host or host == "localhost")


def too_short(secret: SecretStr, minimum: int) -> bool:
    """A secret shorter than ``minimum`` (a plan's placeholder for an encrypted value is never judged)."""
    value = secret.get_secret_value()
    return value != SECRET_PLACEHOLDER and len(value) < minimum
