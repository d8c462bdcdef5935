#!/usr/bin/env bash
# The whole test suite from a fresh clone: makes .venv, installs what the tests need, starts what they
# talk to (as root: the Docker engine and a local registry; always: a local configurable-http-proxy for
# the real JupyterHub the verification client is tested against), builds or reuses the e2e toolchain when Go
# is installed (the real Pulumi engine, Kubernetes with a real node's kubelet, KWOK and SeaweedFS:
# scripts/e2e/setup.sh; the first build
# takes 20-35 minutes, later runs reuse ~/.cache/gpu-jupyterhub), then runs ruff and pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k profiles
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"

# Disk first: a fresh .venv (torch for the notebook tests) takes ~6.5 GB, image builds and the local
# registry a few more. Running out mid-install ends in pip's bare "No space left on device".
need_gb=${GPU_JUPYTERHUB_MIN_FREE_GB:-12}
free_gb=$(( $(df -Pk . | awk 'NR==2 {print $4}') / 1024 / 1024 ))
if [[ ! -x .venv/bin/python ]] && (( free_gb < need_gb )); then
  echo "test.sh: only ${free_gb} GB free on $(df -P . | awk 'NR==2 {print $6}'), a fresh run needs about" \
       "${need_gb} GB (GPU_JUPYTERHUB_MIN_FREE_GB); free space first, e.g. 'docker builder prune'" >&2
  exit 1
fi
echo "test.sh: ${free_gb} GB free" >&2

[[ -x .venv/bin/python ]] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-dev.txt

if [[ -z "${GPU_JUPYTERHUB_SKIP_DOCKER:-}" ]]; then
  if [[ "$(id -u)" == 0 ]]; then
    bash scripts/docker/setup.sh
  else
    echo "test.sh: not root, so the Docker engine and registry are not set up here;" \
         "start them with 'sudo scripts/docker/setup.sh' or set GPU_JUPYTERHUB_SKIP_DOCKER=1" >&2
  fi
fi
bash scripts/notebooks/install-chp.sh >/dev/null

# The published z2jh chart, for the chart-render tests and the e2e tier (read-only, beside the checkout).
if [[ -z "${GPU_JUPYTERHUB_CHART_DIR:-}" && -d ../shared/z2jh/chart/jupyterhub ]]; then
  export GPU_JUPYTERHUB_CHART_DIR="$PWD/../shared/z2jh/chart/jupyterhub"
fi
if command -v go >/dev/null 2>&1; then
  bash scripts/e2e/setup.sh
  export GPU_JUPYTERHUB_E2E=required  # built: the e2e tier must run, never skip
  # The storage tier (tests/storage) mounts the real SeaweedFS through FUSE: root and Debian's fuse3.
  # The node tier (tests/node) runs a real node: root and Debian's containerd, runc, CNI plugins,
  # iptables and conntrack (their services are not started: scripts/e2e/node.py runs its own).
  if [[ "$(id -u)" == 0 ]]; then
    need=()
    command -v fusermount3 >/dev/null || need+=(fuse3)
    [[ -x /usr/bin/containerd ]] || need+=(containerd)
    [[ -x /usr/sbin/runc ]] || need+=(runc)
    [[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
    [[ -x /usr/sbin/iptables ]] || need+=(iptables)
    [[ -x /usr/sbin/conntrack ]] || need+=(conntrack)
    if ((${#need[@]})); then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    export GPU_JUPYTERHUB_STORAGE=required
    export GPU_JUPYTERHUB_NODE=required  # the real node must run: "no real node: ..." fails the tier
  else
    echo "test.sh: not root, so the storage tier (FUSE mounts of a real SeaweedFS) and the node tier" \
         "(a real kubelet and containerd) skip" >&2
  fi
else
  echo "test.sh: Go is not installed, so the e2e tier (tests/e2e) skips; install Go >= 1.26" \
       "and run scripts/e2e/setup.sh to enable it" >&2
fi

.venv/bin/ruff check .
# Coverage (branch) of components/, subprocesses included (the plan command, the program under the real
# engine, hub-side scripts): a per-file report, and with no pytest arguments the pure core must reach 95 %.
rm -rf .work/coverage && mkdir -p .work/coverage
export COVERAGE_FILE="$PWD/.work/coverage/.coverage"
.venv/bin/python -m pytest --cov --cov-report= "$@"
.venv/bin/python -m coverage combine -q --keep 2>/dev/null || true
.venv/bin/python -m coverage report --precision=1
if [[ $# == 0 ]]; then
  .venv/bin/python scripts/coverage_gate.py
fi
