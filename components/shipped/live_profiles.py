"""Spawn-time GPU availability for the hub (runs inside the hub, passed as ``hub.extraConfig`` text).

The deploy-time profile list is computed from the nodes at ``pulumi up``; GPUs get taken and nodes go
down in between. At spawn time this wraps the list in KubeSpawner's callable ``profile_list``: node
choices show free/total GPUs (allocatable minus the requests of pods that hold them, as the scheduler
counts), full or NotReady nodes are hidden, sizes no node has room for are hidden, and GPU profiles can be
limited to some groups. The numbers are per-node totals from the availability service
(``availability_service.py``, its own pod: the one process that lists and watches every node and pod, with
``ClusterCache`` below); the hub polls them (``RemoteUsage``) and reads no pod outside its namespace. The list
is computed once per change of those totals (and per set of groups), not per form load. It never breaks
spawning: until the first totals are in, or while the service does not answer, it logs why and serves the
deploy-time list.

Self-contained on purpose (standard library, tornado and kubernetes_asyncio of the hub image): the file's
text is what the hub executes, and what the availability service loads.
"""

import asyncio
import json
import re

GPU_RESOURCE_PATTERN = re.compile(r"^nvidia\.com/(gpu|gpu\.shared|mig-.+)$")
API_TIMEOUT_SECONDS = 5.0  # the one-shot lister (tests), the poller's requests
LIST_PAGE = 500  # items per page of the availability service's initial lists
RECENT_GROUP_SETS = 16  # group sets whose profile list is computed ahead, after each change of the totals
_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
_QTY_SUFFIX = {**_SUFFIX, "T": 10**12, "Ti": 1024**4, "P": 10**15, "Pi": 1024**5, "E": 10**18, "Ei": 1024**6}
# KubeSpawner's byte specifications (mem_guarantee "6G") are 1024-based.
_SPAWNER_BYTES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _quantity(text, millis=False):
    """A Kubernetes quantity as an int (bytes, or millicores); 0 when unreadable (never fail a spawn)."""
    m = re.match(r"^([0-9]+(?:\.[0-9]+)?)(m|[A-Za-z]*)$", str(text).strip())
    if not m:
        return 0
    number, suffix = float(m.group(1)), m.group(2)
    if suffix == "m":
        return int(number) if millis else int(number / 1000)
    if suffix not in _QTY_SUFFIX:
        return 0
    value = number * _QTY_SUFFIX[suffix]
    return int(value * 1000) if millis else int(value)


def _spawner_bytes(text):
    m = re.match(r"^([0-9]+(?:\.[0-9]+)?)([KMGT]?)$", str(text).strip())
    return int(float(m.group(1)) * _SPAWNER_BYTES[m.group(2)]) if m else 0


def _count(text):
    """Extended resources are whole numbers; tolerate a unit suffix rather than fail a spawn."""
    m = re.match(r"^([0-9]+)([A-Za-z]*)$", str(text).strip())
    if not m:
        return 0
    return int(m.group(1)) * _SUFFIX.get(m.group(2), 1)


def _pod_requests(pod):
    """GPU requests of one pod as the scheduler counts them: max(sum of containers, each init container)."""
    spec = pod.get("spec") or {}

    def container_requests(container):
        res = container.get("resources") or {}
        merged = dict(res.get("limits") or {})
        merged.update(res.get("requests") or {})  # extended resources: requests default to limits
        return {k: _count(v) for k, v in merged.items() if GPU_RESOURCE_PATTERN.match(k)}

    total = {}
    for c in spec.get("containers") or []:
        for k, v in container_requests(c).items():
            total[k] = total.get(k, 0) + v
    for c in spec.get("initContainers") or []:
        for k, v in container_requests(c).items():
            total[k] = max(total.get(k, 0), v)
    return total


