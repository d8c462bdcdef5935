"""Offline plan: the Helm values or the spawn form's profiles for a stack file and a node list.

    python -m components.cli.plan --stack-file Pulumi.dev.yaml --nodes nodes.json \
        [--output table|form|values|json] [--wide]

It calls the same functions as the Pulumi program, so what it prints is what ``pulumi up`` deploys
(with images built by the program, references show the version tag until the build pins a digest).
Secrets are never read: encrypted stack values stay placeholders.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

from components.core.config import StackConfig
from components.core.config_load import StackFileError, read_stack_file
from components.core.egress_spec import BLOCKED_V4, BLOCKED_V6, blocked_addresses
from components.core.nodes import Inventory
from components.core.profile_options import ANY_NODE
from components.core.profiles import ProfilePlan, build_profiles
from components.core.values import (
    auth_notes,
    chart_images,
    image_refs_for_plan,
    registry_notes,
    values_from_plan,
    values_size_warning,
)
from components.inventory import InventoryError, from_file


class PlanError(Exception):
    """Bad input for the plan command (exit code 2)."""


def load_inputs(stack_file: Path, nodes_file: Path | None) -> tuple[StackConfig, Inventory]:
    try:
        cfg = read_stack_file(stack_file)
    except StackFileError as e:
        raise PlanError(str(e)) from None
    try:
        if nodes_file is not None:
            inventory = from_file(nodes_file, Path.cwd(), source="--nodes")
        elif cfg.nodes.file:
            inventory = from_file(cfg.nodes.file, stack_file.parent)
        else:
            raise PlanError(
                "no node list: pass --nodes FILE (kubectl get nodes -o json) or set gpu-jupyterhub:nodes.file"
            )
    except InventoryError as e:
        raise PlanError(str(e)) from None
    return cfg, inventory


class _ValuesDumper(yaml.SafeDumper):
    """Multi-line strings (the hub-side code, config files) as literal blocks, so they read as code."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_ValuesDumper.add_representer(str, _str)


def render_values(values: dict[str, Any]) -> str:
    """Deterministic YAML (sorted keys) so equal inputs give byte-identical output."""
    return yaml.dump(values, Dumper=_ValuesDumper, sort_keys=True, default_flow_style=False, width=1000)


TABLE_WIDTH = 120
_NAME_WIDTH = 56


def _gpu_text(override: dict[str, Any], options: dict[str, Any]) -> str:
    """What a profile requests from the device plugin: "1 x gpu", "1-4 x gpu", "1 x mig-1g.10gb or mig-3g.40gb"."""
    choices = [c["kubespawner_override"] for c in options.get("gpus", {}).get("choices", {}).values()] or [override]
    requests: dict[str, set[int]] = {}
    for ov in choices:
        for resource, n in (ov.get("extra_resource_limits") or {}).items():
            if n is not None:
                requests.setdefault(resource.removeprefix("nvidia.com/"), set()).add(int(n))
    if not requests:
        return "-"
    counts = sorted({n for ns in requests.values() for n in ns})
    amount = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{amount} x {' or '.join(sorted(requests))}"


def _choices_text(options: dict[str, Any], registry: str) -> str:
    parts = []
    for name, option in options.items():
        choices = option.get("choices", {})
        if name == "node":
            named = len(choices) - (1 if ANY_NODE in choices else 0)
            unlisted = option.get("unlisted_choice", {})
            if unlisted.get("enabled"):
                count = unlisted["validation_regex"].count("|") + 1
                parts.append(f"node (any, or one of {count} typed by name)")
            else:
                parts.append(f"node (any, or {named} by name)" if ANY_NODE in choices else f"node ({named})")
        elif name == "gpus":
            continue  # shown in the GPU column
        elif name == "size":
            labels = [c["display_name"] for c in choices.values()]
            parts.append(f"size ({labels[0]} to {labels[-1]}, {len(labels)} steps)")
        else:
            other = f" + any from {registry}" if option.get("unlisted_choice", {}).get("enabled") else ""
            parts.append(f"{name} ({len(choices)}{other})")
    return ", ".join(parts)


def _culling_text(cfg: StackConfig) -> str:
    c = cfg.culling
    if not c.enabled:
        return "Culling: off (idle servers keep running)."
    gpu = f"; servers of GPU profiles after {c.gpuTimeoutSeconds} s" if c.gpuTimeoutSeconds else ""
    return f"Culling: idle servers stop after {c.timeoutSeconds} s{gpu}."


def _range(low: str, high: str) -> str:
    return low if low == high else f"{low}-{high}"


