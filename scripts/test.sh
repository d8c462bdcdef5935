#!/usr/bin/env bash
# The whole test suite from a fresh clone: makes .venv, installs what the tests need, starts what they
# talk to (as root: the Docker engine and a local registry; always: a local configurable-http-proxy for
# the real JupyterHub the verification client is tested against), builds or reuses the e2e toolchain when Go
# is installed (the real Pulumi engine, Kubernetes with a real node's kubelet, KWOK and SeaweedFS:
# scripts/e2e/setup.sh, which uses installed tools whose versions fit; a cold build took 30-60 minutes on 2 cores,
# later runs reuse ~/.cache/gpu-jupyterhub), then runs ruff and pytest. scripts/preflight.sh checks first.
# Extra arguments go to pytest, e.g. scripts/test.sh -k profiles
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"

# Before installing or building anything: the chart, Python, Node.js and disk (a fresh .venv with torch for the
# notebook tests takes ~6.5 GB; image builds and the local registry a few more), each missing one named.
# shellcheck source=preflight.sh
source scripts/preflight.sh test

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
# The browser tier (tests/browser, the user guide's screenshots): Debian's Chromium and chromedriver, as root.
if [[ "$(id -u)" == 0 ]]; then
  if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  fi
  export GPU_JUPYTERHUB_BROWSER=required  # installed: the tier must run, never skip
else
  echo "test.sh: not root, so Chromium is not installed here; the browser tier runs if it is" >&2
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
.venv/bin/python -m coverage combine -q --keep >/dev/null 2>&1 || true  # "No data to combine" when none ran
.venv/bin/python -m coverage report --precision=1
if [[ $# == 0 ]]; then
  .venv/bin/python scripts/coverage_gate.py
fi
