"""Where the scheduler could place a pod: the filters of kube-scheduler that our pods depend on.

A test model of the scheduler's node filters (NodeUnschedulable, TaintToleration, NodeAffinity with
nodeSelector, NodeResourcesFit for extended resources, CPU and memory), applied to plain pod and node
dicts (``kubectl get ... -o json`` shapes). The simulated cluster's real scheduler (tests/e2e) checks
the same pods end to end; this model lets the fast tests ask "which nodes?" for thousands of pods.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from components.core.nodes import parse_quantity

_INT = re.compile(r"^-?[0-9]+$")


def _labels(node: Mapping[str, Any]) -> dict[str, str]:
    return dict((node.get("metadata") or {}).get("labels") or {})


def _expression_matches(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = expr["key"], expr["operator"], list(expr.get("values") or [])
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        # the scheduler parses both sides as integers; a label that is not one never matches
        if not present or not _INT.match(labels[key]) or len(values) != 1:
            return False
        a, b = int(labels[key]), int(values[0])
        return a > b if op == "Gt" else a < b
    raise ValueError(f"unknown operator {op}")


def term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """One NodeSelectorTerm: every expression (and field) holds."""
    labels = _labels(node)
    fields = {"metadata.name": (node.get("metadata") or {}).get("name")}
    exprs = term.get("matchExpressions") or []
    field_exprs = term.get("matchFields") or []
    if not exprs and not field_exprs:
        return False  # an empty term matches nothing
    return all(_expression_matches(e, labels) for e in exprs) and all(
        _expression_matches(e, {k: v for k, v in fields.items() if v is not None}) for e in field_exprs
    )


def terms_match(terms: Iterable[Mapping[str, Any]], node: Mapping[str, Any]) -> bool:
    """NodeSelectorTerms are ORed."""
    return any(term_matches(t, node) for t in terms)


def _tolerated(taint: Mapping[str, Any], tolerations: Iterable[Mapping[str, Any]]) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator", "Equal") == "Exists":
            if not t.get("key") or t["key"] == taint["key"]:
                return True
        elif t.get("key") == taint["key"] and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _requests(pod_spec: Mapping[str, Any]) -> dict[str, int]:
    """Effective requests: max(sum over containers, each init container); a resource with a limit and
    no request is requested at its limit (the API server's defaulting)."""

    def of(container: Mapping[str, Any]) -> dict[str, int]:
        res = container.get("resources") or {}
        merged = dict(res.get("limits") or {})
        merged.update(res.get("requests") or {})
        out = {}
        for k, v in merged.items():
            if k == "cpu":
                out[k] = parse_quantity(str(v), millis=True)
            elif k == "memory" or "/" in k:
                out[k] = parse_quantity(str(v))
        return out

    total: dict[str, int] = {}
    for c in pod_spec.get("containers") or []:
        for k, v in of(c).items():
            total[k] = total.get(k, 0) + v
    for c in pod_spec.get("initContainers") or []:
        for k, v in of(c).items():
            total[k] = max(total.get(k, 0), v)
    return total


def why_not(pod: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """None if the scheduler's filters admit ``pod`` on the empty ``node``, else the first failing filter."""
    spec = pod.get("spec") or pod
    status = node.get("status") or {}
    node_spec = node.get("spec") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if not ready:
        return "NotReady"
    if node_spec.get("unschedulable"):
        return "unschedulable"
    labels = _labels(node)
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return f"nodeSelector {key}={value}"
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if terms is not None and not terms_match(terms, node):
        return "node affinity"
    for taint in node_spec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(taint, spec.get("tolerations") or []):
            return f"taint {taint['key']}"
    allocatable = status.get("allocatable") or {}
    for resource, amount in _requests(spec).items():
        if amount <= 0:
            continue
        have = allocatable.get(resource)
        if have is None:
            return f"no {resource}"
        try:
            cap = parse_quantity(str(have), millis=resource == "cpu")
        except ValueError:
            return f"unreadable {resource}"  # the model refuses what it cannot read, rather than guess
        if amount > cap:
            return f"insufficient {resource}"
    return None


def nodes_for(pod: Mapping[str, Any], nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the nodes the pod fits on (each considered empty), sorted."""
    return sorted(n["metadata"]["name"] for n in nodes if why_not(pod, n) is None)