def _short_image(ref: str) -> str:
    """harbor.lab/jupyter/jupyter-ml-cpu@sha256:... -> jupyter-ml-cpu"""
    return ref.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]


def _memory_text(spec: str) -> str:
    """KubeSpawner's 1024-based byte spec ("6G") in the unit the size choices use ("6 GiB")."""
    m = re.fullmatch(r"([0-9.]+)([KMGT]?)", str(spec))
    return f"{m.group(1)} {m.group(2)}iB" if m and m.group(2) else str(spec)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(cfg: StackConfig, plan: ProfilePlan, *, wide: bool = False) -> str:
    """The spawn form and the nodes, for a person. Fits 120 columns unless ``wide``."""
    header = ("PROFILE", "IMAGE", "CPU", "MEMORY", "GPU") + (("SLUG", "CHOICES") if wide else ())
    rows: list[tuple[str, ...]] = [header]
    choice_lines: list[str | None] = [None]
    for p in plan.profiles:
        ov = p["kubespawner_override"]
        options = p.get("profile_options", {})
        image = ov.get("image")
        if image is None and "image" in options:
            image = next(c for c in options["image"]["choices"].values() if c.get("default"))["kubespawner_override"][
                "image"
            ]
        name = p["display_name"] + (" *" if p.get("default") else "")
        choices = _choices_text(options, cfg.registry.host)
        row = (
            name if wide else _fit(name, _NAME_WIDTH),
            str(image) if wide else _short_image(str(image)),
            _range(f"{ov['cpu_guarantee']:g}", f"{ov['cpu_limit']:g}"),
            _range(_memory_text(ov["mem_guarantee"]), _memory_text(ov["mem_limit"])),
            _gpu_text(ov, options),
        )
        rows.append(row + ((p["slug"], choices or "-") if wide else ()))
        choice_lines.append(None if wide or not choices else f"    choices: {choices}")
    lines = _columns(rows).split("\n")
    out = [line for pair in zip(lines, choice_lines, strict=True) for line in pair if line is not None]
    out.append("* the default profile. CPU and MEMORY: per server, guarantee-limit where they differ (default size).")
    out.append(_culling_text(cfg))
    out += ["", "Nodes:"]
    node_rows: list[tuple[str, ...]] = [("NODE", "ROLE", "GPUS", "GPU PROFILES", "WHY")]
    for r in plan.nodes:
        role = "control-plane" if r.control_plane else "-"
        gpu_profiles = "-" if r.gpus == "-" else ("yes" if r.included else "no")
        node_rows.append((r.name, role, r.gpus if wide else _fit(r.gpus, 44), gpu_profiles, r.reason))
    out += _columns(node_rows, None if wide else TABLE_WIDTH).split("\n")
    out += ["", *_chart_image_lines(cfg, wide=wide)]
    out += ["", *_egress_lines(cfg, plan)]
    notes = plan.notes + registry_notes(cfg) + auth_notes(cfg)
    if notes:
        out += ["", "Notes:", *(f"- {n}" for n in notes)]
    if cfg.images.build:
        out += [
            "",
            "Images are built by `pulumi up` and pinned by the digests it pushes (`--wide` shows the references).",
        ]
    if not wide:
        out = [line for text in out for line in (_wrap(text) if len(text) > TABLE_WIDTH else [text])]
    return "\n".join(out) + "\n"


def _chart_image_lines(cfg: StackConfig, *, wide: bool) -> list[str]:
    """One line per image of the chart itself, as the release pulls it (the same references the values set)."""
    given = cfg.chart.images
    source = "chart.images" if given.registry or given.hub or given.proxy else "the chart's defaults"
    images = chart_images(cfg)
    width = max(len(path) for path in images)
    lines = [f"Chart images (from {source}):"]
    for path, ref in images.items():
        shown = ref if wide else re.sub(r"@sha256:([a-f0-9]{12})[a-f0-9]{52}$", r"@sha256:\1…", ref)
        lines.append(f"  {path.ljust(width)}  {shown}")
    return lines


def _egress_lines(cfg: StackConfig, plan: ProfilePlan) -> list[str]:
    """What user pods may reach: the rule values.py deploys (egress_spec), in words."""
    lines = ["User pods may reach (NetworkPolicy egress): the hub and proxy, DNS in kube-system, and"]
    listed = 0
    for cidr, blocked in blocked_addresses(plan.node_addresses).items():
        lines.append(f"  {cidr} except {', '.join(blocked)}")
        listed += len([b for b in blocked if b not in BLOCKED_V4 + BLOCKED_V6])
    known = len(plan.node_addresses)
    lines.append(f"  ({known} node addresses read from the cluster, {listed} of them outside those blocks and listed)")
    if cfg.network.userEgressCidrs:
        lines.append(f"  and network.userEgressCidrs: {', '.join(sorted(cfg.network.userEgressCidrs))}")
    return lines


