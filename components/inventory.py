"""Live node lookup during preview and up, against the same context as the Kubernetes provider.

kubectl runs in the program itself on every preview and up (a resource would run once and keep stale
hardware). It used to run through the command provider's `local.run` invoke, which does the same on the same
machine; calling it directly needs no extra plugin, and its failure is rephrased here with the context's name.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from components.nodes import Inventory, NodeDataError, parse_nodes


class InventoryError(Exception):
    """The node list could not be read; the message names the context or file."""


KUBECTL_TIMEOUT_SECONDS = 60


def kubectl_command(context: str, kubeconfig_path: str | None) -> list[str]:
    parts = ["kubectl", "get", "nodes", "-o", "json", "--request-timeout=30s", f"--context={context}"]
    if kubeconfig_path:
        parts.append(f"--kubeconfig={kubeconfig_path}")
    return parts


def from_file(path: str | Path, base_dir: Path, source: str = "gpu-jupyterhub:nodes.file") -> Inventory:
    """An offline node list; a relative path is taken from ``base_dir``; errors name ``source``."""
    p = Path(path)
    if not p.is_absolute():
        p = base_dir / p
    try:
        return parse_nodes(p.read_bytes())
    except OSError as e:
        raise InventoryError(f"{source}: cannot read {p}: {e.strerror}") from None
    except NodeDataError as e:
        raise InventoryError(f"{source}: {p}: {e}") from None


def from_cluster(context: str, kubeconfig: str | None) -> Inventory:
    """List the nodes of ``context`` with kubectl (the kubeconfig secret, if any, via a 0600 temp file)."""
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
                kubectl_command(context, tmp),
                capture_output=True,
                text=True,
                timeout=KUBECTL_TIMEOUT_SECONDS,
                check=False,
            )
        except FileNotFoundError:
            raise InventoryError(
                f"cannot list nodes of kube context {context!r}: kubectl is not on PATH. Install kubectl, or set "
                "gpu-jupyterhub:nodes.file to an offline node list."
            ) from None
        except subprocess.TimeoutExpired:
            raise InventoryError(
                f"cannot list nodes of kube context {context!r}: kubectl get nodes did not answer within "
                f"{KUBECTL_TIMEOUT_SECONDS} s. {hint}"
            ) from None
    finally:
        if tmp:
            os.unlink(tmp)
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or f"exit code {proc.returncode}").replace(tmp or "\0", "<kubeconfig>")
        raise InventoryError(f"cannot list nodes of kube context {context!r} (kubectl get nodes): {detail}. {hint}")
    try:
        return parse_nodes(proc.stdout)
    except NodeDataError as e:
        raise InventoryError(f"kube context {context!r}: kubectl output is not a node list: {e}") from None