def _cpu_memory_requests(pod):
    """CPU (millicores) and memory (bytes) requests as the scheduler counts them."""
    spec = pod.get("spec") or {}

    def of(container):
        res = container.get("resources") or {}
        merged = dict(res.get("limits") or {})
        merged.update(res.get("requests") or {})  # no request: the API server defaulted it to the limit
        return _quantity(merged.get("cpu"), millis=True), _quantity(merged.get("memory"))  # absent: 0

    cpu = mem = 0
    for c in spec.get("containers") or []:
        c_cpu, c_mem = of(c)
        cpu, mem = cpu + c_cpu, mem + c_mem
    for c in spec.get("initContainers") or []:
        c_cpu, c_mem = of(c)
        cpu, mem = max(cpu, c_cpu), max(mem, c_mem)
    return cpu, mem


def _holder(pod, node, gpus):
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    user = annotations.get("hub.jupyter.org/username")
    return {
        "node": node,
        "namespace": meta.get("namespace") or "",
        "pod": (meta.get("name") or "") if user else "",
        "user": user if isinstance(user, str) else None,
        "server": str(annotations.get("hub.jupyter.org/servername") or "") if user else "",
        "gpus": dict(sorted(gpus.items())),
        "since": (pod.get("status") or {}).get("startTime") or meta.get("creationTimestamp") or "",
    }


def _node_entry(node):
    status = node.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    ready = ready and not (node.get("spec") or {}).get("unschedulable")
    allocatable = status.get("allocatable") or {}
    return {
        "ready": ready,
        "gpus": {k: _count(v) for k, v in allocatable.items() if GPU_RESOURCE_PATTERN.match(k)},
        "labels": dict((node.get("metadata") or {}).get("labels") or {}),
        "taints": list((node.get("spec") or {}).get("taints") or []),
        "cpu": _quantity(allocatable.get("cpu"), millis=True),
        "memory": _quantity(allocatable.get("memory")),
    }


