"""Spawn-time GPU availability for the hub (runs inside the hub, passed as ``hub.extraConfig`` text).

The deploy-time profile list is computed from the nodes at ``pulumi up``; GPUs get taken and nodes go
down in between. At spawn time this wraps the list in KubeSpawner's callable ``profile_list``: node
choices show free/total GPUs (allocatable minus the requests of pods that hold them, as the scheduler
counts), full or NotReady nodes are hidden, and GPU profiles can be limited to some groups. It never
breaks spawning: on any API error it logs why and serves the deploy-time list.

Self-contained on purpose (standard library and the hub image's kubernetes_asyncio only): the file's
text is what the hub executes.
"""

import asyncio
import copy
import re

GPU_RESOURCE_PATTERN = re.compile(r"^nvidia\.com/(gpu|gpu\.shared|mig-.+)$")
API_TIMEOUT_SECONDS = 5.0
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
        return _quantity(merged.get("cpu", "0"), millis=True), _quantity(merged.get("memory", "0"))

    cpu = mem = 0
    for c in spec.get("containers") or []:
        c_cpu, c_mem = of(c)
        cpu, mem = cpu + c_cpu, mem + c_mem
    for c in spec.get("initContainers") or []:
        c_cpu, c_mem = of(c)
        cpu, mem = max(cpu, c_cpu), max(mem, c_mem)
    return cpu, mem


def gpu_usage(nodes, pods):
    """{node: {"ready", "resources": {resource: [free, total]}, "labels", "taints", "cpu": [free, total],
    "memory": [free, total]}} from plain node and pod dicts (cpu in millicores, memory in bytes)."""
    usage = {}
    for node in nodes:
        name = (node.get("metadata") or {}).get("name")
        if not name:
            continue
        status = node.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        ready = ready and not (node.get("spec") or {}).get("unschedulable", False)
        alloc = {k: _count(v) for k, v in (status.get("allocatable") or {}).items() if GPU_RESOURCE_PATTERN.match(k)}
        labels = dict((node.get("metadata") or {}).get("labels") or {})
        allocatable = status.get("allocatable") or {}
        cpu = _quantity(allocatable.get("cpu", "0"), millis=True)
        mem = _quantity(allocatable.get("memory", "0"))
        usage[name] = {
            "ready": ready,
            "resources": {k: [v, v] for k, v in alloc.items()},
            "labels": labels,
            "taints": list((node.get("spec") or {}).get("taints") or []),
            "cpu": [cpu, cpu],
            "memory": [mem, mem],
        }
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        node_name = (pod.get("spec") or {}).get("nodeName")
        if phase in ("Succeeded", "Failed") or node_name not in usage:
            continue
        for k, v in _pod_requests(pod).items():
            slot = usage[node_name]["resources"].get(k)
            if slot is not None:
                slot[0] = max(0, slot[0] - v)
        cpu, mem = _cpu_memory_requests(pod)
        usage[node_name]["cpu"][0] = max(0, usage[node_name]["cpu"][0] - cpu)
        usage[node_name]["memory"][0] = max(0, usage[node_name]["memory"][0] - mem)
    return usage


def _tolerated(taint, tolerations):
    for t in tolerations or []:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator", "Equal") == "Exists":
            if not t.get("key") or t["key"] == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _room_for(size, info, override):
    """Whether a node (usage entry) has the free CPU and memory for a size, and admits the pod."""
    if not info["ready"] or not affinity_admits(override.get("node_affinity_required"), info.get("labels") or {}):
        return False
    for taint in info.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(taint, override.get("tolerations")):
            return False
    return info["cpu"][0] >= size[0] and info["memory"][0] >= size[1]


def _filter_sizes(profile, usage):
    """Hide size choices no node has room for right now; keep the smallest (marked) if none fits."""
    option = (profile.get("profile_options") or {}).get("size")
    if not option:
        return
    base = profile.get("kubespawner_override") or {}
    choices = option.get("choices") or {}
    kept = {}
    for key, choice in choices.items():
        ov = choice.get("kubespawner_override") or {}
        size = (int(float(ov.get("cpu_guarantee") or 0) * 1000), _spawner_bytes(ov.get("mem_guarantee") or "0"))
        if any(_room_for(size, info, {**base, **ov}) for info in usage.values()):
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
        t.get("matchExpressions") and all(_expression_holds(e, labels) for e in t["matchExpressions"]) for t in terms
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


def apply_availability(profiles, usage, user_groups, gpu_groups):
    """A new profile list: availability in node choices, full/NotReady nodes hidden, groups applied."""
    out = []
    allowed_gpu = not gpu_groups or bool(set(user_groups) & set(gpu_groups))
    for original in profiles:
        resources = _gpu_resources(original)
        if resources and not allowed_gpu:
            continue
        profile = copy.deepcopy(original)
        if usage is not None:
            _filter_sizes(profile, usage)
        if resources and usage is not None:
            node_option = (profile.get("profile_options") or {}).get("node")
            if node_option is None:
                terms = (profile.get("kubespawner_override") or {}).get("node_affinity_required")
                free = sum(
                    n["resources"].get(r, [0, 0])[0]
                    for n in usage.values()
                    if n["ready"] and affinity_admits(terms, n.get("labels") or {})
                    for r in resources
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
        free = sum(info["resources"].get(r, [0, 0])[0] for r in resources)
        total = sum(info["resources"].get(r, [0, 0])[1] for r in resources)
        if free <= 0:
            continue
        free_total += free
        named_nodes += 1
        choice["display_name"] = f"{choice['display_name']} - {free}/{total} free"
        kept[key] = choice
    if not named_nodes and (option.get("unlisted_choice") or {}).get("enabled"):
        for info in usage.values():
            if info["ready"] and affinity_admits(terms, info.get("labels") or {}):
                free_total += sum(info["resources"].get(r, [0, 0])[0] for r in resources)
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


async def fetch_cluster_state():
    """Nodes and GPU-holding pods from the API server, as plain dicts (needs list on nodes and pods)."""
    from kubernetes_asyncio import client, config

    config.load_incluster_config()
    async with client.ApiClient() as api:
        core = client.CoreV1Api(api)
        nodes = await core.list_node()
        pods = await core.list_pod_for_all_namespaces(field_selector="status.phase!=Succeeded,status.phase!=Failed")
        return (
            [api.sanitize_for_serialization(n) for n in nodes.items],
            [api.sanitize_for_serialization(p) for p in pods.items],
        )


def make_profile_list(static_profiles, live_availability=True, gpu_groups=(), fetch=None):
    """KubeSpawner callable profile_list over the deploy-time list."""
    fetch = fetch or fetch_cluster_state

    async def profile_list(spawner):
        usage = None
        if live_availability:
            try:
                nodes, pods = await asyncio.wait_for(fetch(), API_TIMEOUT_SECONDS)
                usage = gpu_usage(nodes, pods)
            except Exception as e:  # any failure: serve the deploy-time list, never block a spawn
                spawner.log.warning("GPU availability unavailable, using deploy-time profiles: %r", e)
        groups = [g.name for g in getattr(spawner.user, "groups", [])]
        return apply_availability(static_profiles, usage, groups, list(gpu_groups))

    return profile_list
