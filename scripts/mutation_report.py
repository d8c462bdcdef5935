"""Scores from mutmut's results (``mutmut results --all true`` output), per file and overall, and random
samples of the mutants not run yet (scripts/mutation.sh --sample N).

A full run of the core takes longer than a working session on 2 cores: most of the time goes to the
survivors, each of which runs every test that reaches its function (up to ~200 s). A seeded uniform sample of
the unrun mutants, run to the end, gives an unbiased estimate of their score; the overall estimate is the
measured mutants plus the sample's kill rate applied to the rest, with a 95 % Wilson interval. Mutants
listed in docs/mutation.md as equivalent (no test can tell them from the original) are reported apart.

Usage:
  python scripts/mutation_report.py RESULTS [--sample SAMPLE_FILE]   print the tables
  python scripts/mutation_report.py RESULTS --draw N [--seed S]       print N unrun mutant names
"""

from __future__ import annotations

import argparse
import collections
import math
import random
import re
import sys
from pathlib import Path

KILLED = ("killed", "timeout", "segfault", "caught by type check")
UNRUN = ("not checked", "skipped", "check was interrupted by user")
EQUIVALENT_DOC = Path(__file__).resolve().parents[1] / "docs" / "mutation.md"


def read_results(path: Path) -> dict[str, str]:
    """{mutant name: status} from lines such as ``    components.core.nodes.x_parse_node__mutmut_12: survived``."""
    out = {}
    for line in path.read_text().splitlines():
        if ": " in line:
            name, status = line.strip().rsplit(": ", 1)
            out[name] = status
    return out


def equivalent_names() -> set[str]:
    """Mutants docs/mutation.md judges equivalent: the list items of its "Equivalent mutants" section that start
    with a mutant's name in backticks."""
    if not EQUIVALENT_DOC.exists():
        return set()
    text = EQUIVALENT_DOC.read_text()
    section = text.split("## Equivalent mutants", 1)[-1].split("\n## ", 1)[0]
    return set(re.findall(r"^- `(components\.[^`]+__mutmut_\d+)`", section, re.MULTILINE))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def report(results: dict[str, str], sample: list[str]) -> None:
    """Per-file table, then the overall estimate from the sample. The score leaves equivalent mutants out
    (killed / (run - equivalent)); "raw" counts them as survivors."""
    equivalent = equivalent_names() & {n for n, s in results.items() if s == "survived"}
    by_file: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for name, status in results.items():
        status = "equivalent" if name in equivalent else status
        by_file[name.split(".")[1]][status] += 1
    columns = ("mutants", "killed", "survived", "equiv.", "no test", "unrun", "score", "raw")
    print(f"{'file':14} " + " ".join(f"{c:>8}" for c in columns))
    total: collections.Counter[str] = collections.Counter()
    for name, counts in sorted(by_file.items()):
        total.update(counts)
        _row(name, counts)
    _row("all", total)
    done = [n for n in sample if results.get(n) not in UNRUN]
    if not done:
        return
    killed = sum(1 for n in done if results[n] in KILLED)
    equiv = sum(1 for n in done if n in equivalent)
    lo, hi = wilson(killed, len(done) - equiv)
    rate = killed / max(1, len(done) - equiv)
    print(
        f"sample: {len(done)} of {len(sample)} drawn mutants run: {killed} killed, {equiv} equivalent, "
        f"{len(done) - killed - equiv} survived; {100 * rate:.1f} % killed (95 % interval "
        f"{100 * lo:.1f}-{100 * hi:.1f} %)"
    )
    # the mutants with a result, plus the unrun ones at the sample's rates
    unrun = sum(total[k] for k in UNRUN)
    known_killed = sum(total[k] for k in KILLED)
    known_scored = sum(total.values()) - unrun - total["equivalent"]
    unrun_scored = unrun * (1 - equiv / len(done))
    for label, r in (("estimate", rate), ("low", lo), ("high", hi)):
        score = (known_killed + r * unrun_scored) / (known_scored + unrun_scored)
        print(
            f"overall {label}: {100 * score:.1f} % killed of the non-equivalent mutants "
            f"({sum(total.values()) - unrun} with a result, {unrun} unrun estimated from the sample)"
        )


def _row(name: str, counts: collections.Counter[str]) -> None:
    killed = sum(counts[k] for k in KILLED)
    unrun = sum(counts[k] for k in UNRUN)
    scored = sum(counts.values()) - unrun
    score = f"{100 * killed / (scored - counts['equivalent']):.1f}%" if scored > counts["equivalent"] else "-"
    raw = f"{100 * killed / scored:.1f}%" if scored else "-"
    cells = (
        sum(counts.values()),
        killed,
        counts["survived"],
        counts["equivalent"],
        counts["no tests"],
        unrun,
        score,
        raw,
    )
    print(f"{name:14} " + " ".join(f"{c:>8}" for c in cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--sample", type=Path, help="file of sampled mutant names, one per line")
    parser.add_argument("--draw", type=int, help="print this many unrun mutants, drawn uniformly")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    results = read_results(args.results)
    if args.draw is not None:
        unrun = sorted(n for n, s in results.items() if s in UNRUN)
        print("\n".join(random.Random(args.seed).sample(unrun, min(args.draw, len(unrun)))))
        return 0
    sample = args.sample.read_text().split() if args.sample and args.sample.exists() else []
    report(results, sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