class ClusterCache:
    """Nodes and pods as the watch reports them, with each node's requested GPUs, CPU and memory kept up to
    date event by event: a form load reads the totals (one pass over the nodes), never the pods."""

    def __init__(self, load_config=None):
        # how the watch reaches the API server: in the hub, the pod's service account; tests pass a
        # coroutine function that loads a kubeconfig
        self.load_config = load_config
        self.nodes = {}  # name -> _node_entry
        self.pods = {}  # key -> (node, gpus, cpu, memory): what the pod holds
        self.used = {}  # node -> [gpus dict, cpu, memory]
        self.holders = {}  # key -> _holder: who holds GPUs where (the GPU overview; never reaches the form)
        self.synced = {"nodes": False, "pods": False}
        self.generation = 0
        self.task = None

    def node_event(self, kind, node):
        name = (node.get("metadata") or {}).get("name")
        if not name:
            return
        if kind == "DELETED":
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = _node_entry(node)
        self.generation += 1

    def _add(self, node, gpus, cpu, mem, sign):
        used = self.used.setdefault(node, [{}, 0, 0])
        for k, v in gpus.items():
            used[0][k] = used[0].get(k, 0) + sign * v
        used[1] += sign * cpu
        used[2] += sign * mem

    def pod_event(self, kind, pod, key=None):
        meta = pod.get("metadata") or {}
        key = key if key is not None else meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"
        old = self.pods.pop(key, None)
        self.holders.pop(key, None)
        if old is not None:
            self._add(*old, -1)
        phase = (pod.get("status") or {}).get("phase")
        node = (pod.get("spec") or {}).get("nodeName")
        if kind != "DELETED" and node and phase not in ("Succeeded", "Failed"):
            held = (node, _pod_requests(pod), *_cpu_memory_requests(pod))
            self.pods[key] = held
            self._add(*held, 1)
            if any(held[1].values()):
                self.holders[key] = _holder(pod, node, held[1])
        self.generation += 1

    def holder_list(self):
        """Who holds GPUs, sorted by node: a hub user's server by its user and server names (annotations
        KubeSpawner sets), any other pod only as "other" with its namespace."""
        return sorted(
            self.holders.values(), key=lambda h: (h["node"], h["namespace"], h["user"] or "", h["server"])
        )

    def take_list(self, kind, fresh):
        """Replace one kind by a complete fresh list (another ClusterCache fed with it)."""
        if kind == "nodes":
            self.nodes = fresh.nodes
        else:
            self.pods, self.used, self.holders = fresh.pods, fresh.used, fresh.holders
        self.synced[kind] = True
        self.generation += 1

    def usage(self):
        """{node: {"ready", "resources": {resource: [free, total]}, "labels", "taints", "cpu": [free, total],
        "memory": [free, total]}} (cpu in millicores, memory in bytes)."""
        out = {}
        for name, n in self.nodes.items():
            gpus, cpu, mem = self.used.get(name) or ({}, 0, 0)
            out[name] = {
                "ready": n["ready"],
                "resources": {k: [max(0, v - gpus.get(k, 0)), v] for k, v in n["gpus"].items()},
                "labels": n["labels"],
                "taints": n["taints"],
                "cpu": [max(0, n["cpu"] - cpu), n["cpu"]],
                "memory": [max(0, n["memory"] - mem), n["memory"]],
            }
        return out

    def start(self, log):
        """Watch nodes and pods in the background (once per hub process)."""
        if self.task is None:
            self.task = asyncio.ensure_future(
                asyncio.gather(self._watch("nodes", log), self._watch("pods", log))
            )
        return self.task

    async def _list_pages(self, method, handler):
        """The initial list in pages of LIST_PAGE items, each taken in before the next is asked for, so the
        memory of a 150,000-pod list is one page; the resourceVersion the watch starts from."""
        token = None
        while True:
            page = {"limit": LIST_PAGE, **({"_continue": token} if token else {})}
            response = await method(_preload_content=False, **page)
            listed = json.loads(await response.read())
            for item in listed.get("items") or []:
                handler("ADDED", item)
            meta = listed.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return meta.get("resourceVersion")

    async def _watch(self, kind, log):
        """List, then watch from that list's resourceVersion; on any end or error, list again."""
        from kubernetes_asyncio import client, config, watch

        handler = self.node_event if kind == "nodes" else self.pod_event
        delay = 1.0
        while True:
            try:
                if self.load_config is not None:
                    await self.load_config()
                else:
                    config.load_incluster_config()
                async with client.ApiClient() as api:
                    core = client.CoreV1Api(api)
                    method = core.list_node if kind == "nodes" else core.list_pod_for_all_namespaces
                    fresh = ClusterCache()  # the old totals serve until the new list is complete
                    version = await self._list_pages(
                        method, fresh.node_event if kind == "nodes" else fresh.pod_event
                    )
                    self.take_list(kind, fresh)
                    delay = 1.0
                    stream = watch.Watch().stream(method, resource_version=version, timeout_seconds=300)
                    async for event in stream:
                        handler(event["type"], event.get("raw_object") or {})
            except Exception as e:  # the API server restarted, the watch expired (410), ...: list again
                log.warning("GPU availability: %s watch ended (%r); listing again", kind, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)


async def _http_get(url, etag):
    """(status, etag, body) of a GET with If-None-Match; connection failures raise."""
    from tornado.httpclient import AsyncHTTPClient

    headers = {"If-None-Match": etag} if etag else {}
    response = await AsyncHTTPClient().fetch(
        url, headers=headers, request_timeout=API_TIMEOUT_SECONDS, raise_error=False
    )
    if response.code == 599:  # tornado's code for "no HTTP answer" (refused, timed out)
        raise RuntimeError(f"no answer from {url}: {response.error!r}")
    return response.code, response.headers.get("ETag"), response.body


def _nodes_of(body):
    doc = json.loads(body)
    return doc.get("nodes") if isinstance(doc, dict) else None


