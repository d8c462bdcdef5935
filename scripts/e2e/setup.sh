#!/usr/bin/env bash
# Builds, or reuses, the e2e toolchain from Go modules: the Pulumi CLI with a Python language host, the
# Kubernetes provider, etcd, kube-apiserver/controller-manager/scheduler and kubectl, the real node's kubelet,
# kube-proxy and CoreDNS (the cluster DNS; only the plugins it uses, scripts/e2e/modules/coredns), KWOK, SeaweedFS's
# `weed` (the storage tier's real master, volume server, filer, S3 gateway and FUSE mount), and restic (the
# backup scripts' tool, tested against a local repository and the S3 gateway).
#
# Tools already installed are used when their versions fit (versions.env gives the lowest that does): the Pulumi
# CLI with its language host beside it, the Kubernetes provider from Pulumi's plugin folder (`pulumi plugin ls`),
# kubectl and the Kubernetes binaries, etcd, kwokctl and kwok, CoreDNS, restic. SeaweedFS is always built at the
# pinned version (the storage tier tests that build's behaviour). Only what the step needs is looked at:
#   demo   what scripts/demo.sh needs (etcd, KWOK, the control plane and kubectl, Pulumi, the provider)
#   all    everything the test tiers need (the default)
#   TOOL   one or more of: etcd kwok kubernetes coredns pulumi k8s-provider seaweedfs restic
#
# Each built tool goes into $GPU_JUPYTERHUB_TOOLCHAIN/<tool>-<key>/ where the key hashes its version, its
# pinned module files (scripts/e2e/modules/<tool>/) and the Go version, so a rebuild happens only when one
# of those changes. $GPU_JUPYTERHUB_TOOLCHAIN/bin then holds links to the current builds and to the installed
# tools used instead: put it first on PATH (scripts/e2e/project.py and cluster.py do). Idempotent; prints what
# it found, built or reused and how long each took. GPU_JUPYTERHUB_BUILD_ALL=1 ignores installed tools.
# Usage: scripts/e2e/setup.sh [demo|all|TOOL...]   (default cache: ~/.cache/gpu-jupyterhub/toolchain)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${GPU_JUPYTERHUB_TOOLCHAIN:-$HOME/.cache/gpu-jupyterhub/toolchain}
mkdir -p "$cache/bin"
export GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"
gover=$(go env GOVERSION 2>/dev/null || true)  # none: installed tools and earlier builds only

# key TOOL VERSION: a short hash of what decides the build's output.
key() {
  { echo "$2 $gover"; cat "$here/modules/$1"/go.mod "$here/modules/$1"/go.sum; find "$here/modules/$1" -name '*.go' -print0 | sort -z | xargs -0 cat; } \
    | sha256sum | cut -c1-12
}

