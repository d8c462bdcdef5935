"""What the program deploys, pinned: for every fixture node list, the plan command's values, table and form (the
functions `pulumi up` calls: tests/test_program.py checks the release values equal the plan's) hash to what
tests/fixtures/golden.json records, errors and warnings included. A refactor (issue 27 moves files) must leave
every one byte-identical; a change meant to alter them regenerates the file on purpose, and its diff shows which:
GPU_JUPYTERHUB_UPDATE_GOLDEN=1 pytest tests/test_golden_outputs.py"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from components.cli.plan import main as plan

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "fixtures" / "golden.json"
# markup.json is refused as a node file (test_form_escaping.py): its refusal is pinned too
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "nodes").glob("*.json"))
OUTPUTS = ("values", "table", "form")


def digest(nodes: Path, output: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = plan(["--stack-file", str(ROOT / "Pulumi.dev.yaml"), "--nodes", str(nodes), "--output", output])
    text = f"rc={rc}\n{out.getvalue()}\n--stderr--\n{err.getvalue()}".replace(str(ROOT), "<checkout>")
    return hashlib.sha256(text.encode()).hexdigest()  # the same wherever the checkout is


@pytest.mark.no_mutation  # every mutant changes some output; the focused tests say which and why
def test_every_output_for_every_fixture_is_what_was_pinned() -> None:
    now = {nodes.stem: {output: digest(nodes, output) for output in OUTPUTS} for nodes in FIXTURES}
    if os.environ.get("GPU_JUPYTERHUB_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(GOLDEN.read_text())
    changed = sorted(f"{n}:{o}" for n in now for o in OUTPUTS if now[n][o] != pinned.get(n, {}).get(o))
    assert not changed and sorted(pinned) == sorted(now), f"outputs changed: {changed}"
