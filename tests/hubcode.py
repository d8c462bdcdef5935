"""Run hub-side code (hub.extraConfig text) as the hub does, attributed to its source file for coverage.

The program ships ``components/live_profiles.py``, ``hub_guard.py`` and ``gpu_culler.py`` as text in the
Helm values, and the hub executes that text. Executed as a plain string, coverage cannot tell which file
ran; compiled with the source file's own path (the shipped text starts with the file, unchanged), every
line counts for that file while the test still runs exactly the shipped text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

COMPONENTS = Path(__file__).resolve().parents[1] / "components"
SHIPPED = [COMPONENTS / n for n in ("live_profiles.py", "hub_guard.py", "gpu_culler.py")]


def filename_for(text: str) -> str:
    """The source file the shipped text begins with, or a pseudo-name for other config text."""
    for path in SHIPPED:
        if text.startswith(path.read_text()):
            return str(path)
    return "<hub.extraConfig>"


def exec_hub_text(text: str, namespace: dict[str, Any]) -> dict[str, Any]:
    exec(compile(text, filename_for(text), "exec"), namespace)
    return namespace
