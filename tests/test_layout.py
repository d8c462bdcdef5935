"""The tree's rules (issue 27), checked on the import graph. Four places, one rule each: the pure core
(components/core/) imports neither Pulumi nor anything that reaches a cluster or a network; code that runs in the
cluster lives in components/shipped/ and travels as text, handed out by components/shipped/__init__.py alone, and
imports nothing of the program (it runs on the hub image, without it); a command (components/cli/) builds on the
core, never on another command; Pulumi config is read in __main__.py alone. Also: core files and functions stay
short enough to read, and the README's module table names every module."""

from __future__ import annotations

import ast
import re
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


# The core is pure: nothing of Pulumi, nothing that reaches a cluster or a network, and of the program only the
# core itself and the shipped files' handout (values puts their text into the chart values).
CLUSTER_OR_NETWORK = ("pulumi", "subprocess", "socket", "urllib", "http", "requests", "kubernetes", "ssl")


def import_problems(path: Path) -> list[str]:
    """What a file imports that its place in the tree does not allow (empty when it keeps the rules)."""
    found = imports(path)
    place = path.relative_to(ROOT).parts
    problems = []
    if place[:2] == ("components", "core"):
        problems += [m for m in found if m.split(".")[0] in CLUSTER_OR_NETWORK]
        problems += [
            m for m in found
            if m.startswith("components.") and not m.startswith(("components.core", "components.shipped"))
        ]  # fmt: skip
    if place[:2] == ("components", "cli"):
        problems += [m for m in found if m.startswith("components.cli.")]  # a command builds on the core alone
    if place[0] in ("components", "scripts"):
        # Pulumi config is read in __main__.py, and components get plain arguments
        problems += [m for m in found if m.startswith("pulumi.runtime") or m in ("pulumi.Config", "pulumi.config")]
        if "pulumi.Config(" in path.read_text():
            problems.append("pulumi.Config()")
    return sorted(problems)


def test_each_place_keeps_its_import_rule() -> None:
    offenders = {str(p.relative_to(ROOT)): import_problems(p) for p in program_files() if import_problems(p)}
    assert offenders == {}


def test_the_rules_catch_a_file_that_breaks_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    cases = {
        "components/core/leaky.py": ("import pulumi\nimport subprocess\nfrom components.inventory import from_file\n"),
        "components/cli/chained.py": "from components.cli.plan import main\n",
        "components/reads_config.py": "from pulumi.runtime import config\nx = pulumi.Config('ns')\n",
    }
    for name, text in cases.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = {name: import_problems(tmp_path / name) for name in cases}
    assert found == {
        "components/core/leaky.py": ["components.inventory", "components.inventory.from_file", "pulumi", "subprocess"],
        "components/cli/chained.py": ["components.cli.plan", "components.cli.plan.main"],
        "components/reads_config.py": ["pulumi.Config()", "pulumi.runtime", "pulumi.runtime.config"],
    }


def test_core_files_and_functions_stay_readable() -> None:
    """No core file over ~500 lines and no function over ~80, unless a ``# long:`` comment on the line
    before its ``def`` says why."""
    too_long = []
    for path in sorted(ROOT.glob("components/core/*.py")):
        text = path.read_text()
        lines = text.splitlines()
        if len(lines) > 500:
            too_long.append(f"{path.name}: {len(lines)} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                reason = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                if length > 80 and not reason.startswith("# long:"):
                    too_long.append(f"{path.name}: {node.name} is {length} lines")
    assert too_long == []


def test_the_readme_module_table_names_every_module() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| module | what it does |") :].split("\n\n")[0]
    listed = set(re.findall(r"`(?:components/(?:core/|cli/|shipped/)?)?([a-z_]+\.py|[a-z_]+/)`", table))
    modules = {p.name for p in ROOT.glob("components/**/*.py") if p.name != "__init__.py"}
    not_modules = {"backup_scripts/", "shipped/", "__init__.py"}
    assert sorted(modules - listed) == [], "add the module to the README's module table"
    assert sorted(listed - modules - not_modules) == [], "the README names a module that is gone"
