"""GPU image layer benchmark: what the two-layer pip split of jupyter-ml-gpu costs and saves.

    python benchmarks/gpu_layers_bench.py [--variants=,-cu12] [--no-push] [--no-cache] [--keep]

jupyter-ml-gpu installs its lock in two pip layers: first the CUDA layer (torch,
torchvision, triton and the nvidia-*/cuda-* wheels, cuda-layer<suffix>.txt, --no-deps),
then the whole requirements<suffix>.txt and `pip check`. The point of the split is that
an update of transformers & co. re-pulls only the second layer and what follows it on
every GPU node, not the several GB of CUDA wheels. Per variant (LOCK_SUFFIX "" = CUDA 13,
"-cu12" = CUDA 12) this prints the build time, the image size, each pip layer's size
(uncompressed from `docker history`; compressed from the manifest pushed to the local
registry of scripts/docker/setup.sh), that pull cost, and torch/CUDA/transformers
versions read in the image with no network. Prints figures; asserts nothing about time.
Removes the images it built (not the build cache) unless --keep.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.images_bench import base_image, human
from tests.images import docker_env as de

NAME = "jupyter-ml-gpu"
# How the Dockerfile's RUN steps name the locks they install (see its COPY lines).
CUDA_LAYER_MARK = "/tmp/req/cuda-layer.txt"
FULL_LOCK_MARK = "/tmp/req/jupyter-ml-gpu.txt"
VERSIONS = "import torch, transformers; print(torch.__version__, torch.version.cuda, transformers.__version__)"
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    )
)
BUILD_TIMEOUT = 4 * 3600  # several GB of wheels from the package index on a small builder
PUSH_TIMEOUT = 2 * 3600


@dataclass
class Layer:
    """One entry of the image's history, oldest first."""

    created_by: str
    size: int  # uncompressed bytes (docker history)
    compressed: int | None = None  # bytes in the pushed manifest; None for empty entries or --no-push


def variant_label(suffix: str) -> str:
    return suffix or '""'


def history(ref: str) -> list[Layer]:
    """The image's history entries, oldest first (the order of the config's history)."""
    out = de.docker("history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{json .CreatedBy}}", ref).stdout
    layers = []
    for line in out.splitlines():
        size, _, created = line.partition("\t")
        layers.append(Layer(created_by=json.loads(created), size=int(size)))
    return layers[::-1]


def find(layers: list[Layer], mark: str) -> int:
    for i, layer in enumerate(layers):
        if "pip install" in layer.created_by and mark in layer.created_by:
            return i
    raise RuntimeError(f"no pip layer installing {mark} in the image's history")


