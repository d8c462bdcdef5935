#!/usr/bin/env bash
# Builds, or reuses, the e2e toolchain from Go modules: the Pulumi CLI with a Python language host, the
# Kubernetes provider, etcd, kube-apiserver/controller-manager/scheduler and kubectl, the real node's kubelet,
# kube-proxy and CoreDNS (the cluster DNS; only the plugins it uses, scripts/e2e/modules/coredns), KWOK, SeaweedFS's
# `weed` (the storage tier's real master, volume server, filer, S3 gateway and FUSE mount), and restic (the
# backup scripts' tool, tested against a local repository and the S3 gateway).
#
# Each tool is built into $GPU_JUPYTERHUB_TOOLCHAIN/<tool>-<key>/ where the key hashes its version, its
# pinned module files (scripts/e2e/modules/<tool>/) and the Go version, so a rebuild happens only when one
# of those changes. $GPU_JUPYTERHUB_TOOLCHAIN/bin then holds links to the current builds: put it first on
# PATH (scripts/e2e/project.py and cluster.py do). Idempotent; prints what it built or reused and how long
# each took.
# Usage: scripts/e2e/setup.sh            (default cache: ~/.cache/gpu-jupyterhub/toolchain)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${GPU_JUPYTERHUB_TOOLCHAIN:-$HOME/.cache/gpu-jupyterhub/toolchain}
mkdir -p "$cache/bin"
export GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"
command -v go >/dev/null || { echo "setup.sh: Go is not installed (Go >= 1.26 is needed)" >&2; exit 1; }
gover=$(go env GOVERSION)

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
  out="$cache/$tool-$version-$(key "$tool" "$version")"
  if [[ -f "$out/.ok" ]]; then
    echo "setup.sh: $tool $version: reused ($out)"
  else
    echo "setup.sh: $tool $version: building $what ..."
    start=$SECONDS
    rm -rf "$out" && mkdir -p "$out"
    if ! (cd "$here/modules/$tool" && "$fn" "$out"); then
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

total=$SECONDS
# The cluster's tools first (the real node's work can start while the engine builds), then the engine.
build etcd "$ETCD_VERSION" "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" build_etcd
build kwok "$KWOK_VERSION" "sigs.k8s.io/kwok@v$KWOK_VERSION" build_kwok
build kubernetes "$KUBERNETES_VERSION" "k8s.io/kubernetes@v$KUBERNETES_VERSION" build_kubernetes
build coredns "$COREDNS_VERSION" "github.com/coredns/coredns@v$COREDNS_VERSION" build_coredns
build pulumi "$PULUMI_VERSION" "github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION" build_pulumi
build k8s-provider "$K8S_PROVIDER_VERSION" \
  "github.com/pulumi/pulumi-kubernetes/provider/v4@$K8S_PROVIDER_MODULE" build_k8s_provider
build seaweedfs "$SEAWEEDFS_VERSION" "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_MODULE" build_seaweedfs
build restic "$RESTIC_VERSION" "github.com/restic/restic@v$RESTIC_VERSION" build_restic
echo "setup.sh: toolchain ready in $cache/bin ($((SECONDS - total)) s)"
