"""Profile and values generation at 10, 100 and 1000 GPU nodes: evaluation time and values size.

Targets (printed, not asserted): under 1 s and under 256 KiB at 1000 nodes. Helm stores a release in
a Secret capped near 1 MiB, so the values must stay well below that. The size that counts is the values
as JSON (what Pulumi hands Helm and what Helm keeps in the release, before gzip); the plan's YAML, with
its indentation, and the gzipped size are printed beside it.

    python -m benchmarks.profiles_bench
"""

from __future__ import annotations

import gzip
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.config import parse_config  # noqa: E402
from components.nodes import parse_nodes  # noqa: E402
from components.plan import render_values  # noqa: E402
from components.values import build_values  # noqa: E402
from tests.conftest import BASE_CONFIG, GIVEN_REFS  # noqa: E402
from tests.fixtures.nodefactory import many  # noqa: E402

TIME_TARGET_S = 1.0
SIZE_TARGET = 256 * 1024


def measure(count: int, repeats: int = 5) -> tuple[float, int, int, int, int]:
    cfg = parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}})
    text = json.dumps(many(count))
    times = []
    rendered = ""
    for _ in range(repeats):
        start = time.perf_counter()
        values = build_values(cfg, parse_nodes(text), GIVEN_REFS)
        rendered = render_values(values)
        times.append(time.perf_counter() - start)
    as_json = json.dumps(values, sort_keys=True, separators=(",", ":")).encode()
    return (
        statistics.median(times),
        len(as_json),
        len(rendered.encode()),
        len(gzip.compress(as_json)),
        len(values["singleuser"]["profileList"]),
    )


def main() -> int:
    print(f"targets at 1000 GPU nodes: < {TIME_TARGET_S} s, JSON values < 256 KiB")
    print(f"{'GPU nodes':>10} {'median s':>9} {'JSON KiB':>9} {'YAML KiB':>9} {'gzip KiB':>9} {'profiles':>9}")
    for count in (10, 100, 1000):
        seconds, size, yaml_size, gz, profiles = measure(count)
        flag = ""
        if count == 1000:
            ok = seconds < TIME_TARGET_S and size < SIZE_TARGET
            flag = "  within target" if ok else "  OVER TARGET"
        print(
            f"{count:>10} {seconds:>9.3f} {size / 1024:>9.1f} {yaml_size / 1024:>9.1f} {gz / 1024:>9.1f} "
            f"{profiles:>9}{flag}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
