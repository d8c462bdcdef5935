"""Code that runs in the cluster and travels as text: the hub's guards, live profile list, GPU culler and GPU
overview (inside the hub pod), the availability service (its own pod), the backup scripts (the backup Jobs).

The program never imports these files; it reads them, and this module is the one place that hands them out
(``text``, ``path``), as z2jh's chart globs its files/hub/ folder into the hub's ConfigMap. They run on the
chart's hub image or a restic image, with only what those have: the standard library, tornado, KubeSpawner,
kubernetes_asyncio; POSIX sh for the scripts.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).parent
HUB_FILES = ("live_profiles.py", "hub_guard.py", "gpu_culler.py", "availability_service.py", "gpu_overview.py")
BACKUP_SCRIPTS = ("backup.sh", "check.sh", "lib.sh", "restore.sh")
BACKUP_DIR = HERE / "backup_scripts"


def path(name: str) -> Path:
    """Where a shipped file is in this checkout (hub-side ``*.py`` or a backup script)."""
    if name in HUB_FILES:
        return HERE / name
    if name in BACKUP_SCRIPTS:
        return BACKUP_DIR / name
    raise KeyError(f"{name!r} is not shipped; shipped: {', '.join(HUB_FILES + BACKUP_SCRIPTS)}")


def text(name: str) -> str:
    """A shipped file's text, exactly as it goes into the values or a ConfigMap."""
    return path(name).read_text()


def load(name: str) -> ModuleType:
    """A hub-side file run as a module of its own (``components.shipped.<name>``), for the plan's demo and the
    benchmarks that call its functions the way the hub does; the program itself only reads the text."""
    module_name = f"{__name__}.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
