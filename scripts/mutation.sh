#!/usr/bin/env bash
# Mutation testing of the pure core with mutmut (config in pyproject.toml, [tool.mutmut]): every mutant of
# config, nodes, profiles, values, storage_spec and live_profiles runs against the fast unit tests that reach
# it, and the score is printed. Not in CI (it takes hours on 2 cores); run it after changing the core or its
# tests, and read the survivors with `.work/mutation/venv/bin/mutmut show <name>`.
# Usage: scripts/mutation.sh [FILE-GLOB ...]   e.g. scripts/mutation.sh 'components.nodes*'
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || { echo "mutation.sh: run scripts/test.sh once first (it makes .venv)" >&2; exit 1; }
# mutmut in its own venv that sees the project's .venv (its dependencies would otherwise mix with the suite's)
venv=.work/mutation/venv
mkdir -p .work/mutation
if [[ ! -x $venv/bin/mutmut ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q mutmut==3.8.1
  site=$(.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')
  echo "$site" > "$(ls -d "$venv"/lib/python3*/site-packages)/zz-project.pth"
fi
# mutmut runs the tests from ./mutants: point them at the z2jh schema and chart beside the checkout
shared=$(cd .. && pwd)/shared/z2jh
export GPU_JUPYTERHUB_Z2JH_DIR=${GPU_JUPYTERHUB_Z2JH_DIR:-$shared}
export GPU_JUPYTERHUB_CHART_DIR=${GPU_JUPYTERHUB_CHART_DIR:-$shared/chart/jupyterhub}
# Bytecode for mutmut's copy, kept under .work: the mutated modules are 14 MB of source, and every `plan`
# subprocess a test starts would compile them again (4 s each) where PYTHONDONTWRITEBYTECODE is set.
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX=$PWD/.work/mutation/pycache
start=$SECONDS
"$venv/bin/mutmut" run --max-children "${MUTATION_JOBS:-2}" "$@" || true
"$venv/bin/mutmut" results --all true > .work/mutation/results.txt 2>/dev/null || "$venv/bin/mutmut" results > .work/mutation/results.txt
python3 - .work/mutation/results.txt "$((SECONDS - start))" <<'PY'
import collections, sys
# results.txt lines: "    components.nodes.x_parse_node__mutmut_12: survived"
by_file = collections.defaultdict(collections.Counter)
for line in open(sys.argv[1]):
    if ": " in line:
        name, status = line.strip().rsplit(": ", 1)
        by_file[name.split(".")[1]][status] += 1
KILLED = ("killed", "timeout", "segfault", "caught by type check")
UNDECIDED = ("not checked", "skipped", "check was interrupted by user")
total = collections.Counter()
print(f"mutation.sh: {'file':14} {'killed':>7} {'timeout':>7} {'survived':>8} {'no tests':>8} {'score':>6}")
for name, counts in sorted(by_file.items()):
    total.update(counts)
    killed = sum(counts[k] for k in KILLED)
    scored = sum(counts.values()) - sum(counts[k] for k in UNDECIDED)
    score = f"{100 * killed / scored:.1f}%" if scored else "-"
    print(f"mutation.sh: {name:14} {counts['killed']:7} {counts['timeout']:7} {counts['survived']:8} "
          f"{counts['no tests']:8} {score:>6}")
killed = sum(total[k] for k in KILLED)
scored = sum(total.values()) - sum(total[k] for k in UNDECIDED)
print(f"mutation.sh: {dict(total)}")
if scored:
    # mutmut's own score: killed and timed-out mutants over all mutants with a verdict ("no tests" counts against)
    print(f"mutation.sh: score {killed}/{scored} = {100 * killed / scored:.1f}% killed ({sys.argv[2]} s); "
          "survivors: .work/mutation/results.txt")
PY
