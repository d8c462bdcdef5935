"""Validate Kubernetes objects with kubernetes-validate in strict mode (unknown fields fail)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

# the oldest Kubernetes we support and a current one: an object must be valid on both
K8S_VERSIONS = ("1.28", "1.33")


# admissionregistration.k8s.io/v1 policies are GA from 1.30 (the backup guard, README "Backups")
SINCE = {"admissionregistration.k8s.io/v1": "1.30"}


def validate(manifest: dict[str, Any]) -> None:
    since = SINCE.get(manifest.get("apiVersion", ""), "0")
    for version in K8S_VERSIONS:
        if tuple(map(int, version.split("."))) < tuple(map(int, since.split("."))):
            version = since
        kubernetes_validate.validate(manifest, version, strict=True)


def manifest_from_inputs(typ: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """A mock-registered Kubernetes resource's inputs as the object the provider would send."""
    out = {k: v for k, v in inputs.items() if not k.startswith("__")}
    assert out.get("apiVersion") and out.get("kind"), typ
    return out