def registry_get(env: de.DockerEnv, path: str, accept: str | None = None) -> bytes:
    """GET from the local registry (127.0.0.1, see setup.sh) with its basic-auth login."""
    token = base64.b64encode(f"{env.user}:{env.password}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request(f"http://{env.registry}{path}", headers=headers)
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def add_compressed_sizes(env: de.DockerEnv, repository: str, tag: str, layers: list[Layer]) -> int:
    """Fill in each layer's compressed size from the pushed manifest; return the manifest's total.

    The manifest lists only entries that made a layer, in history order; the config's
    history says which entries those are (empty_layer)."""
    manifest = json.loads(registry_get(env, f"/v2/{repository}/manifests/{tag}", MANIFEST_TYPES))
    config = json.loads(registry_get(env, f"/v2/{repository}/blobs/{manifest['config']['digest']}"))
    entries = config.get("history", [])
    if len(entries) != len(layers):
        raise RuntimeError(f"config has {len(entries)} history entries, docker history {len(layers)}")
    with_layer = [i for i, entry in enumerate(entries) if not entry.get("empty_layer")]
    blobs = manifest["layers"]
    if len(with_layer) != len(blobs):
        raise RuntimeError(f"{len(with_layer)} history entries with a layer, manifest has {len(blobs)} layers")
    for i, blob in zip(with_layer, blobs, strict=True):
        layers[i].compressed = int(blob["size"])
    return sum(int(b["size"]) for b in blobs) + int(manifest["config"]["size"])


def push(env: de.DockerEnv, local: str, repository: str, tag: str) -> float:
    remote = f"{env.registry}/{repository}:{tag}"
    de.docker("tag", local, remote)
    with tempfile.TemporaryDirectory(prefix="gpu-layers-bench-") as config_dir:
        de.login(env, Path(config_dir))
        start = time.monotonic()
        try:
            de.docker("push", remote, config_dir=Path(config_dir), timeout=PUSH_TIMEOUT)
        finally:
            de.docker("image", "rm", remote, check=False)  # the local alias only
        return time.monotonic() - start


def fmt(n: int | None) -> str:
    return "-" if n is None else human(n)


def bench(suffix: str, base: str, env: de.DockerEnv | None, no_cache: bool, keep: bool) -> None:
    label = variant_label(suffix)
    tag = f"bench{suffix or '-cu13'}"
    repository = f"gpu-jupyterhub-bench/{NAME}"
    local = f"{repository}:{tag}"
    extra = ["--build-arg", f"LOCK_SUFFIX={suffix}"] + (["--no-cache"] if no_cache else [])
    print(f"== LOCK_SUFFIX={label}  ({local})", flush=True)
    start = time.monotonic()
    de.build(NAME, local, base, extra=extra, timeout=BUILD_TIMEOUT)
    seconds = time.monotonic() - start
    image_id = de.docker("image", "inspect", "--format", "{{.Id}}", local).stdout.strip()
    try:
        print(f"build time            {seconds:9.1f} s{' (--no-cache)' if no_cache else ''}")
        print(f"image size            {human(de.image_size(local)):>11}  (uncompressed)", flush=True)
        layers = history(local)
        cuda, full = find(layers, CUDA_LAYER_MARK), find(layers, FULL_LOCK_MARK)
        total_compressed = None
        if env is not None:
            push_s = push(env, local, repository, tag)
            total_compressed = add_compressed_sizes(env, repository, tag, layers)
            print(f"push time             {push_s:9.1f} s")
            print(f"image size            {human(total_compressed):>11}  (compressed, pushed manifest)")
        print(f"{'':22}{'uncompressed':>12} {'compressed':>11}")
        for title, i in (("pip layer 1 (CUDA)", cuda), ("pip layer 2 (full lock)", full)):
            print(f"{title:22}{human(layers[i].size):>12} {fmt(layers[i].compressed):>11}")
        later = [layer for layer in layers[full + 1 :] if layer.compressed or layer.size]
        if env is not None:
            cost = sum(layer.compressed or 0 for layer in layers[full:])
            lock_copy = layers[full - 1]
            print(
                f"transformers-update pull {human(cost):>8}  (compressed: pip layer 2 + {len(later)} later "
                f"layer(s); the lock's COPY layer before it adds {fmt(lock_copy.compressed)})"
            )
        print("layers with content, oldest first (uncompressed / compressed):")
        for layer in layers:
            if layer.size or layer.compressed:
                print(f"  {human(layer.size):>9} {fmt(layer.compressed):>9}  {layer.created_by[:90]}")
        versions = de.run_offline(local, "python", "-c", VERSIONS, timeout=600).strip()
        print(f"torch, CUDA, transformers (--network none): {versions}", flush=True)
    finally:
        if not keep:
            de.docker("image", "rm", local, check=False)
            de.docker("image", "rm", image_id, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--variants", default=",-cu12", help='comma-separated LOCK_SUFFIX values ("" = CUDA 13)')
    parser.add_argument("--no-push", action="store_true", help="skip the push and the compressed sizes")
    parser.add_argument("--no-cache", action="store_true", help="build without the layer cache")
    parser.add_argument("--keep", action="store_true", help="keep the built images")
    args = parser.parse_args()
    problem = de.engine_problem()
    if problem:
        print(f"no Docker engine: {problem}; run scripts/docker/setup.sh as root", file=sys.stderr)
        return 2
    env = None if args.no_push else de.load_env()
    base = env.base_image if env is not None else base_image()
    failed: list[str] = []
    for suffix in args.variants.split(","):
        try:
            bench(suffix, base, env, args.no_cache, args.keep)
        except Exception as exc:
            failed.append(variant_label(suffix))
            print(f"LOCK_SUFFIX={variant_label(suffix)} failed: {exc}", flush=True)
        print(flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
