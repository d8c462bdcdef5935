#!/usr/bin/env bash
# Install configurable-http-proxy (JupyterHub's proxy) into the git-ignored .work/chp, so the
# tests in tests/cluster can run a real local JupyterHub. Idempotent; needs node >= 20 and npm.
# Usage: bash scripts/notebooks/install-chp.sh   (prints the path of the installed binary)
set -euo pipefail
CHP_VERSION="${CHP_VERSION:-5.3.0}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
prefix="$root/.work/chp"
bin="$prefix/node_modules/.bin/configurable-http-proxy"
if [[ -x "$bin" ]] && [[ "$("$bin" --version 2>/dev/null)" == "$CHP_VERSION" ]]; then
  echo "$bin"
  exit 0
fi
command -v npm >/dev/null || { echo "npm not found: install Node.js >= 20 with npm (Debian 12's own nodejs is 18, too old)" >&2; exit 1; }
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "configurable-http-proxy@$CHP_VERSION" >/dev/null
[[ "$("$bin" --version)" == "$CHP_VERSION" ]] || { echo "install-chp.sh: $bin is not $CHP_VERSION" >&2; exit 1; }
echo "$bin"
