#!/usr/bin/env bash
# Deploy a stack (default: the example stack "dev", Pulumi.dev.yaml) with a local state backend,
# so no Pulumi account is needed. Secrets come from the environment and are stored encrypted:
#   GPU_JUPYTERHUB_REGISTRY_PASSWORD     Harbor robot account token            (always)
#   GPU_JUPYTERHUB_OIDC_CLIENT_SECRET    OAuth client secret     (auth.mode oidc)
#   GPU_JUPYTERHUB_SHARED_PASSWORD       the shared password     (auth.mode shared-password)
#   GPU_JUPYTERHUB_ADMIN_PASSWORD        the adminUsers' password (auth.mode native; shared-password with admins)
#   PULUMI_CONFIG_PASSPHRASE             protects the secrets in the local state
# Usage: scripts/deploy.sh [stack]      (any extra `pulumi up` flags via PULUMI_UP_FLAGS)
set -euo pipefail
cd "$(dirname "$0")/.."
stack="${1:-dev}"
command -v pulumi >/dev/null || { echo "deploy.sh: the Pulumi CLI is not installed (see README, Prerequisites)" >&2; exit 2; }
[[ -f "Pulumi.$stack.yaml" ]] || { echo "deploy.sh: no Pulumi.$stack.yaml; copy Pulumi.dev.yaml and edit it" >&2; exit 2; }
: "${PULUMI_CONFIG_PASSPHRASE:?set PULUMI_CONFIG_PASSPHRASE (it encrypts the stack secrets)}"
: "${GPU_JUPYTERHUB_REGISTRY_PASSWORD:?set GPU_JUPYTERHUB_REGISTRY_PASSWORD (Harbor robot token)}"
if grep -Eq "mode: *oidc" "Pulumi.$stack.yaml" && [[ -z "${GPU_JUPYTERHUB_OIDC_CLIENT_SECRET:-}" ]]; then
  echo "deploy.sh: Pulumi.$stack.yaml uses OIDC: set GPU_JUPYTERHUB_OIDC_CLIENT_SECRET" >&2; exit 2
fi
if grep -Eq "mode: *shared-password" "Pulumi.$stack.yaml" && [[ -z "${GPU_JUPYTERHUB_SHARED_PASSWORD:-}" ]]; then
  echo "deploy.sh: Pulumi.$stack.yaml uses a shared password: set GPU_JUPYTERHUB_SHARED_PASSWORD" >&2; exit 2
fi
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$PWD/.pulumi-state}"
mkdir -p .pulumi-state
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/pip install -q -r requirements.txt
pulumi stack select "$stack" --create --secrets-provider passphrase
# Secrets go through stdin (printf is a shell builtin): an argument would show in `ps` to every local user.
set_secret() { printf '%s' "$2" | pulumi config set --path --secret "$1"; }
set_secret 'gpu-jupyterhub:registry.password' "$GPU_JUPYTERHUB_REGISTRY_PASSWORD"
if [[ -n "${GPU_JUPYTERHUB_OIDC_CLIENT_SECRET:-}" ]]; then
  set_secret 'gpu-jupyterhub:auth.oidc.clientSecret' "$GPU_JUPYTERHUB_OIDC_CLIENT_SECRET"
fi
if [[ -n "${GPU_JUPYTERHUB_SHARED_PASSWORD:-}" ]]; then
  set_secret 'gpu-jupyterhub:auth.sharedPassword' "$GPU_JUPYTERHUB_SHARED_PASSWORD"
fi
if [[ -n "${GPU_JUPYTERHUB_ADMIN_PASSWORD:-}" ]]; then
  set_secret 'gpu-jupyterhub:auth.adminPassword' "$GPU_JUPYTERHUB_ADMIN_PASSWORD"
fi
# shellcheck disable=SC2086 # flags are words on purpose
pulumi up ${PULUMI_UP_FLAGS:-}
