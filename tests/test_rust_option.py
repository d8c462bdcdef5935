"""images.rust: off by default; on, jupyter-rust is built (on the trixie base), offered in the CPU profile's image
picker after the other CPU images, pre-pulled with them, and required in images.refs when not built."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from components.core.config import ConfigError
from components.core.config_load import parse_config
from components.core.image_specs import specs_by_name
from components.core.nodes import parse_nodes
from components.core.prepull_spec import prepull_daemonsets
from components.core.values import build_values
from tests.conftest import BASE_CONFIG, GIVEN_REFS, RUST_REF, nodes_json

WITH_RUST = {**GIVEN_REFS, "jupyter-rust": RUST_REF}


def config(rust: Any = None, refs: dict[str, str] | None = None) -> Any:
    raw = copy.deepcopy(BASE_CONFIG)
    raw["images"] = {"build": False, "refs": refs if refs is not None else WITH_RUST}
    if rust is not None:
        raw["images"]["rust"] = rust
    return parse_config(raw)


def cpu_picker(cfg: Any, refs: dict[str, str]) -> list[str]:
    values = build_values(cfg, parse_nodes(nodes_json("mixed")), refs)
    cpu = next(p for p in values["singleuser"]["profileList"] if p["slug"] == "cpu")
    return list(cpu["profile_options"]["image"]["choices"])


def test_off_by_default_and_nowhere_in_the_values() -> None:
    cfg = config(refs=GIVEN_REFS)
    assert "jupyter-rust" not in [s.name for s in cfg.images.specs()]
    assert cpu_picker(cfg, GIVEN_REFS) == ["jupyter-ml-cpu", "jupyter-agent-dev"]
    assert "jupyter-rust" not in repr(build_values(cfg, parse_nodes(nodes_json("mixed")), GIVEN_REFS))


def test_on_it_is_offered_with_the_cpu_images_and_pre_pulled_with_them() -> None:
    cfg = config(rust=True)
    assert cpu_picker(cfg, WITH_RUST) == ["jupyter-ml-cpu", "jupyter-agent-dev", "jupyter-rust"]
    refs = {s.name: WITH_RUST[s.name] for s in cfg.images.specs()}
    gpu = {n: s.cuda for n, s in specs_by_name(cfg.images.specs()).items() if s.gpu_required and s.cuda}
    daemonsets = prepull_daemonsets(refs, gpu, "jhub", None, [], None)
    [cpu] = [d for d in daemonsets if not d["metadata"]["name"].endswith("gpu")]
    assert RUST_REF in {c["image"] for c in cpu["spec"]["template"]["spec"]["initContainers"]}
    assert specs_by_name()["jupyter-rust"].debian == "trixie" and not specs_by_name()["jupyter-rust"].gpu_required


def test_on_without_a_ref_or_with_a_bad_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=re.escape("images.refs needs ['jupyter-rust']")):
        config(rust=True, refs=GIVEN_REFS)
    with pytest.raises(ConfigError, match=r"images\.rust"):
        config(rust="yes please")
