#!/usr/bin/env bash
# Prepare a Debian bookworm machine (as root) for the image tests and the benchmark:
#   1. Debian's docker.io engine, debootstrap, docker-registry, apache2-utils;
#   2. dockerd in the background, if none answers (no bridge, no iptables: builds use
#      --network host and test containers --network none, so no container network is
#      needed and nothing is routed to a private address range);
#   3. Debian bookworm and trixie base images made with debootstrap and `docker import`, since
#      no public registry is reachable (tarballs cached under the work dir);
#   4. a local registry on 127.0.0.1 that requires a login (htpasswd, bcrypt).
# Idempotent: every step checks whether it is already done. Writes, under
# $GPU_JUPYTERHUB_WORK_DIR/docker (default: <repo>/.work/docker):
#   registry.env   REGISTRY, REGISTRY_USER, REGISTRY_PASSWORD, BASE_IMAGE (sourced by
#                  tests/images and benchmarks/images_bench.py)
#   *.log          dockerd and registry logs
# Environment: GPU_JUPYTERHUB_WORK_DIR, GPU_JUPYTERHUB_REGISTRY_PORT (default 5055).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="${GPU_JUPYTERHUB_WORK_DIR:-$repo/.work}"
state="$work/docker"
port="${GPU_JUPYTERHUB_REGISTRY_PORT:-5055}"
docker=/usr/bin/docker
base_tag="gpu-jupyterhub/debian-bookworm:minbase"
trixie_tag="gpu-jupyterhub/debian-trixie:minbase"
mkdir -p "$state"

log() { echo "setup.sh: $*" >&2; }

if [[ "$(id -u)" != 0 ]]; then
  log "must run as root (installs packages, starts dockerd)"
  exit 1
fi

# 1. packages ---------------------------------------------------------------------------
need=()
[[ -x /usr/sbin/dockerd && -x $docker ]] || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
[[ -x /usr/bin/docker-registry ]] || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update -qq
  # policy-rc.d (where present) keeps the packages' services from starting: this script
  # starts its own, with its own configuration.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 2. dockerd ----------------------------------------------------------------------------
if ! $docker info >/dev/null 2>&1; then
  log "starting dockerd"
  nohup /usr/sbin/dockerd --bridge=none --iptables=false --ip6tables=false \
    >"$state/dockerd.log" 2>&1 &
  echo $! >"$state/dockerd.pid"  # for scripts/stop.sh
  for _ in $(seq 1 60); do
    $docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! $docker info >/dev/null 2>&1; then
    log "dockerd did not come up; last lines of $state/dockerd.log:"
    tail -n 20 "$state/dockerd.log" >&2
    exit 1
  fi
fi

# BuildKit's cache grows with every build (the GPU images' layers are GBs): keep it bounded so repeated
# runs on one machine do not fill the disk. GPU_JUPYTERHUB_BUILD_CACHE: how much to keep (default 8GB).
$docker builder prune -f --keep-storage "${GPU_JUPYTERHUB_BUILD_CACHE:-8GB}" >/dev/null 2>&1 || true

# 3. base images --------------------------------------------------------------------------
# base_image RELEASE TAG: a Debian RELEASE minbase root, made with debootstrap and imported as TAG.
base_image() {
  local release=$1 tag=$2 tarball rootfs
  if $docker image inspect "$tag" >/dev/null 2>&1; then
    return
  fi
  tarball="$state/debian-$release-minbase.tar"
  if [[ ! -s "$tarball" ]]; then
    log "debootstrap $release (minbase)"
    rootfs="$state/rootfs-$release"
    rm -rf "$rootfs"
    debootstrap --variant=minbase "$release" "$rootfs" >"$state/debootstrap-$release.log" 2>&1 || {
      tail -n 20 "$state/debootstrap-$release.log" >&2
      exit 1
    }
    # Downloaded .debs and package lists only bloat the base; images run apt-get update.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  log "importing $tag"
  $docker import "$tarball" "$tag" >/dev/null
}
base_image bookworm "$base_tag"
base_image trixie "$trixie_tag"  # jupyter-rust (its Rust toolchain is trixie's)

# 4. registry with a login ----------------------------------------------------------------
env_file="$state/registry.env"
if [[ ! -s "$state/htpasswd" || ! -s "$env_file" ]]; then
  user="ci"
  password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
  htpasswd -Bbn "$user" "$password" >"$state/htpasswd"
  umask 077
  cat >"$env_file" <<EOF
REGISTRY=127.0.0.1:$port
REGISTRY_USER=$user
REGISTRY_PASSWORD=$password
BASE_IMAGE=$base_tag
EOF
  umask 022
fi
# shellcheck source=/dev/null
source "$env_file"
cat >"$state/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $state/registry-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: $(head -c 24 /dev/urandom | base64 | tr -d '/+=')
auth:
  htpasswd:
    realm: gpu-jupyterhub-test
    path: $state/htpasswd
EOF
registry_up() {
  # 401 without credentials proves it requires a login.
  [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY/v2/" || true)" == 401 ]]
}
registry_ours() {
  # 200 with this checkout's credentials: another checkout's registry on the same port would refuse them.
  [[ "$(curl -s -o /dev/null -w '%{http_code}' -u "$REGISTRY_USER:$REGISTRY_PASSWORD" "http://$REGISTRY/v2/" || true)" == 200 ]]
}
if registry_up && ! registry_ours; then
  log "a registry that refuses this checkout's credentials already listens on $REGISTRY" \
      "(another checkout's?): stop it (scripts/stop.sh there) or set GPU_JUPYTERHUB_REGISTRY_PORT"
  exit 1
fi
if ! registry_up; then
  log "starting docker-registry on $REGISTRY"
  nohup /usr/bin/docker-registry serve "$state/registry.yml" >"$state/registry.log" 2>&1 &
  echo $! >"$state/registry.pid"  # for scripts/stop.sh
  for _ in $(seq 1 30); do
    registry_up && break
    sleep 0.5
  done
  if ! registry_up; then
    log "registry did not come up on $REGISTRY; last lines of $state/registry.log:"
    tail -n 20 "$state/registry.log" >&2
    exit 1
  fi
fi
log "ready: engine $($docker version --format '{{.Server.Version}}'), bases $base_tag and $trixie_tag, registry $REGISTRY (credentials in $env_file)"
