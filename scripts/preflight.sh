#!/usr/bin/env bash
# What a step needs, checked before anything is installed or built: one message per missing thing, then stop.
# Sourced by scripts/demo.sh and scripts/test.sh: `source scripts/preflight.sh demo|test`; it exports
# GPU_JUPYTERHUB_CHART_DIR.
#
# The z2jh chart is the one dependency no package registry serves here. Its one place: GPU_JUPYTERHUB_CHART_DIR
# (an unpacked chart directory), by default ../shared/z2jh/chart/jupyterhub beside the clone. A deployed stack
# takes it from chart.repository (the z2jh Helm repository, online) or chart.path (offline); the demo and the
# tests deploy offline, so they need it on disk.
step=${1:?usage: source scripts/preflight.sh demo|test}
preflight_missing=()

chart=${GPU_JUPYTERHUB_CHART_DIR:-$PWD/../shared/z2jh/chart/jupyterhub}
want=$(sed -n 's/^    version: str = Field("\([^"]*\)".*/\1/p' components/core/config_hub.py | head -1)
if [[ ! -f "$chart/Chart.yaml" ]] || ! grep -q '^name: jupyterhub$' "$chart/Chart.yaml"; then
  preflight_missing+=("the z2jh chart (jupyterhub ${want:-4.4.0}, unpacked) at $chart: put it there, or set \
GPU_JUPYTERHUB_CHART_DIR to its directory (e.g. 'helm pull jupyterhub/jupyterhub --version ${want:-4.4.0} --untar')")
elif [[ -n "$want" ]] && ! grep -q "^version: $want$" "$chart/Chart.yaml"; then
  preflight_missing+=("the z2jh chart at $chart is $(sed -n 's/^version: //p' "$chart/Chart.yaml"), not $want \
(chart.version)")
fi

py=${PYTHON:-python3}
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  preflight_missing+=("Python >= 3.11 as '$py' (set PYTHON to another interpreter)")
fi

if [[ $step == test ]]; then
  node_major=$(node --version 2>/dev/null | sed -n 's/^v\([0-9]*\)\..*/\1/p')
  if [[ -z "$node_major" ]] || ((node_major < 20)); then
    preflight_missing+=("Node.js >= 20 with npm (JupyterHub's configurable-http-proxy; found: ${node_major:-none})")
  fi
fi

need_gb=${GPU_JUPYTERHUB_MIN_FREE_GB:-$([[ $step == test ]] && echo 12 || echo 2)}
free_gb=$(($(df -Pk . | awk 'NR==2 {print $4}') / 1024 / 1024))
if [[ ! -x .venv/bin/python ]] && ((free_gb < need_gb)); then
  preflight_missing+=("${need_gb} GB free for a fresh .venv and what the $step builds (${free_gb} GB free on \
$(df -P . | awk 'NR==2 {print $6}'); GPU_JUPYTERHUB_MIN_FREE_GB)")
fi

if ((${#preflight_missing[@]})); then
  echo "$step: stopped before building anything; missing:" >&2
  printf '  - %s\n' "${preflight_missing[@]}" >&2
  exit 1
fi
export GPU_JUPYTERHUB_CHART_DIR
GPU_JUPYTERHUB_CHART_DIR=$(cd "$chart" && pwd)
