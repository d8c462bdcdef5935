"""The tree's rules (issue 27), checked on the import graph: code that runs in the cluster lives in
components/shipped/ and travels as text, handed out by components/shipped/__init__.py alone; nothing of the
program, its commands, scripts or benchmarks imports a shipped file as a module, and shipped files import nothing
of the program (they run on the hub image, without it)."""

from __future__ import annotations

import ast
from pathlib import Path

from components import shipped
from components.core.values import LOGIN_FAILURES, LOGIN_PAUSE_SECONDS
from tests.hubcode import exec_hub_text

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_MODULES = {f"components.shipped.{Path(n).stem}" for n in shipped.HUB_FILES}


def imports(path: Path) -> set[str]:
    """Every module a file imports, ``from a import b`` counted as ``a.b`` too (b may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def program_files() -> list[Path]:
    files = [ROOT / "__main__.py", *ROOT.glob("components/*.py"), *ROOT.glob("components/c*/*.py")]
    files += [*ROOT.glob("scripts/**/*.py")]
    return sorted(files + list(ROOT.glob("benchmarks/*.py")))


def test_only_the_shipped_package_itself_is_imported() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imports(path) & SHIPPED_MODULES)
        for path in program_files()
        if imports(path) & SHIPPED_MODULES
    }
    assert offenders == {}, "read shipped files through components.shipped (text, path, load)"


def test_shipped_files_stand_alone() -> None:
    for name in shipped.HUB_FILES:
        leaked = sorted(m for m in imports(shipped.path(name)) if m == "components" or m.startswith("components."))
        assert leaked == [], name
    assert sorted(p.name for p in shipped.HERE.glob("*.py")) == sorted([*shipped.HUB_FILES, "__init__.py"])
    assert sorted(p.name for p in shipped.BACKUP_DIR.iterdir()) == sorted(shipped.BACKUP_SCRIPTS)


def test_the_native_login_throttle_is_the_guards() -> None:
    guard = exec_hub_text(shipped.text("hub_guard.py"), {})
    assert (guard["LOGIN_FAILURES"], guard["LOGIN_PAUSE_SECONDS"]) == (LOGIN_FAILURES, LOGIN_PAUSE_SECONDS)
