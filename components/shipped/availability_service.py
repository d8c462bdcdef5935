"""The GPU availability service: the one process that watches every node and pod of the cluster.

The hub's spawn form shows free GPUs per node, which needs the pods of every namespace. Watching them from the
hub would give the hub process (users' sessions, their tokens, KubeSpawner's rights) a ClusterRole that reads
every pod of the cluster, other applications' inline environment values included. So the watch runs here, in
a pod of its own with its own ServiceAccount and a ClusterRole that may only list and watch nodes and pods,
and it hands out only per-node totals (free/total GPUs, CPU and memory, with the labels and taints that decide
where a profile's pods may go): ``GET /usage`` answers ``{"generation": n, "nodes": {...}}`` with an ETag, and
304 when the caller already has that generation; 503 until the first lists are in. ``GET /holders`` answers
who holds GPUs (a hub user's server by user and server name, other pods by namespace only), the same way, for
the GPU overview (gpu_overview.py). ``GET /healthz`` answers while the process serves. The hub polls it
(``live_profiles.RemoteUsage``).

Runs the watch of ``live_profiles.ClusterCache`` (the file beside this one: both are shipped together, from
``components/``, into one ConfigMap) on the chart's hub image: Python, tornado and kubernetes_asyncio.
"""

import argparse
import asyncio
import importlib.util
import json
import logging
import sys
from pathlib import Path


def load_live_profiles():
    """live_profiles.py from this file's directory (the ConfigMap's mount, or components/ in a checkout)."""
    path = Path(__file__).with_name("live_profiles.py")
    spec = importlib.util.spec_from_file_location("live_profiles", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class GenerationBody:
    """The JSON body of one generation, encoded once however many pollers ask for it."""

    def __init__(self, cache, key, read):
        self.cache, self.key, self.read = cache, key, read
        self.generation = None
        self.body = b""

    def current(self):
        if self.generation != self.cache.generation:
            generation = self.cache.generation
            self.body = json.dumps({"generation": generation, self.key: self.read()}, sort_keys=True).encode()
            self.generation = generation
        return self.generation, self.body


def make_app(cache):
    """The tornado application over a cache (anything with ``synced``, ``generation``, ``usage()`` and
    ``holder_list()``)."""
    from tornado import web

    class Generational(web.RequestHandler):
        body = None

        def get(self):
            if not all(cache.synced.values()):
                self.set_status(503)
                self.finish({"message": "the node and pod watch is not synced yet"})
                return
            generation, data = self.body.current()
            etag = f'"{generation}"'
            self.set_header("ETag", etag)
            self.set_header("Cache-Control", "no-cache")
            if self.request.headers.get("If-None-Match") == etag:
                self.set_status(304)
                self.finish()
                return
            self.set_header("Content-Type", "application/json")
            self.finish(data)

        def compute_etag(self):  # ours is the generation, not a hash of the body
            return None

    class Health(web.RequestHandler):
        def get(self):
            self.finish({"synced": all(cache.synced.values())})

    class Usage(Generational):
        body = GenerationBody(cache, "nodes", cache.usage)

    class Holders(Generational):
        body = GenerationBody(cache, "holders", cache.holder_list)

    return web.Application([(r"/usage", Usage), (r"/holders", Holders), (r"/healthz", Health)])


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8181)
    parser.add_argument("--address", default="", help="address to listen on (all by default)")
    parser.add_argument("--kubeconfig", help="a kubeconfig instead of the pod's service account (tests)")
    parser.add_argument("--context", help="the kubeconfig's context")
    return parser.parse_args(argv)


async def serve(args, log):
    live = load_live_profiles()
    load_config = None
    if args.kubeconfig:
        from kubernetes_asyncio import config

        async def load_config():
            await config.load_kube_config(config_file=args.kubeconfig, context=args.context)

    cache = live.ClusterCache(load_config=load_config)
    make_app(cache).listen(args.port, address=args.address)
    log.info("GPU availability: serving per-node totals on port %d", args.port)
    await cache.start(log)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(args, logging.getLogger("gpu-availability")))


if __name__ == "__main__":
    main()
