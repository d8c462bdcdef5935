"""The spawn form's options that more than one profile offers: the image picker (with the free-form image
rule), the GPU request, the node picker of a GPU class and the shared-code switch.

KubeSpawner merges a choice's ``kubespawner_override`` into the profile's; ``None`` in a dict override removes
that entry (components.core.profiles makes every profile reset what any choice sets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from components.core.config_storage import SharedCodeConfig
from components.core.image_rule import form_regex
from components.core.image_specs import CUDA13, CudaVariant
from components.core.node_table import describe_node
from components.core.nodes import NodeInfo

HOSTNAME_LABEL = "kubernetes.io/hostname"
ANY_NODE = "*"  # the node option's "any node" key: never a valid node name, so it cannot collide with one
NODE_CHOICES_MAX = 50  # nodes listed by name in a class's node option; larger classes get a name field
# z2jh's scheduling.userPods.tolerations defaults; a profile that sets tolerations replaces the list.
USER_POD_TOLERATIONS: tuple[dict[str, str], ...] = (
    {"effect": "NoSchedule", "key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user"},
    {"effect": "NoSchedule", "key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user"},
)
CONTROL_PLANE_TOLERATIONS: tuple[dict[str, str], ...] = (
    {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
    {"effect": "NoSchedule", "key": "node-role.kubernetes.io/master", "operator": "Exists"},
)


@dataclass(frozen=True)
class ImagePicker:
    """The image option of any profile: listed images by reference, or another image of our project."""

    registry: str
    project: str
    refs: dict[str, str]

    def option(
        self,
        names: list[str],
        affinities: dict[str, list[dict[str, Any]]] | None = None,
        titles: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The picker; ``affinities`` gives an image choice the node terms its CUDA variant needs."""
        choices: dict[str, Any] = {}
        for index, name in enumerate(names):
            override: dict[str, Any] = {"image": self.refs[name]}
            if affinities and name in affinities:
                override["node_affinity_required"] = affinities[name]
            choices[name] = {
                "display_name": (titles or {}).get(name, name),
                "default": index == 0,
                "kubespawner_override": override,
            }
        return {"display_name": "Image", "choices": choices, "unlisted_choice": self._other_image()}

    def _other_image(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "display_name": f"Other image from {self.registry}",
            "display_name_in_choices": f"Other image from {self.registry}...",
            "validation_regex": form_regex(self.registry, self.project),
            "validation_message": f"Only images from {self.registry}/{self.project}/<name> with a tag or digest",
            "kubespawner_override": {"image": "{value}"},
        }


def gpu_request(resource: str | None, count: int) -> dict[str, Any]:
    req = {resource: str(count)} if resource else {}
    return {"extra_resource_limits": dict(req), "extra_resource_guarantees": dict(req)}


def variant_title(name: str, variant: CudaVariant) -> str:
    """The default variant's images keep their plain names; others say which drivers they are for."""
    if variant == CUDA13:
        return name
    return f"{name} ({variant.title}, for drivers {variant.min_driver_major}-{CUDA13.min_driver_major - 1})"


def names_regex(names: list[str]) -> str:
    """A regex that accepts exactly these names (no trailing newline either: ``re.match`` with ``$``
    would take one). Node names are DNS subdomains; "." goes in a class so that the pattern is also
    valid in the browser's form check (which rejects needless escapes)."""
    alternatives = [n.replace(".", "[.]") if re.fullmatch(r"[a-z0-9.-]+", n) else re.escape(n) for n in sorted(names)]
    return "^(?:" + "|".join(alternatives) + r")(?![\s\S])"


def node_option(nodes: list[NodeInfo], product: str) -> dict[str, Any]:
    """ "Any node" plus each node by name: a list up to NODE_CHOICES_MAX nodes, beyond that a name field
    checked against the class's nodes (a list of thousands helps nobody, and would push the values
    past what the chart can store)."""
    choices: dict[str, Any] = {
        ANY_NODE: {
            "display_name": f"Any of {len(nodes)} node(s)",
            "default": True,
            "kubespawner_override": {"node_selector": {HOSTNAME_LABEL: None}},
        }
    }
    option: dict[str, Any] = {"display_name": "Node", "choices": choices}
    if len(nodes) <= NODE_CHOICES_MAX:
        for node in nodes:
            choices[node.name] = {
                "display_name": describe_node(node),
                "kubespawner_override": {"node_selector": {HOSTNAME_LABEL: node.name}},
            }
        return option
    names = sorted(n.name for n in nodes)
    option["unlisted_choice"] = {
        "enabled": True,
        "display_name": f"Node name (one of the {len(nodes)} {product} nodes)",
        "display_name_in_choices": "A node by name...",
        "validation_regex": names_regex(names),
        "validation_message": f"The name of one of the {len(nodes)} {product} nodes, such as {names[0]}",
        "kubespawner_override": {"node_selector": {HOSTNAME_LABEL: "{value}"}},
    }
    return option


def shared_code_option(
    shared: SharedCodeConfig, host: str, volume: dict[str, Any], mount: dict[str, Any]
) -> dict[str, Any]:
    """Offer the control-plane host path only on the node that has it (never an empty dir elsewhere)."""
    return {
        "display_name": "Shared code",
        "choices": {
            "off": {
                "display_name": "Without shared code (any node)",
                "default": True,
                "kubespawner_override": {
                    "volumes": {"shared-code": None},
                    "volume_mounts": {"shared-code": None},
                },
            },
            "on": {
                "display_name": f"With {shared.hostPath} read-only (runs on {host})",  # escaped later
                "kubespawner_override": {
                    "volumes": {"shared-code": volume},
                    "volume_mounts": {"shared-code": mount},
                    "node_selector": {HOSTNAME_LABEL: host},
                    "tolerations": [dict(t) for t in USER_POD_TOLERATIONS + CONTROL_PLANE_TOLERATIONS],
                },
            },
        },
    }