class RemoteUsage:
    """Per-node totals from the availability service, polled every ``every`` seconds: the same reading
    interface as ClusterCache (``start``, ``synced``, ``generation``, ``usage()``), and no pod ever read here.
    A poll that finds nothing new costs a 304; ``generation`` moves only when the totals changed."""

    STALE_AFTER_FAILURES = 3  # then the deploy-time list is served, rather than numbers that may be old

    def __init__(self, url, every=2.0, get=None):
        self.url = url
        self.every = every
        self.get = get or _http_get  # tests pass their own
        self.nodes = {}
        self.etag = None
        self.synced = {"service": False}
        self.generation = 0
        self.failures = 0
        self.task = None
        self.listeners = []  # called (in a thread) after each change: the profile list computes itself anew

    def usage(self):
        return self.nodes

    async def refresh(self):
        """One poll; True when the totals changed."""
        status, etag, body = await self.get(self.url, self.etag)
        if status == 304:
            return False
        if status != 200:
            raise RuntimeError(f"{self.url} answered {status}")
        # parsing (4.6 MiB at 5,000 nodes) and the listeners' recomputation run beside the hub's event loop
        nodes = await asyncio.to_thread(_nodes_of, body)
        if not isinstance(nodes, dict):
            raise RuntimeError(f"{self.url} answered without per-node totals")
        self.nodes, self.etag = nodes, etag
        self.synced["service"] = True
        self.generation += 1
        for listener in self.listeners:
            await asyncio.to_thread(listener)
        return True

    async def poll_once(self, log):
        try:
            await asyncio.wait_for(self.refresh(), API_TIMEOUT_SECONDS)
            self.failures = 0
        except Exception as e:  # the service restarts, is not synced yet (503), ...: keep serving spawns
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                log.warning(
                    "GPU availability: %s did not answer (%r); deploy-time profiles meanwhile", self.url, e
                )
            if self.failures >= self.STALE_AFTER_FAILURES and self.synced["service"]:
                self.synced["service"] = False
                self.etag = None
                self.generation += 1

    def start(self, log):
        """Poll in the background (once per hub process)."""
        if self.task is None:
            self.task = asyncio.ensure_future(self._poll(log))
        return self.task

    async def _poll(self, log):
        while True:
            await self.poll_once(log)
            await asyncio.sleep(self.every)


def gpu_usage(nodes, pods):
    """Usage (see ClusterCache.usage) from plain node and pod lists: the cache fed once."""
    cache = ClusterCache()
    for node in nodes:
        cache.node_event("ADDED", node)
    for index, pod in enumerate(pods):
        cache.pod_event("ADDED", pod, key=index)
    return cache.usage()


def _tolerated(taint, tolerations):
    for t in tolerations or []:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":  # otherwise Equal, the default
            if not t.get("key") or t["key"] == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _admits(info, override):
    """Whether a node (usage entry) is Ready and admits a pod with these affinity and tolerations."""
    if not info["ready"] or not affinity_admits(
        override.get("node_affinity_required"), info.get("labels") or {}
    ):
        return False
    return not any(
        taint.get("effect") in ("NoSchedule", "NoExecute")
        and not _tolerated(taint, override.get("tolerations"))
        for taint in info.get("taints") or []
    )


def _free_total(info, resources):
    """(free, total) of some GPU resources on one node (usage entry); a resource it lacks counts 0."""
    pairs = [info["resources"][r] for r in resources if r in info["resources"]]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def _filter_sizes(profile, usage):
    """Hide size choices no node has room for right now; keep the smallest (marked) if none fits."""
    option = (profile.get("profile_options") or {}).get("size")
    if not option:
        return
    base = profile.get("kubespawner_override") or {}
    choices = option.get("choices") or {}
    # the nodes this profile's pods may use, and their free CPU and memory, once for all sizes (a size
    # sets only CPU and memory, never affinity or tolerations)
    rooms = [(info["cpu"][0], info["memory"][0]) for info in usage.values() if _admits(info, base)]
    kept = {}
    for key, choice in choices.items():
        ov = choice.get("kubespawner_override") or {}
        cpu, mem = int(float(ov.get("cpu_guarantee") or 0) * 1000), _spawner_bytes(ov.get("mem_guarantee"))
        if any(free_cpu >= cpu and free_mem >= mem for free_cpu, free_mem in rooms):
            kept[key] = choice
    if not kept and choices:
        key, choice = next(iter(choices.items()))
        choice["display_name"] = f"{choice['display_name']} - no node has room now"
        kept = {key: choice}
    if not any(c.get("default") for c in kept.values()):
        next(iter(kept.values()))["default"] = True
    option["choices"] = kept


