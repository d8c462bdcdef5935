"""Fails when the pure core's branch coverage (lines and branches together, as coverage reports it) is below
the floor; prints each core file's figure. Run after the suite (scripts/test.sh does, with no arguments)."""

from __future__ import annotations

import sys

import coverage

# The pure core: plain data in, plain data out (README, "How it behaves"); live_profiles and the guards
# run in the hub but are measured here through tests/hubcode.py.
CORE = [
    *(f"core/{name}" for name in (
        "availability_spec", "backup_spec", "config", "config_compute", "config_fields", "config_hub",
        "config_images", "config_load", "config_storage", "csi_mount", "egress_spec", "gpu_profiles", "hub_rbac",
        "hub_services",
        "image_rule", "image_specs", "node_table", "nodes", "prepull_spec", "profile_options", "profile_sizes",
        "profiles", "sizing", "storage_guard", "storage_spec", "values",
    )),
    "inventory", "cli/plan", "shipped/live_profiles",
]  # fmt: skip
FLOOR = 95.0


def main() -> int:
    cov = coverage.Coverage()
    cov.load()
    include = [f"components/{name}.py" for name in CORE]
    total = cov.report(include=include, precision=1, show_missing=False, skip_covered=False)
    if total < FLOOR:
        print(f"coverage_gate: the pure core is at {total:.1f}% branch coverage, below {FLOOR}%", file=sys.stderr)
        return 1
    print(f"coverage_gate: pure core {total:.1f}% (floor {FLOOR}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
