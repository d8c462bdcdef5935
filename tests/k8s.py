"""Validate Kubernetes objects with kubernetes-validate in strict mode (unknown fields fail)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

K8S_VERSION = "1.30"


def validate(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def manifest_from_inputs(typ: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """A mock-registered Kubernetes resource's inputs as the object the provider would send."""
    out = {k: v for k, v in inputs.items() if not k.startswith("__")}
    assert out.get("apiVersion") and out.get("kind"), typ
    return out
