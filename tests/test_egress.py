"""User pods' egress (issue 25, point 5): the rendered chart's NetworkPolicy denies what docs/security.md says
it denies, judged by the policy's own ipBlock semantics on the objects Helm renders from our values."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from components.core.config_load import parse_config
from components.core.egress_spec import BLOCKED_V4, BLOCKED_V6, user_egress_rules
from components.core.nodes import parse_nodes
from components.core.values import build_values
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import node, node_list
from tests.hubconfig import render

ADDRESSES = [
    {"type": "InternalIP", "address": "100.101.1.2"},  # a Tailscale/CGNAT address
    {"type": "ExternalIP", "address": "203.0.113.7"},  # a public one (a documentation range here)
    {"type": "InternalIP", "address": "2001:db8::5"},
    {"type": "Hostname", "address": "gpu-a"},
    {"type": "InternalIP", "address": "not-an-ip"},
]


def nodes_with_addresses() -> dict[str, Any]:
    gpu = node("gpu-a", gpus=2, product="NVIDIA-GeForce-RTX-4090", memory_mib=24564)
    gpu["status"]["addresses"] = ADDRESSES
    cpu = node("cpu-1", control_plane=True)
    cpu["status"]["addresses"] = [{"type": "InternalIP", "address": "192.168.1.10"}]
    return node_list(gpu, cpu)


def values(**network: Any) -> dict[str, Any]:
    raw = {**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}, "network": network}
    return build_values(parse_config(raw), parse_nodes(nodes_with_addresses()), GIVEN_REFS)


def singleuser_policy(v: dict[str, Any]) -> dict[str, Any]:
    return next(o for o in render(v) if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "singleuser")


def reachable(policy: dict[str, Any], ip: str, port: int) -> bool:
    """Whether an egress rule of ``policy`` admits ``ip``:``port`` by an ipBlock (pod and namespace selectors
    never match an address outside the cluster's pods)."""
    address = ipaddress.ip_address(ip)
    for rule in policy["spec"]["egress"]:
        ports = [p["port"] for p in rule.get("ports", [])]
        if ports and port not in ports:
            continue
        for peer in rule.get("to", []):
            block = peer.get("ipBlock")
            if not block:
                continue
            net = ipaddress.ip_network(block["cidr"])
            inside = address.version == net.version and address in net
            if inside and not any(address in ipaddress.ip_network(e) for e in block.get("except", [])):
                return True
    return False


@pytest.mark.parametrize(
    ("ip", "port", "why"),
    [
        ("100.101.1.2", 10250, "a node's CGNAT address (its kubelet)"),
        ("100.64.0.1", 443, "CGNAT space"),
        ("169.254.169.254", 80, "the cloud metadata address"),
        ("169.254.10.1", 80, "the rest of link-local"),
        ("203.0.113.7", 6443, "a node's public address (its API server)"),
        ("203.0.113.7", 8888, "a node's public address (a host-network filer)"),
        ("2001:db8::5", 10250, "a node's IPv6 address"),
        ("10.96.0.10", 53, "DNS to a private address outside kube-system's pods"),
        ("192.168.1.10", 53, "DNS to a node"),
        ("169.254.169.254", 53, "DNS to the metadata address"),
        ("fe80::1", 80, "IPv6 link-local"),
    ],
)
def test_user_pods_cannot_reach_the_clusters_own_addresses(ip: str, port: int, why: str) -> None:
    assert not reachable(singleuser_policy(values()), ip, port), why


def test_user_pods_reach_the_internet_and_what_the_admin_allows() -> None:
    policy = singleuser_policy(values(userEgressCidrs=["10.20.0.0/16"]))
    assert reachable(policy, "151.101.0.223", 443) and reachable(policy, "2a04:4e42::223", 443)
    assert reachable(policy, "10.20.3.4", 8000), "network.userEgressCidrs"
    assert not reachable(policy, "10.21.3.4", 8000)
    dns = [r for r in policy["spec"]["egress"] if any(p["port"] == 53 for p in r.get("ports", []))]
    assert [peer for r in dns for peer in r["to"]] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ], "DNS only to the cluster's DNS in kube-system"


def test_the_except_lists_are_what_the_api_server_accepts() -> None:
    """Every except entry is inside its cidr and smaller (the API server refuses anything else); node addresses
    already inside a block are not listed twice; unreadable addresses are left out."""
    nodes = parse_nodes(nodes_with_addresses())
    assert nodes.nodes[1].addresses == ("100.101.1.2", "2001:db8::5", "203.0.113.7")
    rules = user_egress_rules(["100.101.1.2", "2001:db8::5", "203.0.113.7", "192.168.1.10"], [])
    (internet,) = [r for r in rules if len(r["to"]) == 2]
    for peer in internet["to"]:
        cidr = ipaddress.ip_network(peer["ipBlock"]["cidr"])
        for entry in peer["ipBlock"]["except"]:
            net = ipaddress.ip_network(entry)
            assert net.subnet_of(cidr) and net != cidr  # type: ignore[arg-type]
    v4, v6 = (peer["ipBlock"]["except"] for peer in internet["to"])
    assert v4 == sorted([*BLOCKED_V4, "203.0.113.7/32"], key=ipaddress.ip_network)
    assert v6 == sorted([*BLOCKED_V6, "2001:db8::5/128"], key=ipaddress.ip_network)
