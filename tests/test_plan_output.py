"""The plan command's output as a person reads it (issue 28): the table and the form within 120 columns for every
fixture, long names broken after a separator rather than mid-word, one memory unit, a true last line, and JSON that
ends in a newline."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from tests.conftest import plan_cli

# markup.json is refused as a node file (names the API server would refuse): test_form_escaping.py
FIXTURES = sorted(f for f in (Path(__file__).parent / "fixtures" / "nodes").glob("*.json") if f.stem != "markup")


@pytest.mark.parametrize("nodes", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_the_table_fits_120_columns(nodes: Path) -> None:
    out = plan_cli("--stack-file", "Pulumi.dev.yaml", "--nodes", str(nodes), "--output", "table")
    assert out.returncode == 0, out.stderr
    wide = [line for line in out.stdout.splitlines() if len(line) > 120]
    assert wide == []


@pytest.mark.parametrize("nodes", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_the_values_fit_120_columns_but_for_the_image_regex(nodes: Path) -> None:
    """--output values: the hub-side code (kept within 112 columns, the YAML indents it by up to 8), the pinned
    image list and the culler's profiles one per line; only KubeSpawner's validation_regex stays one line."""
    out = plan_cli("--stack-file", "Pulumi.dev.yaml", "--nodes", str(nodes), "--output", "values")
    assert out.returncode == 0, out.stderr
    wide = [line for line in out.stdout.splitlines() if len(line) > 120]
    assert [line for line in wide if not line.lstrip().startswith("validation_regex: ")] == []


def test_a_long_taint_breaks_after_a_separator_and_memory_reads_in_gib() -> None:
    out = plan_cli("--stack-file", "Pulumi.dev.yaml", "--nodes", "tests/fixtures/nodes/mixed.json").stdout
    lines = out.splitlines()
    [i] = [n for n, line in enumerate(lines) if line.startswith("cp-1 ")]
    assert lines[i].endswith("taint node-role.kubernetes.io/"), lines[i]  # was ".../control-plan" + "e:NoSchedule"
    assert lines[i + 1].strip() == "control-plane:NoSchedule: no user pods"
    rows = [line for line in lines if line.startswith("Standard Environment")]
    assert "6 GiB" in rows[0] and " 6G " not in rows[0]
    assert (
        lines[-1]
        == "Images are built by `pulumi up` and pinned by the digests it pushes (`--wide` shows the references)."
    )


def test_json_ends_with_a_newline() -> None:
    out = plan_cli("--stack-file", "Pulumi.dev.yaml", "--nodes", "tests/fixtures/nodes/mixed.json", "--output", "json")
    assert out.stdout.endswith("}\n")
    json.loads(out.stdout)


@pytest.mark.parametrize("nodes", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_the_form_lists_every_profile_and_choice_within_120_columns(nodes: Path) -> None:
    """--output form: what the spawn page lists, from the same values --output json prints."""
    args = ("--stack-file", "Pulumi.dev.yaml", "--nodes", str(nodes))
    form = plan_cli(*args, "--output", "form")
    assert form.returncode == 0, form.stderr
    lines = form.stdout.splitlines()
    assert [line for line in lines if len(line) > 120] == []
    profiles = json.loads(plan_cli(*args, "--output", "json").stdout)["singleuser"]["profileList"]
    heads = [line for line in lines if line.startswith(("(*) ", "( ) "))]
    assert [h[4:] for h in heads] == [html.unescape(p["display_name"]) for p in profiles]
    assert sum(h.startswith("(*)") for h in heads) == 1
    flat = " ".join(line.strip() for line in lines)
    for profile in profiles:
        for option in (profile.get("profile_options") or {}).values():
            for choice in option["choices"].values():
                label = ("*" if choice.get("default") else "") + html.unescape(choice["display_name"])
                assert label in flat, label


def test_the_form_reads_as_a_user_sees_it() -> None:
    homelab = "tests/fixtures/nodes/homelab.json"
    out = plan_cli("--stack-file", "Pulumi.dev.yaml", "--nodes", homelab, "--output", "form")
    lines = out.stdout.splitlines()
    assert lines[0] == "(*) Standard Environment (CPU)"
    assert "    Size: 0.5 CPU · 3 GiB | *1.5 CPU · 6 GiB | 3 CPU · 12 GiB | 6 CPU · 24 GiB" in lines
    assert "    Node: *Any of 1 node(s) | gpu-4090: 1 x NVIDIA GeForce RTX 4090, 24 GiB" in lines
    assert not any("gpu-ws-off" in line for line in lines), "a NotReady node is no choice"
