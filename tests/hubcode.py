"""Run hub-side code (hub.extraConfig text) as the hub does, attributed to its source file for coverage.

The program ships ``components/shipped/live_profiles.py``, ``hub_guard.py``, ``gpu_culler.py`` ... as text in the
Helm values, and the hub executes that text. Executed as a plain string, coverage cannot tell which file
ran; compiled with the source file's own path (the shipped text starts with the file, unchanged), every
line counts for that file while the test still runs exactly the shipped text. For the same reason the
text runs with ``__name__`` set to the file's module (``components.shipped.live_profiles``) and the caller's name
restored afterwards: the shipped code never reads ``__name__``, and its functions then carry the module
name that mutation testing (mutmut, scripts/mutation.sh) dispatches its mutants by.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components import shipped

COMPONENTS = Path(__file__).resolve().parents[1] / "components"
SHIPPED = [shipped.path(n) for n in shipped.HUB_FILES]


def filename_for(text: str) -> str:
    """The source file the shipped text begins with, or a pseudo-name for other config text."""
    for path in SHIPPED:
        if text.startswith(path.read_text()):
            return str(path)
    return "<hub.extraConfig>"


def module_for(filename: str) -> str | None:
    """``components.shipped.live_profiles`` for a shipped file, None for other config text."""
    path = Path(filename)
    return f"components.shipped.{path.stem}" if path in SHIPPED else None


def exec_hub_text(text: str, namespace: dict[str, Any]) -> dict[str, Any]:
    filename = filename_for(text)
    module = module_for(filename)
    caller_name = namespace.get("__name__")
    if module:
        namespace["__name__"] = module
    try:
        exec(compile(text, filename, "exec"), namespace)
    finally:
        if caller_name is None:
            namespace.pop("__name__", None)
        else:
            namespace["__name__"] = caller_name
    return namespace
