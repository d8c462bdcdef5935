"""Node data in the spawn form, rendered by KubeSpawner 7.0.0's own form template (no autoescaping there).

An offline nodes.file is checked by no API server, so a node name or a GPU product label can carry markup.
The form must never show it raw (issue 25, point 7).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from components.core.config_load import parse_config
from components.core.nodes import Inventory, parse_nodes
from components.core.values import build_values
from components.inventory import InventoryError, from_file
from tests.conftest import BASE_CONFIG, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS, node, node_list
from tests.spawner import make_spawner
from tests.test_live_profiles import hub_namespace, spawner_for

RAW_MARKUP = re.compile(r"<(svg|img)\b", re.IGNORECASE)


def _values(inventory: Inventory, **patch: Any) -> dict[str, Any]:
    cfg = parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}, **patch})
    return build_values(cfg, inventory, GIVEN_REFS)


def form_html(values: dict[str, Any]) -> str:
    """The deploy-time form, as the configured hub's KubeSpawner renders it."""

    async def go() -> str:
        spawner = make_spawner(values)
        return str(spawner._render_options_form(spawner.profile_list))

    return asyncio.run(go())


def test_hostile_node_data_never_reaches_the_form_raw() -> None:
    """tests/fixtures/nodes/markup.json: a node named gpu-<svg ...> and an <img ...> product label."""
    inventory = parse_nodes(SCENARIOS["markup"])
    page = form_html(_values(inventory))
    assert not RAW_MARKUP.search(page), RAW_MARKUP.search(page)
    assert "gpu-good" in page, "the good node is still offered"
    skipped = {s.name: s.reason for s in inventory.skipped}
    assert skipped["gpu-img"] == (
        "unreadable node data: label 'nvidia.com/gpu.product'='<img src=x onerror=alert(1)>': a label value must be "
        "empty or at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or "
        "digit"
    )
    assert skipped["gpu-<svg onload=alert(1)>"] == (
        "unreadable node data: metadata.name 'gpu-<svg onload=alert(1)>': a node name must be a DNS-1123 subdomain: "
        "at most 253 characters, lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
    )


def _with_product(inventory: Inventory, product: str) -> Inventory:
    """Markup past the parser (as if a future source skipped its checks): every GPU node's product."""
    nodes = tuple(
        n.model_copy(update={"gpu": n.gpu.model_copy(update={"product": product})}) if n.gpu else n
        for n in inventory.nodes
    )
    return inventory.model_copy(update={"nodes": nodes})


def test_markup_that_gets_past_the_parser_is_escaped_in_every_text() -> None:
    hostile = '<img src=x onerror="alert(1)">'
    inventory = _with_product(parse_nodes(SCENARIOS["mixed"]), hostile)
    page = form_html(_values(inventory, storage={"sharedCode": {"hostPath": "/srv/code"}}))
    assert not RAW_MARKUP.search(page)
    assert "NVIDIA GeForce" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


def test_a_class_too_large_to_list_escapes_its_name_field_texts() -> None:
    """Beyond 50 nodes a class offers a name field whose label and message name the product."""
    doc = node_list(*(node(f"gpu-{i:03d}", gpus=1) for i in range(51)))
    inventory = _with_product(parse_nodes(doc), "<svg onload=alert(1)>")
    page = form_html(_values(inventory))
    assert not RAW_MARKUP.search(page)
    assert "A node by name..." in page and "&lt;svg onload=alert(1)&gt;" in page


def test_live_availability_adds_no_node_text_to_the_form() -> None:
    """The hub-side refresh (hub.extraConfig) rewrites display names with free/total counts at spawn time; with
    hostile names and labels in the live node list, the rendered form still shows no markup."""
    values = _values(parse_nodes(SCENARIOS["mixed"]))
    ns = hub_namespace(values)
    live = copy.deepcopy(SCENARIOS["mixed"]["items"]) + copy.deepcopy(SCENARIOS["markup"]["items"])
    for item in live:
        item["metadata"]["labels"]["nvidia.com/gpu.family"] = "<img src=x onerror=alert(1)>"

    async def fetch() -> tuple[list[Any], list[Any]]:
        return live, []

    async def go() -> str:
        spawner = spawner_for(values)
        spawner.profile_list = ns["make_profile_list"](values["singleuser"]["profileList"], fetch=fetch)
        return str(await spawner._render_options_form_dynamically(spawner))

    page = asyncio.run(go())
    assert not RAW_MARKUP.search(page)
    assert re.search(r"gpu-node-2: [^<]* - \d+/\d+ free", page), "the refresh did run"


def test_nodes_file_with_a_name_the_api_server_refuses_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nodes.json"
    path.write_text(json.dumps(SCENARIOS["markup"]))
    with pytest.raises(InventoryError) as e:
        from_file(path, tmp_path)
    assert str(e.value) == (
        f"gpu-jupyterhub:nodes.file: {path}: node 'gpu-<svg onload=alert(1)>' is refused: a node name must be a "
        "DNS-1123 subdomain: at most 253 characters, lower-case letters, digits, '-' and '.', starting and ending "
        "with a letter or digit"
    )
    long_name = "a" * 254
    path.write_text(json.dumps(node_list(node(long_name))))
    with pytest.raises(InventoryError, match=r"node 'a{36}\.\.\. is refused: a node name must be a DNS-1123"):
        from_file(path, tmp_path)
    for good in ("a" * 253, "gpu-1.lab.example", "0"):
        doc = node_list(node(good))
        del doc["items"][0]["metadata"]["labels"]["kubernetes.io/hostname"]  # a label value: at most 63
        path.write_text(json.dumps(doc))
        assert [n.name for n in from_file(path, tmp_path).nodes] == [good]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("", True),
        ("NVIDIA-GeForce-RTX-4090", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("-a", False),
        ("a_", False),
        ("a b", False),
        ("a\n", False),
        ("x.y_z-1", True),
    ],
)
def test_label_values_follow_the_api_servers_rule(value: str, ok: bool) -> None:
    doc = node_list(node("gpu-1", gpus=1, product="NVIDIA-L4"))
    doc["items"][0]["metadata"]["labels"]["example.com/x"] = value
    inventory = parse_nodes(doc)
    assert ([n.name for n in inventory.nodes] == ["gpu-1"]) == ok
