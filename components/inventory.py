"""Live node lookup during preview and up, against the same context as the Kubernetes provider.

`command.local.run` is an invoke: it runs on every preview and up (a resource would run once and keep
stale hardware), and its failure surfaces as a Pulumi error we can rephrase with the context's name.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path

from components.nodes import Inventory, NodeDataError, parse_nodes


class InventoryError(Exception):
    """The node list could not be read; the message names the context or file."""


def kubectl_command(context: str, kubeconfig_path: str | None) -> str:
    parts = ["kubectl", "get", "nodes", "-o", "json", "--request-timeout=30s", f"--context={context}"]
    if kubeconfig_path:
        parts.append(f"--kubeconfig={kubeconfig_path}")
    return shlex.join(parts)


def from_file(path: str | Path, base_dir: Path, source: str = "gpu-jupyterhub:nodes.file") -> Inventory:
    """An offline node list; a relative path is taken from ``base_dir``; errors name ``source``."""
    p = Path(path)
    if not p.is_absolute():
        p = base_dir / p
    try:
        return parse_nodes(p.read_text())
    except OSError as e:
        raise InventoryError(f"{source}: cannot read {p}: {e.strerror}") from None
    except NodeDataError as e:
        raise InventoryError(f"{source}: {p}: {e}") from None


def from_cluster(context: str, kubeconfig: str | None) -> Inventory:
    """Run kubectl through the command provider's invoke and parse its output."""
    import pulumi_command as command

    tmp: str | None = None
    try:
        if kubeconfig:
            fd, tmp = tempfile.mkstemp(prefix="gpu-jupyterhub-kubeconfig-")
            with os.fdopen(fd, "w") as f:  # 0600 by mkstemp; removed right after the call
                f.write(kubeconfig)
        try:
            result = command.local.run(command=kubectl_command(context, tmp))
        except Exception as e:  # provider or kubectl failure: say which cluster
            raise InventoryError(
                f"cannot list nodes of kube context {context!r} (kubectl get nodes): {e}. "
                "Check the context and that the cluster is reachable, or set gpu-jupyterhub:nodes.file "
                "to an offline node list."
            ) from None
    finally:
        if tmp:
            os.unlink(tmp)
    try:
        return parse_nodes(result.stdout)
    except NodeDataError as e:
        raise InventoryError(f"kube context {context!r}: kubectl output is not a node list: {e}") from None