# build TOOL VERSION MODULE@VERSION FUNCTION: runs FUNCTION OUTDIR in the tool's module unless already built.
# moddir MODULE: the module's directory in the module cache, at the version the current go.mod requires.
moddir() { go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'; }

build() {
  local tool=$1 version=$2 what=$3 fn=$4 out start
  if [[ -n "$gover" ]]; then
    out="$cache/$tool-$version-$(key "$tool" "$version")"
  else  # without Go: any earlier build of this version
    out=$(find "$cache" -maxdepth 2 -path "$cache/$tool-$version-*/.ok" -printf '%h\n' 2>/dev/null | head -1)
    out=${out:-$cache/$tool-$version-nogo}
  fi
  if [[ -f "$out/.ok" ]]; then
    echo "setup.sh: $tool $version: reused ($out)"
  else
    if [[ -z "$gover" ]]; then
      echo "setup.sh: $tool $version is needed and neither installed in a fitting version nor built;" \
           "building it needs Go >= 1.26, which is not installed" >&2
      exit 1
    fi
    echo "setup.sh: $tool $version: building $what ..."
    start=$SECONDS
    rm -rf "$out" && mkdir -p "$out"
    if ! (cd "$here/modules/$tool" && "$fn" "$out" 2> >(quiet_downloads "$tool" >&2)); then
      echo "setup.sh: FAILED to build $tool from $what (Go $gover); see the output above" >&2
      exit 1
    fi
    touch "$out/.ok"
    echo "setup.sh: $tool $version: built in $((SECONDS - start)) s"
    find "$cache" -maxdepth 1 -name "$tool-*" ! -path "$out" -exec rm -rf {} +  # older builds of this tool
  fi
  local f
  for f in "$out"/*; do ln -sfn "$f" "$cache/bin/$(basename "$f")"; done
}

build_pulumi() {
  go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
    -o "$1/" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi ./langhost
  mv "$1/langhost" "$1/pulumi-language-python"
  # The SDK's shim that runs a Python program for the engine; it ships in the sdk/v3 module.
  install -m 0755 "$(moddir github.com/pulumi/pulumi/sdk/v3)/python/cmd/pulumi-language-python-exec" "$1/"
}

build_k8s_provider() {
  local src work
  src=$(moddir github.com/pulumi/pulumi-kubernetes/provider/v4)/cmd/pulumi-resource-kubernetes
  work=$(mktemp -d)
  cp go.mod go.sum main.go "$work/"
  # What the provider's own `go generate` writes: the schema with its version set, both files compacted.
  python3 - "$src" "$work" "$K8S_PROVIDER_VERSION" <<'PY'
import json, sys
src, work, version = sys.argv[1:]
schema = json.load(open(f"{src}/schema.json"))
schema["version"] = version
json.dump(schema, open(f"{work}/schema-embed.json", "w"), separators=(",", ":"))
json.dump(json.load(open(f"{src}/terraform-mapping.json")), open(f"{work}/terraform-mapping-embed.json", "w"), separators=(",", ":"))
PY
  (cd "$work" && go build -trimpath \
    -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$K8S_PROVIDER_VERSION" \
    -o "$1/pulumi-resource-kubernetes" .)
  rm -rf "$work"
}

build_kubernetes() {
  local v=v$KUBERNETES_VERSION minor
  minor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION")
  local ld="-s -w"
  local p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  # One build for all six (the real node's kubelet and kube-proxy too): they share most compiled packages.
  go build -trimpath -ldflags "$ld" -o "$1/" k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
}

build_etcd() {
  go build -trimpath -ldflags "-s -w" -o "$1/etcd" go.etcd.io/etcd/server/v3
}

build_kwok() {
  go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    -o "$1/" sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
}

build_seaweedfs() {
  go build -trimpath -ldflags "-s -w" -o "$1/weed" github.com/seaweedfs/seaweedfs/weed
}

build_coredns() {
  go build -trimpath -ldflags "-s -w" -o "$1/coredns" .
}

build_restic() {
  go build -trimpath -ldflags "-s -w" -o "$1/restic" github.com/restic/restic/cmd/restic
}

# quiet_downloads TOOL: Go's "go: downloading M v" lines counted into one, everything else passed through.
quiet_downloads() {
  awk -v tool="$1" '/^go: downloading /{n++; next} {print} END{if (n) printf "setup.sh: %s: %d Go modules downloaded\n", tool, n}'
}

# version_of BINARY: the first x.y.z its version command prints (empty when none).
version_of() {
  local out
  case $(basename "$1") in
    kubectl) out=$("$1" version --client 2>/dev/null) ;;
    pulumi | restic) out=$("$1" version 2>/dev/null) ;;
    coredns) out=$("$1" -version 2>/dev/null) ;;
    *) out=$("$1" --version 2>/dev/null) ;;
  esac
  grep -oE '[0-9]+\.[0-9]+\.[0-9]+' <<<"$out" | head -1
}

# at_least A B: version A >= version B.
at_least() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" == "$2" ]]; }

# on_path NAME: the first NAME on PATH outside our own bin folder.
on_path() {
  local dir
  IFS=: read -ra dirs <<<"$PATH"
  for dir in "${dirs[@]}"; do
    [[ -n "$dir" && "$(cd "$dir" 2>/dev/null && pwd -P)" != "$(cd "$cache/bin" && pwd -P)" ]] || continue
    [[ -x "$dir/$1" && ! -d "$dir/$1" ]] && { echo "$dir/$1"; return 0; }
  done
  return 1
}

# installed TOOL MINIMUM BINARY...: links installed BINARYs into bin when each is on PATH at >= MINIMUM
# (the first one's folder is searched first, so a CLI's helpers come from its own install).
installed() {
  local tool=$1 minimum=$2 first="" b path v
  shift 2
  [[ -z "${GPU_JUPYTERHUB_BUILD_ALL:-}" ]] || return 1
  local -a found=()
  for b in "$@"; do
    path=""
    [[ -n "$first" && -x "$(dirname "$first")/$b" ]] && path="$(dirname "$first")/$b"
    [[ -n "$path" ]] || path=$(on_path "$b") || return 1
    if [[ "$b" != pulumi-language-python* ]]; then  # the language host comes with the CLI beside it
      v=$(version_of "$path")
      if [[ -z "$v" ]] || ! at_least "$v" "$minimum"; then
        echo "setup.sh: $tool: $path is ${v:-of an unknown version}, older than $minimum: not used"
        return 1
      fi
    fi
    first=${first:-$path}
    found+=("$path")
  done
  for path in "${found[@]}"; do ln -sfn "$path" "$cache/bin/$(basename "$path")"; done
  echo "setup.sh: $tool: using the installed $(version_of "$first") ($(dirname "$first"))"
}

# provider_plugin: the provider version the SDK pins, from Pulumi's plugin folder, as `pulumi plugin install` left it.
provider_plugin() {
  [[ -z "${GPU_JUPYTERHUB_BUILD_ALL:-}" ]] || return 1
  local plugin="${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-kubernetes-v$K8S_PROVIDER_VERSION/pulumi-resource-kubernetes"
  [[ -x "$plugin" ]] || return 1
  ln -sfn "$plugin" "$cache/bin/pulumi-resource-kubernetes"
  echo "setup.sh: k8s-provider: using the installed plugin $K8S_PROVIDER_VERSION ($(dirname "$plugin"))"
}

step=${1:-all}
case $step in
  all) tools=(etcd kwok kubernetes coredns pulumi k8s-provider seaweedfs restic) ;;
  demo) tools=(etcd kwok kubernetes pulumi k8s-provider) ;;
  *) tools=("$@") ;;
esac
# The demo runs no real node, so kubelet and kube-proxy matter only for the test tiers.
kube_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
[[ $step == demo ]] || kube_bins+=(kubelet kube-proxy)

total=$SECONDS
for tool in "${tools[@]}"; do
  case $tool in
    etcd) installed etcd "$ETCD_MIN" etcd \
      || build etcd "$ETCD_VERSION" "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" build_etcd ;;
    kwok) installed kwok "$KWOK_MIN" kwokctl kwok || build kwok "$KWOK_VERSION" "sigs.k8s.io/kwok@v$KWOK_VERSION" build_kwok ;;
    kubernetes) installed kubernetes "$KUBERNETES_MIN" "${kube_bins[@]}" \
      || build kubernetes "$KUBERNETES_VERSION" "k8s.io/kubernetes@v$KUBERNETES_VERSION" build_kubernetes ;;
    coredns) installed coredns "$COREDNS_MIN" coredns \
      || build coredns "$COREDNS_VERSION" "github.com/coredns/coredns@v$COREDNS_VERSION" build_coredns ;;
    pulumi) installed pulumi "$PULUMI_MIN" pulumi pulumi-language-python pulumi-language-python-exec \
      || build pulumi "$PULUMI_VERSION" "github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION" build_pulumi ;;
    k8s-provider) provider_plugin || build k8s-provider "$K8S_PROVIDER_VERSION" \
      "github.com/pulumi/pulumi-kubernetes/provider/v4@$K8S_PROVIDER_MODULE" build_k8s_provider ;;
    seaweedfs) build seaweedfs "$SEAWEEDFS_VERSION" "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_MODULE" build_seaweedfs ;;
    restic) installed restic "$RESTIC_MIN" restic \
      || build restic "$RESTIC_VERSION" "github.com/restic/restic@v$RESTIC_VERSION" build_restic ;;
    *) echo "setup.sh: unknown step or tool '$tool'; use demo, all, or: etcd kwok kubernetes coredns pulumi" \
         "k8s-provider seaweedfs restic" >&2; exit 2 ;;
  esac
done
echo "setup.sh: toolchain ready in $cache/bin ($((SECONDS - total)) s)"
