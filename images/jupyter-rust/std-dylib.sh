#!/usr/bin/env bash
# Builds the Rust standard library as a shared library, and a sysroot around it, at $1.
#
# evcxr links every cell against libstd-<hash>.so so that cells share one std (values pass between
# cells); Debian's rustc ships std as rlibs only. So: build std from Debian's own source package
# (rust-src, the same version as rustc) with cargo's build-std, then compile the std crate once more,
# with the exact command cargo used but as dylib and rlib, and put both beside the other std crates'
# rlibs. rustc is then run with --sysroot pointing here (the wrapper the Dockerfile installs).
# RUSTC_BOOTSTRAP lets Debian's stable rustc take build-std's unstable flags, for this build only.
set -euo pipefail
sysroot=$1
work=$(mktemp -d)
cd "$work"
cargo init -q --lib --name stdbuild
export RUSTC_BOOTSTRAP=1
target=x86_64-unknown-linux-gnu
cargo build -v --release -Zbuild-std=std,panic_unwind --target "$target" >build.log 2>&1 || {
  tail -n 30 build.log >&2
  exit 1
}
deps="$work/target/$target/release/deps"
command=$(grep -o 'Running `rustc --crate-name std .*`' build.log | head -1 | sed 's/^Running `//; s/`$//')
[[ -n "$command" ]] || { echo "std-dylib.sh: no rustc command for std in cargo's log" >&2; exit 1; }
# the same compilation, as a dylib too (linking needs the dependencies' rlibs, not their metadata)
command=${command//--crate-type rlib/--crate-type dylib --crate-type rlib -C prefer-dynamic}
command=$(sed -E 's/(--extern [^ ]+)\.rmeta/\1.rlib/g' <<<"$command")
command=${command//--error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat/}
mkdir -p "$work/dylib"
command=${command//--out-dir $deps/--out-dir $work/dylib}
STD_ENV_ARCH=x86_64 eval "$command"
lib="$sysroot/lib/rustlib/$target/lib"
mkdir -p "$lib"
cp "$deps"/*.rlib "$lib/"
rm -f "$lib"/libstd-*.rlib "$lib"/libstdbuild*
cp "$work"/dylib/libstd-*.rlib "$work"/dylib/libstd-*.so "$lib/"
ls "$lib"/libstd-*.so >/dev/null
rm -rf "$work"
