"""Node inventory: ``kubectl get nodes -o json`` in, typed and sorted plain data out.

GPUs are read from what the scheduler accounts (allocatable ``nvidia.com/gpu`` and ``nvidia.com/mig-*``)
and described with NVIDIA GPU feature discovery labels when they exist. A malformed node never crashes
the program: it is skipped with a reason; a malformed document is a clear ``NodeDataError``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

GPU_RESOURCE = "nvidia.com/gpu"
# The device plugin's renameByDefault advertises shared (time-sliced or MPS) GPUs under this name.
SHARED_GPU_RESOURCE = "nvidia.com/gpu.shared"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
# Bounds on what a node may claim: a kubelet can report anything, and a range over 10^18 GPUs hangs.
MAX_GPU_SLOTS = 1024  # per resource on one node (8 GPUs x 16 time-slices x 8 is far below)
MAX_GPUS_PER_SERVER = 16  # GPU count choices offered per server
_MAX_DIGITS = 24
_MIG_RESOURCE = re.compile(r"^nvidia\.com/mig-[0-9]+g\.[0-9]+gb(\.[a-z0-9+.-]+)?$")
_INT = re.compile(r"^[0-9]+$")
_CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
# The API server's own rules (k8s.io/apimachinery validation): node names are DNS-1123 subdomains, label values
# are at most 63 characters of [A-Za-z0-9._-] with a letter or digit at each end (or empty). A real cluster's
# data always meets them; an offline nodes.file need not, and what breaks them (markup, quotes) would reach
# the spawn form.
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
NODE_NAME_RULE = (
    "a node name must be a DNS-1123 subdomain: at most 253 characters, lower-case letters, digits, '-' and '.', "
    "starting and ending with a letter or digit"
)
LABEL_VALUE_RULE = (
    "a label value must be empty or at most 63 characters of letters, digits, '-', '_' and '.', starting and ending "
    "with a letter or digit"
)


class NodeDataError(ValueError):
    """The node list as a whole is unusable (not JSON, not a NodeList)."""


def valid_node_name(name: Any) -> bool:
    """Whether the API server would accept ``name`` for a node (a DNS-1123 subdomain)."""
    return isinstance(name, str) and len(name) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(name) is not None


def valid_label_value(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 63 and _LABEL_VALUE.fullmatch(value) is not None


class Taint(BaseModel):
    model_config = ConfigDict(frozen=True)
    key: str
    value: str = ""
    effect: str


class GpuInfo(BaseModel):
    """What a node offers to GPU pods, as the device plugin advertises it."""

    model_config = ConfigDict(frozen=True)
    allocatable: int  # nvidia.com/gpu slots (physical GPUs, MIG slices in single mode, or time-slices)
    product: str | None
    memory_mib: int | None
    count: int  # physical GPUs (label), or allocatable when unlabelled
    replicas: int  # time-slicing replicas per GPU (1 = not shared)
    sharing_strategy: str  # none, time-slicing or mps
    mig_strategy: str | None  # single, mixed or None
    mig_resources: tuple[tuple[str, int], ...]  # sorted (resource name, allocatable)
    resource: str = GPU_RESOURCE  # what a pod requests: nvidia.com/gpu, or nvidia.com/gpu.shared when renamed
    driver_major: int | None = None  # nvidia.com/cuda.driver-version.major; None: no label (driver unknown)
    driver: str | None = None  # "570.124.06" for messages, from the cuda.driver.* labels

    @property
    def shared(self) -> bool:
        return self.replicas > 1 or self.sharing_strategy in ("time-slicing", "mps")

    @property
    def sharing(self) -> str:
        """How the plan names the sharing: "MPS" or "time-sliced" ("" when not shared)."""
        if not self.shared:
            return ""
        return "MPS" if self.sharing_strategy == "mps" else "time-sliced"

    @property
    def max_per_user(self) -> int:
        """A shared GPU gives one user one slot (more slots are the same silicon; the device plugin
        refuses more than one MPS replica per container); otherwise up to the physical GPUs, at most 16."""
        if self.shared:
            return 1
        return max(1, min(self.allocatable, self.count, MAX_GPUS_PER_SERVER))


class NodeInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    ready: bool
    schedulable: bool
    control_plane: bool
    taints: tuple[Taint, ...]
    cpu_millis: int | None
    memory_bytes: int | None
    gpu: GpuInfo | None
    gpu_labelled: bool  # GPU feature discovery says a GPU is present (even if none is allocatable)
    os: str | None = None  # kubernetes.io/os
    arch: str | None = None  # kubernetes.io/arch
    gpu_capacity: int = 0  # GPUs the device plugin registered, healthy or not (capacity)
    gpu_allocatable: int = 0  # of those, the healthy ones (allocatable)
    addresses: tuple[str, ...] = ()  # status.addresses of type InternalIP/ExternalIP that parse as IPs, sorted


def _addresses(raw: Any) -> tuple[str, ...]:
    """A node's IP addresses (what user pods must not reach: kubelets, host-network services); anything that
    is not an IP of type InternalIP or ExternalIP is left out, never an error."""
    found = set()
    for entry in raw if isinstance(raw, list) else []:
        if isinstance(entry, Mapping) and entry.get("type") in ("InternalIP", "ExternalIP"):
            try:
                found.add(str(ipaddress.ip_address(str(entry.get("address")))))
            except ValueError:
                continue
    return tuple(sorted(found))


class SkippedNode(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    reason: str


class Inventory(BaseModel):
    """All nodes (sorted by name) and the ones whose data could not be read."""

    model_config = ConfigDict(frozen=True)
    nodes: tuple[NodeInfo, ...]
    skipped: tuple[SkippedNode, ...]


_SUFFIX = {
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "Pi": 1024**5,
    "Ei": 1024**6,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "": 1,
}
_QTY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")


def parse_quantity(text: Any, *, millis: bool = False) -> int:
    """A Kubernetes quantity as an int (bytes, or millicores when ``millis``)."""
    m = _QTY.match(str(text).strip()) if isinstance(text, str | int) and not isinstance(text, bool) else None
    if not m:
        raise ValueError(f"not a Kubernetes quantity: {_short(text)}")
    if len(m.group(1)) > _MAX_DIGITS:
        raise ValueError(f"quantity {_short(text)} has more than {_MAX_DIGITS} digits")
    number, suffix = float(m.group(1)), m.group(2) or ""
    if suffix == "m":
        return int(number) if millis else int(number / 1000)
    value = number * _SUFFIX[suffix]
    return int(value * 1000) if millis else int(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _int_label(labels: Mapping[str, str], key: str) -> int | None:
    raw = labels.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str) or not _INT.match(raw) or len(raw) > 9:
        raise ValueError(f"label {key}={_short(raw)} is not a plausible whole number")
    return int(raw)


def _gpu_slots(allocatable: Mapping[str, Any], key: str) -> int:
    """An extended GPU resource as a count, refusing values no node can have."""
    if key not in allocatable:
        return 0
    n = parse_quantity(allocatable[key])
    if n > MAX_GPU_SLOTS:
        raise ValueError(f"{key} = {_short(allocatable[key])} is not a plausible GPU count (more than {MAX_GPU_SLOTS})")
    return n


def _str_map(obj: Any, what: str) -> dict[str, str]:
    if obj is None:
        return {}
    if not isinstance(obj, Mapping):
        raise ValueError(f"{what} is not a mapping")
    return {str(k): v for k, v in obj.items()}


# GPU feature discovery's driver labels: current names, then the deprecated ones (older releases).
_DRIVER_LABELS = (
    (
        "nvidia.com/cuda.driver-version.major",
        "nvidia.com/cuda.driver-version.minor",
        "nvidia.com/cuda.driver-version.revision",
    ),
    ("nvidia.com/cuda.driver.major", "nvidia.com/cuda.driver.minor", "nvidia.com/cuda.driver.rev"),
)


def _driver(labels: Mapping[str, str]) -> tuple[int | None, str | None]:
    """(major, "570.124.06") from the first label set present; minor and revision as far as they are numbers."""
    for major_key, *rest in _DRIVER_LABELS:
        major = _int_label(labels, major_key)
        if major is None:
            continue
        parts = [str(major)]
        for key in rest:
            value = labels.get(key)
            if not (isinstance(value, str) and re.fullmatch(r"[0-9]{1,6}", value)):
                break
            parts.append(value)
        return major, ".".join(parts)
    return None, None


def _parse_gpu(labels: Mapping[str, str], allocatable: Mapping[str, Any]) -> GpuInfo | None:
    resource = GPU_RESOURCE
    gpu_alloc = _gpu_slots(allocatable, GPU_RESOURCE)
    if gpu_alloc <= 0 and _gpu_slots(allocatable, SHARED_GPU_RESOURCE) > 0:
        resource, gpu_alloc = SHARED_GPU_RESOURCE, _gpu_slots(allocatable, SHARED_GPU_RESOURCE)
    mig: list[tuple[str, int]] = []
    for key in sorted(allocatable):
        if key.startswith(MIG_RESOURCE_PREFIX) and _MIG_RESOURCE.match(key):
            n = _gpu_slots(allocatable, key)
            if n > 0:
                mig.append((key, n))
    if gpu_alloc <= 0 and not mig:
        return None
    product = labels.get("nvidia.com/gpu.product")
    replicas = _int_label(labels, "nvidia.com/gpu.replicas") or 1
    strategy = labels.get("nvidia.com/gpu.sharing-strategy") or ("time-slicing" if replicas > 1 else "none")
    if resource == SHARED_GPU_RESOURCE and strategy == "none":
        strategy = "time-slicing"  # renamed resources exist only for shared GPUs
    driver_major, driver = _driver(labels)
    count = _int_label(labels, "nvidia.com/gpu.count")
    if count is None:
        count = max(1, gpu_alloc // replicas) if gpu_alloc else len(mig)
    return GpuInfo(
        allocatable=gpu_alloc,
        product=str(product) if product else None,
        memory_mib=_int_label(labels, "nvidia.com/gpu.memory"),
        count=count,
        replicas=replicas,
        sharing_strategy=str(strategy),
        mig_strategy=labels.get("nvidia.com/mig.strategy") or None,
        mig_resources=tuple(mig),
        resource=resource,
        driver_major=driver_major,
        driver=driver,
    )


def parse_node(item: Any) -> NodeInfo:
    """One node object; raises ValueError (with the reason) when it cannot be read."""
    if not isinstance(item, Mapping):
        raise ValueError("node entry is not an object")
    meta = item.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise ValueError("node has no metadata.name")
    if not valid_node_name(meta["name"]):
        raise ValueError(f"metadata.name {_short(meta['name'])}: {NODE_NAME_RULE}")
    spec = item.get("spec") or {}
    status = item.get("status") or {}
    if not isinstance(spec, Mapping) or not isinstance(status, Mapping):
        raise ValueError("spec/status are not objects")
    labels = _str_map(meta.get("labels"), "metadata.labels")
    allocatable = _str_map(status.get("allocatable"), "status.allocatable")
    capacity = _str_map(status.get("capacity"), "status.capacity")
    conditions = status.get("conditions") or []
    if not isinstance(conditions, list):
        raise ValueError("status.conditions is not a list")
    ready = any(isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    taints_raw = spec.get("taints") or []
    if not isinstance(taints_raw, list):
        raise ValueError("spec.taints is not a list")
    taints = []
    for t in taints_raw:
        if not isinstance(t, Mapping) or not isinstance(t.get("key"), str) or not isinstance(t.get("effect"), str):
            raise ValueError("a taint lacks key or effect")
        taints.append(Taint(key=t["key"], value=str(t.get("value") or ""), effect=t["effect"]))
    cpu = parse_quantity(allocatable["cpu"], millis=True) if "cpu" in allocatable else None
    mem = parse_quantity(allocatable["memory"]) if "memory" in allocatable else None
    whole = (GPU_RESOURCE, SHARED_GPU_RESOURCE)
    node = NodeInfo(
        name=meta["name"],
        ready=ready,
        schedulable=not bool(spec.get("unschedulable")),
        control_plane=any(k in labels for k in _CONTROL_PLANE_LABELS),
        taints=tuple(sorted(taints, key=lambda t: (t.key, t.value, t.effect))),
        cpu_millis=cpu,
        memory_bytes=mem,
        gpu=_parse_gpu(labels, allocatable),
        gpu_labelled=labels.get("nvidia.com/gpu.present") == "true",
        os=labels.get("kubernetes.io/os") or labels.get("beta.kubernetes.io/os"),
        arch=labels.get("kubernetes.io/arch") or labels.get("beta.kubernetes.io/arch"),
        gpu_capacity=sum(_gpu_slots(capacity, k) for k in whole),
        gpu_allocatable=sum(_gpu_slots(allocatable, k) for k in whole),
        addresses=_addresses(status.get("addresses")),
    )
    # last, so that the labels read above keep their more specific messages
    for key, value in labels.items():
        if isinstance(value, str) and not valid_label_value(value):  # other types fail where they are read
            raise ValueError(f"label {_short(key)}={_short(value)}: {LABEL_VALUE_RULE}")
    return node


def parse_nodes(document: Any, *, refuse_bad_names: bool = False) -> Inventory:
    """A NodeList (dict, or its JSON text) into an Inventory sorted by node name.

    A node whose name or label values break the API server's rules is skipped like any unreadable node
    (its name is kept only in the report). ``refuse_bad_names`` (an offline file, which no API server
    checked) refuses the whole list for a bad name instead: such a file is not what kubectl returns."""
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise NodeDataError(f"node list is not JSON: {e}") from None
        except RecursionError:
            raise NodeDataError("node list is nested too deeply to be a NodeList") from None
    if not isinstance(document, Mapping) or not isinstance(document.get("items"), list):
        raise NodeDataError("node list must be a JSON object with an `items` list (kubectl get nodes -o json)")
    if refuse_bad_names:
        for item in document["items"]:
            meta = item.get("metadata") if isinstance(item, Mapping) else None
            name = meta.get("name") if isinstance(meta, Mapping) else None
            if name is not None and not valid_node_name(name):
                raise NodeDataError(f"node {_short(name)} is refused: {NODE_NAME_RULE}")
    nodes: dict[str, NodeInfo] = {}
    skipped: list[SkippedNode] = []
    for item in document["items"]:
        try:
            node = parse_node(item)
        except (ValueError, TypeError, KeyError) as e:
            meta = item.get("metadata") if isinstance(item, Mapping) else None
            name = meta.get("name") if isinstance(meta, Mapping) else None
            label = name if isinstance(name, str) and name else "(unnamed node)"
            skipped.append(SkippedNode(name=label, reason=f"unreadable node data: {e}"))
            continue
        if node.name in nodes:
            # Two nodes cannot share a name, so this is a broken or merged list. Rule: keep the entry whose
            # serialized form sorts first (arbitrary, but the same in any API order), report the other.
            keep, drop = sorted([nodes[node.name], node], key=lambda n: n.model_dump_json())
            nodes[node.name] = keep
            skipped.append(SkippedNode(name=drop.name, reason="duplicate node name; one entry kept"))
            continue
        nodes[node.name] = node
    return Inventory(
        nodes=tuple(nodes[n] for n in sorted(nodes)),
        skipped=tuple(sorted(skipped, key=lambda s: (s.name, s.reason))),
    )


_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")
# Taints the scheduler manages itself for node conditions; NotReady/cordoned are reported separately.
_CONDITION_TAINTS = ("node.kubernetes.io/",)


def _tolerates(taint_key: str, taint_value: str, effect: str, tolerations: list[dict[str, str]]) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != effect:
            continue
        if t.get("operator") == "Exists":  # otherwise Equal, the default
            if not t.get("key") or t["key"] == taint_key:
                return True
        elif t.get("key") == taint_key and t.get("value", "") == taint_value:
            return True
    return False


def blocking_taints(node: NodeInfo, tolerations: list[dict[str, str]]) -> list[str]:
    """The node's NoSchedule/NoExecute taints that pods with ``tolerations`` do not tolerate (as key=value:effect)."""
    out = []
    for t in node.taints:
        if t.effect not in _BLOCKING_EFFECTS or t.key.startswith(_CONDITION_TAINTS):
            continue
        if not _tolerates(t.key, t.value, t.effect, tolerations):
            out.append(f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}")
    return out
