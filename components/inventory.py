"""Live node lookup during preview and up, against the same context as the Kubernetes provider.

kubectl runs in the program itself on every preview and up (a resource would run once and keep stale
hardware). It used to run through the command provider's `local.run` invoke, which does the same on the same
machine; calling it directly needs no extra plugin, and its failure is rephrased here with the context's name.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from components.core.nodes import Inventory, NodeDataError, parse_nodes


class InventoryError(Exception):
    """The node list could not be read; the message names the context or file."""


KUBECTL_TIMEOUT_SECONDS = 60


def kubectl_command(context: str, kubeconfig_path: str | None, resources: str = "nodes") -> list[str]:
    parts = ["kubectl", "get", resources, "-o", "json", "--request-timeout=30s", f"--context={context}"]
    if kubeconfig_path:
        parts.append(f"--kubeconfig={kubeconfig_path}")
    return parts


def from_file(path: str | Path, base_dir: Path, source: str = "gpu-jupyterhub:nodes.file") -> Inventory:
    """An offline node list; a relative path is taken from ``base_dir``; errors name ``source``. No API server
    checked the file, so a node name it would refuse makes the whole file an error (components.core.nodes)."""
    p = Path(path)
    if not p.is_absolute():
        p = base_dir / p
    try:
        return parse_nodes(p.read_bytes(), refuse_bad_names=True)
    except OSError as e:
        raise InventoryError(f"{source}: cannot read {p}: {e.strerror}") from None
    except NodeDataError as e:
        raise InventoryError(f"{source}: {p}: {e}") from None


def _kubectl_get(context: str, kubeconfig: str | None, resources: str) -> str:
    """``kubectl get <resources> -o json`` for ``context`` (the kubeconfig secret, if any, via a 0600 temp file)."""
    hint = (
        "Check the context and that the cluster is reachable, or set gpu-jupyterhub:nodes.file to an offline node list."
    )
    tmp: str | None = None
    try:
        if kubeconfig:
            fd, tmp = tempfile.mkstemp(prefix="gpu-jupyterhub-kubeconfig-")
            with os.fdopen(fd, "w") as f:  # 0600 by mkstemp; removed right after the call
                f.write(kubeconfig)
        try:
            proc = subprocess.run(
                kubectl_command(context, tmp, resources),
                capture_output=True,
                text=True,
                timeout=KUBECTL_TIMEOUT_SECONDS,
                check=False,
            )
        except FileNotFoundError:
            raise InventoryError(
                f"cannot list {resources} of kube context {context!r}: kubectl is not on PATH. Install kubectl, or "
                "set gpu-jupyterhub:nodes.file to an offline node list."
            ) from None
        except subprocess.TimeoutExpired:
            raise InventoryError(
                f"cannot list {resources} of kube context {context!r}: kubectl get {resources} did not answer within "
                f"{KUBECTL_TIMEOUT_SECONDS} s. {hint}"
            ) from None
    finally:
        if tmp:
            os.unlink(tmp)
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or f"exit code {proc.returncode}").replace(tmp or "\0", "<kubeconfig>")
        raise InventoryError(
            f"cannot list {resources} of kube context {context!r} (kubectl get {resources}): {detail}. {hint}"
        )
    return proc.stdout


def from_cluster(context: str, kubeconfig: str | None) -> Inventory:
    """List the nodes of ``context`` with kubectl."""
    text = _kubectl_get(context, kubeconfig, "nodes")
    try:
        return parse_nodes(text)
    except NodeDataError as e:
        raise InventoryError(f"kube context {context!r}: kubectl output is not a node list: {e}") from None


def storage_objects(context: str, kubeconfig: str | None) -> list[dict]:
    """The cluster's PersistentVolumes and StorageClasses (for components.core.storage_guard)."""
    text = _kubectl_get(context, kubeconfig, "persistentvolumes,storageclasses")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InventoryError(f"kube context {context!r}: kubectl output is not JSON: {e}") from None
    items = doc.get("items") if isinstance(doc, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
