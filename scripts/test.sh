#!/usr/bin/env bash
# The whole test suite from a fresh clone: makes .venv, installs what the tests need, starts what they
# talk to (as root: the Docker engine and a local registry; always: a local configurable-http-proxy for
# the real JupyterHub the verification client is tested against), then runs ruff and pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k profiles
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"

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

.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
