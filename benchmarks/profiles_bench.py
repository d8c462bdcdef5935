"""Profile and values generation at 10 to 5,000 GPU nodes: evaluation time and values size.

Targets (printed, not asserted): under 1 s and 256 KiB at 1,000 nodes, under 2 s and 700 KiB at 5,000.
The chart keeps all values, as YAML, in the hub's Secret, which Kubernetes caps at 1 MiB (Helm's own
release Secret is gzipped and matters less). The time is node parsing, profiles and values together
(what a preview adds), plus the plan's YAML rendering; the JSON, YAML and gzipped sizes are printed.

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

from components.cli.plan import render_values  # noqa: E402
from components.core.config_load import parse_config  # noqa: E402
from components.core.nodes import parse_nodes  # noqa: E402
from components.core.values import build_values  # noqa: E402
from tests.conftest import BASE_CONFIG, GIVEN_REFS  # noqa: E402
from tests.fixtures.nodefactory import many  # noqa: E402

# GPU nodes -> (seconds, bytes of YAML values)
TARGETS = {1000: (1.0, 256 * 1024), 5000: (2.0, 700 * 1024)}


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
    for count, (seconds, size) in TARGETS.items():
        print(f"target at {count} GPU nodes: < {seconds} s, YAML values < {size // 1024} KiB")
    print(f"{'GPU nodes':>10} {'median s':>9} {'JSON KiB':>9} {'YAML KiB':>9} {'gzip KiB':>9} {'profiles':>9}")
    for count in (10, 100, 1000, 5000):
        seconds, size, yaml_size, gz, profiles = measure(count, repeats=5 if count < 5000 else 3)
        flag = ""
        if count in TARGETS:
            ok = seconds < TARGETS[count][0] and yaml_size < TARGETS[count][1]
            flag = "  within target" if ok else "  OVER TARGET"
        print(
            f"{count:>10} {seconds:>9.3f} {size / 1024:>9.1f} {yaml_size / 1024:>9.1f} {gz / 1024:>9.1f} "
            f"{profiles:>9}{flag}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