def _expression_holds(expr, labels):
    key, op, values = expr.get("key"), expr.get("operator"), list(expr.get("values") or [])
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels and re.match(r"^-?[0-9]+$", labels[key]) and len(values) == 1:
        a, b = int(labels[key]), int(values[0])
        return a > b if op == "Gt" else a < b
    return False


def affinity_admits(terms, labels):
    """Required node affinity as the scheduler reads it: terms ORed, a term's expressions ANDed;
    no terms: every node. Used to count only the GPUs a profile's pods can actually get."""
    if not terms:
        return True
    return any(
        t.get("matchExpressions") and all(_expression_holds(e, labels) for e in t["matchExpressions"])
        for t in terms
    )


def _gpu_resources(profile):
    """Resources a profile's GPU choices request (empty for CPU profiles)."""
    found = set()
    overrides = [profile.get("kubespawner_override") or {}]
    for option in (profile.get("profile_options") or {}).values():
        overrides.extend((c.get("kubespawner_override") or {}) for c in (option.get("choices") or {}).values())
    for ov in overrides:
        for k, v in (ov.get("extra_resource_limits") or {}).items():
            if v is not None and GPU_RESOURCE_PATTERN.match(k):
                found.add(k)
    return found


def _copy_for_edit(profile):
    """A copy of a profile deep enough for what apply_availability changes (the node and size options'
    choices and display names); the rest is shared, read-only (KubeSpawner deep-copies the result anyway)."""
    out = dict(profile)
    options = dict(profile.get("profile_options") or {})
    for name in ("node", "size"):
        if name in options:
            option = dict(options[name])
            option["choices"] = {k: dict(c) for k, c in (option.get("choices") or {}).items()}
            options[name] = option
    if "profile_options" in profile:
        out["profile_options"] = options
    return out


def apply_availability(profiles, usage, user_groups, gpu_groups):
    """A new profile list: availability in node choices, full/NotReady nodes hidden, groups applied.

    The texts it changes were HTML-escaped at deploy time (components/profiles.py; KubeSpawner's form does not
    escape); it adds only numbers and fixed words, never a node's name or labels from the live lists."""
    out = []
    allowed_gpu = not gpu_groups or bool(set(user_groups) & set(gpu_groups))
    for original in profiles:
        resources = _gpu_resources(original)
        if resources and not allowed_gpu:
            continue
        profile = _copy_for_edit(original)
        if usage is not None:
            _filter_sizes(profile, usage)
        if resources and usage is not None:
            node_option = (profile.get("profile_options") or {}).get("node")
            if node_option is None:
                terms = (profile.get("kubespawner_override") or {}).get("node_affinity_required")
                free = sum(
                    _free_total(n, resources)[0]
                    for n in usage.values()
                    if n["ready"] and affinity_admits(terms, n.get("labels") or {})
                )
                profile["display_name"] = f"{profile['display_name']} - {free} GPU(s) free now"
            else:
                terms = (profile.get("kubespawner_override") or {}).get("node_affinity_required")
                if not _annotate_nodes(node_option, usage, resources, terms):
                    continue
        out.append(profile)
    if out and not any(p.get("default") for p in out):
        out[0]["default"] = True
    return out


_REGEX_CACHE = {}


def _compiled(pattern):
    if pattern not in _REGEX_CACHE:
        _REGEX_CACHE[pattern] = re.compile(pattern)  # "" matches every name
    return _REGEX_CACHE[pattern]


