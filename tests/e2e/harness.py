"""The e2e tier's view of scripts/e2e: the simulated cluster and the Pulumi project helpers."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "e2e"))

import cluster  # noqa: E402  (scripts/e2e/cluster.py)
from project import (  # noqa: E402  (scripts/e2e/project.py)
    CHART_DIR,
    DIGEST,
    IMAGE_REFS,
    TOOLS,
    PulumiProject,
    Result,
    example_config,
)

__all__ = [
    "CHART_DIR",
    "DIGEST",
    "IMAGE_REFS",
    "TOOLS",
    "PulumiProject",
    "Result",
    "cluster",
    "example_config",
    "missing_tools",
]


def missing_tools() -> list[str]:
    bin_dir = cluster.toolchain_bin()
    return [t for t in TOOLS if not (bin_dir / t).exists()]