def _wrap(text: str) -> list[str]:
    indent = " " * (len(text) - len(text.lstrip()) + 2)
    return textwrap.wrap(text, TABLE_WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def _wrap_at_separators(text: str, room: int) -> list[str]:
    """Lines of at most ``room`` characters, broken between words; a word longer than that (a taint such as
    ``node-role.kubernetes.io/control-plane:NoSchedule:``) after its ``/`` or ``:``, never mid-name."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        pieces = re.findall(r"[^/:]+[/:]*|[/:]+", word) if len(word) > room else [word]
        for i, piece in enumerate(pieces):
            glue = "" if i or not line else " "
            if line and len(line) + len(glue) + len(piece) > room:
                lines.append(line)
                line, glue = "", ""
            line += glue + piece
    return [*lines, line] if line or not lines else lines


def _columns(rows: list[tuple[str, ...]], width: int | None = None) -> str:
    """Aligned columns; with ``width``, the last column wraps onto lines indented to its start."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    start = sum(widths[:-1]) + 2 * (len(widths) - 1)
    lines = []
    for r in rows:
        head = "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False))
        last = [r[-1]]
        if width is not None and start + len(r[-1]) > width and width - start >= 20:
            room = width - start
            last = _wrap_at_separators(r[-1], room)
        lines.append(f"{head}  {last[0]}".rstrip())
        lines += [(" " * start + cont).rstrip() for cont in last[1:]]
    return "\n".join(lines)


def render_form(profiles: list[dict[str, Any]], width: int = 120) -> str:
    """The spawn form as text: each profile (``(*)`` the default), its description, every option's choices
    (``*`` the default). The deployed texts are HTML-escaped for the page; here they are shown as a user reads
    them. The demo passes the deployed list with the live free/total GPUs; ``--output form`` the planned one."""
    lines: list[str] = []
    for profile in profiles:
        lines.append(f"{'(*)' if profile.get('default') else '( )'} {html.unescape(profile['display_name'])}")
        if profile.get("description"):
            lines += textwrap.wrap(html.unescape(profile["description"]), width, initial_indent=" " * 4,
                                   subsequent_indent=" " * 4)  # fmt: skip
        for name, option in (profile.get("profile_options") or {}).items():
            labels = [
                ("*" if choice.get("default") else "") + html.unescape(choice["display_name"])
                for choice in (option.get("choices") or {}).values()
            ]
            if (option.get("unlisted_choice") or {}).get("enabled"):
                labels.append(html.unescape(option["unlisted_choice"].get("display_name", "Other")) + " (typed)")
            text = f"{html.unescape(option.get('display_name', name))}: {' | '.join(labels)}"
            lines += textwrap.wrap(text, width, initial_indent=" " * 4, subsequent_indent=" " * 6,
                                   break_on_hyphens=False)  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.cli.plan", description=__doc__.split("\n")[0])
    parser.add_argument("--stack-file", required=True, type=Path, help="Pulumi.<stack>.yaml")
    parser.add_argument("--nodes", type=Path, help="output of `kubectl get nodes -o json`")
    parser.add_argument(
        "--output",
        choices=["values", "table", "json", "form"],
        default="table",
        help="table: the spawn form and the nodes (120 columns; --wide for everything); "
        "form: every profile with its choices, as the spawn page lists them; "
        "values: the Helm values as YAML; json: the same values as JSON",
    )
    parser.add_argument("--wide", action="store_true", help="table: full names, image references and choices")
    args = parser.parse_args(argv)
    try:
        cfg, inventory = load_inputs(args.stack_file, args.nodes)
    except PlanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    refs = image_refs_for_plan(cfg)
    plan = build_profiles(cfg, inventory, refs)
    values = values_from_plan(cfg, plan, refs)
    warning = values_size_warning(values)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if args.output == "table":
        sys.stdout.write(render_table(cfg, plan, wide=args.wide))
    elif args.output == "form":
        sys.stdout.write(render_form(values["singleuser"]["profileList"]))
    else:
        sys.stdout.write(
            render_values(values) if args.output == "values" else json.dumps(values, sort_keys=True) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
