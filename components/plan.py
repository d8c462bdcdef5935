"""Offline plan: the Helm values or the spawn form's profiles for a stack file and a node list.

    python -m components.plan --stack-file Pulumi.dev.yaml --nodes nodes.json [--output values|table]

It calls the same functions as the Pulumi program, so what it prints is what ``pulumi up`` deploys
(with images built by the program, references show the version tag until the build pins a digest).
Secrets are never read: encrypted stack values stay placeholders.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from components.config import ConfigError, StackConfig, load_stack_file
from components.inventory import InventoryError, from_file
from components.nodes import Inventory
from components.profiles import ProfilePlan, build_profiles
from components.values import image_refs_for_plan, values_from_plan


class PlanError(Exception):
    """Bad input for the plan command (exit code 2)."""


def load_inputs(stack_file: Path, nodes_file: Path | None) -> tuple[StackConfig, Inventory]:
    try:
        data = yaml.safe_load(stack_file.read_text())
    except OSError as e:
        raise PlanError(f"cannot read stack file {stack_file}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise PlanError(f"stack file {stack_file} is not valid YAML: {e}") from None
    try:
        cfg = load_stack_file(data or {})
    except ConfigError as e:
        raise PlanError(f"{stack_file}: {e}") from None
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


def render_values(values: dict[str, Any]) -> str:
    """Deterministic YAML (sorted keys) so equal inputs give byte-identical output."""
    return yaml.safe_dump(values, sort_keys=True, default_flow_style=False, width=1000)


def _gpu_text(override: dict[str, Any]) -> str:
    limits = {k: v for k, v in (override.get("extra_resource_limits") or {}).items() if v is not None}
    return ", ".join(f"{v} x {k}" for k, v in sorted(limits.items())) or "-"


def render_table(cfg: StackConfig, plan: ProfilePlan) -> str:
    rows: list[tuple[str, ...]] = [("PROFILE", "SLUG", "IMAGE", "CPU", "MEMORY", "GPU", "CHOICES")]
    for p in plan.profiles:
        ov = p["kubespawner_override"]
        options = p.get("profile_options", {})
        image = ov.get("image")
        if image is None and "image" in options:
            image = next(c for c in options["image"]["choices"].values() if c.get("default"))["kubespawner_override"][
                "image"
            ]
        gpu = _gpu_text(ov)
        if "gpus" in options:
            gpu = " | ".join(c["display_name"] for c in options["gpus"]["choices"].values())
        choices = []
        for name, option in options.items():
            n = len(option.get("choices", {}))
            extra = " + other" if option.get("unlisted_choice", {}).get("enabled") else ""
            choices.append(f"{name}:{n}{extra}")
        rows.append(
            (
                p["display_name"] + (" [default]" if p.get("default") else ""),
                p["slug"],
                str(image),
                f"{ov['cpu_guarantee']:g}-{ov['cpu_limit']:g}",
                f"{ov['mem_guarantee']}-{ov['mem_limit']}",
                gpu,
                " ".join(choices) or "-",
            )
        )
    out = [_columns(rows), "", "Nodes:"]
    node_rows: list[tuple[str, ...]] = [("NODE", "GPUS", "IN PROFILES", "WHY")]
    for r in plan.nodes:
        node_rows.append((r.name, r.gpus, "yes" if r.included else "no", r.reason))
    out.append(_columns(node_rows))
    if plan.notes:
        out += ["", "Notes:", *(f"- {n}" for n in plan.notes)]
    if cfg.images.build:
        out += ["", "Images are built by `pulumi up`; tags above are replaced by the pushed digests."]
    return "\n".join(out) + "\n"


def _columns(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.plan", description=__doc__.split("\n")[0])
    parser.add_argument("--stack-file", required=True, type=Path, help="Pulumi.<stack>.yaml")
    parser.add_argument("--nodes", type=Path, help="output of `kubectl get nodes -o json`")
    parser.add_argument("--output", choices=["values", "table", "json"], default="table")
    args = parser.parse_args(argv)
    try:
        cfg, inventory = load_inputs(args.stack_file, args.nodes)
    except PlanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    refs = image_refs_for_plan(cfg)
    plan = build_profiles(cfg, inventory, refs)
    if args.output == "table":
        sys.stdout.write(render_table(cfg, plan))
    else:
        values = values_from_plan(cfg, plan, refs)
        sys.stdout.write(render_values(values) if args.output == "values" else json.dumps(values, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