def _annotate_nodes(option, usage, resources, terms=None):
    """Show free/total per node choice, drop full or NotReady nodes; False when no node is left.
    A class too large to list its nodes (a typed name) counts the nodes its affinity admits."""
    choices = option.get("choices") or {}
    free_total = 0
    named_nodes = 0
    kept = {}
    for key, choice in choices.items():
        selector = (choice.get("kubespawner_override") or {}).get("node_selector") or {}
        node = selector.get("kubernetes.io/hostname")
        if node is None:
            kept[key] = choice
            continue
        info = usage.get(node)
        if info is None or not info["ready"]:
            continue
        free, total = _free_total(info, resources)
        if free <= 0:
            continue
        free_total += free
        named_nodes += 1
        choice["display_name"] = f"{choice['display_name']} - {free}/{total} free"
        kept[key] = choice
    unlisted = option.get("unlisted_choice") or {}
    if not named_nodes and unlisted.get("enabled"):
        # the class's nodes are exactly the names its field accepts: match those, not every node's labels
        accepts = _compiled(unlisted.get("validation_regex") or "")
        for node, info in usage.items():
            if info["ready"] and accepts.match(node) and affinity_admits(terms, info.get("labels") or {}):
                free_total += _free_total(info, resources)[0]
        if free_total <= 0:
            return False
    elif not named_nodes:
        return False
    for choice in kept.values():
        selector = (choice.get("kubespawner_override") or {}).get("node_selector") or {}
        if selector.get("kubernetes.io/hostname") is None:
            choice["display_name"] = f"{choice['display_name']} - {free_total} free"
    if not any(c.get("default") for c in kept.values()) and kept:
        next(iter(kept.values()))["default"] = True
    option["choices"] = kept
    return True


def make_profile_list(
    static_profiles, live_availability=True, gpu_groups=(), fetch=None, cache=None, source=None
):
    """KubeSpawner callable profile_list over the deploy-time list.

    Availability comes from ``cache``: a RemoteUsage polling the availability service at ``source`` (the hub),
    or a ClusterCache (tests). Until it has totals, the deploy-time list is served, with a log line. The list
    is computed once per (totals generation, user's groups) and handed out again until the totals change
    (KubeSpawner copies it before use). ``fetch`` (an async one-shot lister of (nodes, pods)) replaces the
    cache; tests use it.
    """
    if live_availability and fetch is None and cache is None:
        cache = RemoteUsage(source) if source else ClusterCache()
    state = {"computed": {}, "groups": []}  # (generation, groups) -> list; the group sets seen lately

    def compute(generation, groups):
        return (generation, groups), apply_availability(
            static_profiles, cache.usage(), list(groups), list(gpu_groups)
        )

    def recompute():
        """After a change of the totals (RemoteUsage's listener, beside the event loop): form loads then find
        their list ready."""
        generation = cache.generation
        state["computed"] = dict(compute(generation, groups) for groups in list(state["groups"]))

    if live_availability and hasattr(cache, "listeners"):
        cache.listeners.append(recompute)

    def from_cache(spawner, groups):
        cache.start(spawner.log)
        if not all(cache.synced.values()):
            spawner.log.info("GPU availability: no per-node totals yet; deploy-time profiles")
            return apply_availability(static_profiles, None, groups, list(gpu_groups))
        groups = tuple(sorted(groups))
        if groups not in state["groups"]:
            state["groups"] = [*state["groups"], groups][-RECENT_GROUP_SETS:]
        key = (cache.generation, groups)
        found = state["computed"].get(key)
        if found is None:
            found = compute(*key)[1]
            state["computed"] = {**{k: v for k, v in state["computed"].items() if k[0] == key[0]}, key: found}
        return found

    async def profile_list(spawner):
        groups = [g.name for g in getattr(spawner.user, "groups", [])]
        if live_availability and fetch is None:
            return from_cache(spawner, groups)
        usage = None
        if live_availability:
            try:
                nodes, pods = await asyncio.wait_for(fetch(), API_TIMEOUT_SECONDS)
                usage = gpu_usage(nodes, pods)
            except Exception as e:  # any failure: serve the deploy-time list, never block a spawn
                spawner.log.warning("GPU availability unavailable, using deploy-time profiles: %r", e)
        return apply_availability(static_profiles, usage, groups, list(gpu_groups))

    profile_list.cache = cache
    return profile_list
