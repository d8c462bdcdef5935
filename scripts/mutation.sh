#!/usr/bin/env bash
# Mutation testing of the pure core with mutmut (config in pyproject.toml, [tool.mutmut]): every mutant of
# config, nodes, profiles, values, storage_spec and live_profiles runs against the fast unit tests that reach
# it, and the score is printed. Not in CI (it takes hours on 2 cores); run it after changing the core or its
# tests, and read the survivors with `.work/mutation/venv/bin/mutmut show <name>`. Results are kept between
# runs (mutmut re-runs only mutants of changed functions, or those named), so a run can be resumed.
# Usage: scripts/mutation.sh [NAME-OR-GLOB ...]   e.g. scripts/mutation.sh 'components.core.nodes*'
#        scripts/mutation.sh --sample N [--seed S]  run N unrun mutants drawn uniformly (a batch of a sample:
#                                                   scripts/mutation_report.py estimates the rest from it)
# Scores: docs/mutation.md.
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
sample_file=.work/mutation/sample.txt
if [[ ${1:-} == --sample ]]; then
  [[ -n ${2:-} ]] || { echo "mutation.sh: --sample needs a count" >&2; exit 2; }
  seed=18
  [[ ${3:-} == --seed ]] && seed=${4:?--seed needs a number}
  "$venv/bin/mutmut" results --all true > .work/mutation/results.txt 2>/dev/null
  python3 scripts/mutation_report.py .work/mutation/results.txt --draw "$2" --seed "$seed" > .work/mutation/batch.txt
  [[ -s .work/mutation/batch.txt ]] || { echo "mutation.sh: no unrun mutant left to sample" >&2; exit 0; }
  cat .work/mutation/batch.txt >> "$sample_file"
  set -- $(cat .work/mutation/batch.txt)
fi
start=$SECONDS
"$venv/bin/mutmut" run --max-children "${MUTATION_JOBS:-2}" "$@" || true
"$venv/bin/mutmut" results --all true > .work/mutation/results.txt 2>/dev/null || "$venv/bin/mutmut" results > .work/mutation/results.txt
echo "mutation.sh: $((SECONDS - start)) s; survivors: .work/mutation/results.txt"
python3 scripts/mutation_report.py .work/mutation/results.txt --sample "$sample_file"
