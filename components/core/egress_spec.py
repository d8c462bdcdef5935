"""User pods' egress: the internet, and nothing of the cluster's own networks (pure).

The chart's ``nonPrivateIPs`` rule is 0.0.0.0/0 except RFC 1918 and the metadata address, which leaves
CGNAT space (100.64.0.0/10: Tailscale and many home-lab node addresses), the rest of link-local, and public
node addresses reachable, and with them kubelets, the API server and host-network services such as a
SeaweedFS filer. Its DNS rules open port 53 to every private address. So the chart's rules are off and this
one takes their place: every IPv4 and IPv6 address except the special-purpose blocks below and every address
of every node the program read, plus the chart's own rule for DNS to the cluster's DNS in kube-system.
"""

from __future__ import annotations

import ipaddress
from typing import Any

# IANA special-purpose blocks a pod has no business reaching outside the cluster: "this network", RFC 1918,
# CGNAT, loopback, link-local (cloud metadata included), IETF protocol assignments, benchmarking, multicast
# and reserved.
BLOCKED_V4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
# loopback, NAT64, unique local, link-local, multicast (IPv4-mapped ::ffff:0:0/96 is left out: the API server
# reads it as IPv4, "not a strict subset" of ::/0; such addresses are IPv4 traffic, which the IPv4 rule judges)
BLOCKED_V6 = ("::1/128", "64:ff9b::/96", "fc00::/7", "fe80::/10", "ff00::/8")


def _blocked(cidrs: tuple[str, ...], addresses: list[str], version: int) -> list[str]:
    """The except list: the special blocks, then each node address no block already covers (/32 or /128)."""
    blocks = [ipaddress.ip_network(c) for c in cidrs]
    extra = set()
    for text in addresses:
        ip = ipaddress.ip_address(text)
        if ip.version == version and not any(ip in b for b in blocks):
            extra.add(ipaddress.ip_network(ip))
    return [str(n) for n in sorted({*blocks, *extra})]


def blocked_addresses(node_addresses: list[str]) -> dict[str, list[str]]:
    """What user pods may not reach, per address family (for the plan)."""
    return {
        "0.0.0.0/0": _blocked(BLOCKED_V4, node_addresses, 4),
        "::/0": _blocked(BLOCKED_V6, node_addresses, 6),
    }


def user_egress_rules(node_addresses: list[str], allowed_cidrs: list[str]) -> list[dict[str, Any]]:
    """singleuser.networkPolicy.egress: the internet without the blocked addresses, then the admin's own
    allowed CIDRs (network.userEgressCidrs; rules add up, so these open what the first one leaves out)."""
    internet = [
        {"ipBlock": {"cidr": cidr, "except": blocked}} for cidr, blocked in blocked_addresses(node_addresses).items()
    ]
    return [{"to": internet}] + [{"to": [{"ipBlock": {"cidr": c}}]} for c in sorted(allowed_cidrs)]
