#!/usr/bin/env bash
# Try it without a cluster: builds (first run) or reuses the e2e toolchain, starts a simulated home lab
# (KWOK nodes from tests/fixtures/nodes/homelab.json), deploys the example stack to it with the real Pulumi
# engine, prints the spawn form's choices from the stack outputs and tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=preflight.sh
source scripts/preflight.sh demo  # the chart, Python, disk: before anything is installed or built
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q -r requirements.txt
fi
bash scripts/e2e/setup.sh demo
exec .venv/bin/python scripts/e2e/demo.py
