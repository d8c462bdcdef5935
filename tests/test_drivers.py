"""GPU servers only where the node's NVIDIA driver runs the images' CUDA (and the CUDA 12 variant).

The minimum drivers come from the locks; the profiles, the pods KubeSpawner builds from them and the
pre-pull DaemonSets are checked with the scheduler model of tests/scheduling.py against node lists
with mixed drivers: no GPU pod may fit a node whose driver is too old for its image.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.core.config import ConfigError
from components.core.config_load import parse_config
from components.core.image_specs import (
    CUDA12,
    CUDA13,
    DRIVER_MAJOR_LABELS,
    IMAGE_SPECS,
    MIN_DRIVER_MAJOR,
    cuda_variants,
    driver_terms,
    gpu_images,
    image_specs,
    variant_for_driver,
    with_platform,
)
from components.core.nodes import parse_nodes
from components.core.prepull_spec import prepull_daemonsets
from components.core.profile_options import ANY_NODE
from components.core.profiles import build_profiles
from components.core.values import build_values
from tests.conftest import BASE_CONFIG, DIGEST
from tests.fixtures.nodefactory import SCENARIOS, node, node_list
from tests.scheduling import nodes_for, terms_match
from tests.spawner import pods

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
REFS = {s.name: f"harbor.lab.example/jupyter/{s.name}@{DIGEST}" for s in image_specs(cuda12=True)}
VARIANT_OF_REF = {REFS[name]: variant for name, variant in gpu_images(image_specs(cuda12=True)).items()}
DRIVERS = SCENARIOS["drivers"]


def _cuda_layer_module() -> Any:
    spec = importlib.util.spec_from_file_location("cuda_layer", IMAGES / "cuda_layer.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pin(lock: str, pattern: str) -> str:
    m = re.search(rf"^({pattern})==(\S+)", lock, re.M)
    assert m, f"{pattern} not pinned"
    return m.group(2)


def config(cuda12: bool) -> Any:
    return parse_config({**BASE_CONFIG, "images": {"build": False, "refs": REFS, "cuda12": cuda12}})


def driver_of(node_doc: dict[str, Any]) -> int | None:
    labels = node_doc["metadata"]["labels"]
    for key in DRIVER_MAJOR_LABELS:
        if key in labels:
            return int(labels[key])
    return None


# ---- the minimum drivers are what the locks need ----


@pytest.mark.parametrize("variant", [CUDA13, CUDA12], ids=lambda v: v.key)
def test_min_driver_follows_the_locked_torch_cuda(variant: Any) -> None:
    lock = (IMAGES / "jupyter-ml-gpu" / f"requirements{variant.suffix}.txt").read_text()
    runtime = _pin(lock, r"nvidia-cuda-runtime(?:-cu[0-9]+)?")
    assert int(runtime.split(".")[0]) == variant.cuda_major, f"the lock's CUDA runtime is {runtime}"
    assert variant.min_driver_major == MIN_DRIVER_MAJOR[variant.cuda_major]
    torch = _pin(lock, "torch")
    assert torch.startswith("2."), torch
    # the derived image's lock sits on the same torch
    tuning = (IMAGES / "jupyter-fine-tuning" / f"requirements{variant.suffix}.txt").read_text()
    assert _pin(tuning, "torch") == torch


def test_variant_images_share_dockerfiles_and_list_the_same_packages() -> None:
    specs = {s.name: s for s in image_specs(cuda12=True)}
    assert specs["jupyter-ml-gpu-cu12"].dockerfile_dir == "jupyter-ml-gpu"
    assert specs["jupyter-fine-tuning-cu12"].base == "jupyter-ml-gpu-cu12"
    assert specs["jupyter-fine-tuning-cu12"].lock_suffix == "-cu12"
    assert {s.name for s in image_specs(cuda12=False)} == {s.name for s in IMAGE_SPECS}

    def packages(path: Path) -> list[str]:
        return sorted(ln.strip() for ln in path.read_text().splitlines() if ln.strip() and ln[0] not in "#-")

    folder = IMAGES / "jupyter-fine-tuning"
    assert packages(folder / "requirements-cu12.in") == packages(folder / "requirements.in")


@pytest.mark.parametrize("suffix", ["", "-cu12"])
def test_cuda_layer_is_cut_from_the_lock(suffix: str) -> None:
    cuda_layer = _cuda_layer_module()
    folder = IMAGES / "jupyter-ml-gpu"
    lock = (folder / f"requirements{suffix}.txt").read_text()
    layer = (folder / f"cuda-layer{suffix}.txt").read_text()
    assert layer == cuda_layer.cuda_layer(lock, f"requirements{suffix}.txt"), "run images/lock.sh jupyter-ml-gpu"
    names = set(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", layer, re.M))
    assert {"torch", "torchvision", "triton"} <= names
    assert any(n.startswith("nvidia-cu") for n in names)
    assert not names & {"transformers", "accelerate", "bitsandbytes", "nvidia-ml-py", "numpy"}
    # every entry keeps the lock's pin and hashes byte for byte
    for entry in re.split(r"\n(?=[A-Za-z0-9])", layer.split("\n", 1)[1].strip()):
        assert entry in lock


def test_cuda_layer_refuses_a_lock_without_torch() -> None:
    cuda_layer = _cuda_layer_module()
    with pytest.raises(ValueError, match="pins no torch"):
        cuda_layer.cuda_layer((IMAGES / "common" / "requirements.txt").read_text(), "common")


def test_gpu_dockerfile_installs_the_cuda_layer_first() -> None:
    text = (IMAGES / "jupyter-ml-gpu" / "Dockerfile").read_text()
    layer = text.index("cuda-layer${LOCK_SUFFIX}.txt")
    rest = text.index("requirements${LOCK_SUFFIX}.txt /tmp/req/jupyter-ml-gpu.txt")
    assert layer < rest
    assert "--no-deps" in text[layer:rest] and "pip check" in text[rest:]


# ---- which node gets which variant, and the affinity that says the same ----


def test_variant_for_driver() -> None:
    both = cuda_variants(cuda12=True)
    assert variant_for_driver(580, both) == CUDA13
    assert variant_for_driver(579, both) == CUDA12
    assert variant_for_driver(525, both) == CUDA12
    assert variant_for_driver(524, both) is None
    assert variant_for_driver(None, both) == CUDA13
    assert variant_for_driver(579, cuda_variants()) is None
    assert variant_for_driver(None, cuda_variants()) == CUDA13


@given(
    driver=st.one_of(st.none(), st.integers(300, 999)),
    label_sets=st.sampled_from([("current",), ("deprecated",), ("current", "deprecated")]),
    cuda12=st.booleans(),
)
def test_affinity_terms_select_exactly_the_nodes_a_variant_is_for(
    driver: int | None, label_sets: tuple[str, ...], cuda12: bool
) -> None:
    doc = node("n", gpus=1, driver=None if driver is None else f"{driver}.10.01", driver_labels=label_sets)
    variants = cuda_variants(cuda12)
    chosen = variant_for_driver(parse_nodes(node_list(doc)).nodes[0].gpu.driver_major, variants)  # type: ignore[union-attr]
    assert chosen == variant_for_driver(driver, variants)
    for variant in variants:
        assert terms_match(driver_terms(variant, variants), doc) == (variant == chosen), variant.key


def test_affinity_terms_fail_closed_on_a_non_numeric_label() -> None:
    doc = node("n", gpus=1, driver_labels=("current",))
    doc["metadata"]["labels"][DRIVER_MAJOR_LABELS[0]] = "r580"
    assert not any(terms_match(driver_terms(v, cuda_variants(True)), doc) for v in cuda_variants(True))
    inv = parse_nodes(node_list(doc))
    assert not inv.nodes and DRIVER_MAJOR_LABELS[0] in inv.skipped[0].reason


# ---- profiles, plan rows and the pods KubeSpawner makes ----


@pytest.mark.parametrize("cuda12", [False, True])
def test_plan_rows_name_the_driver_and_the_fix(cuda12: bool) -> None:
    plan = build_profiles(config(cuda12), parse_nodes(DRIVERS), REFS)
    rows = {r.name: r for r in plan.nodes}
    assert rows["gpu-580"].included and rows["gpu-580"].reason == "GPU choices (driver 580.95.05)"
    assert rows["gpu-old-gfd"].included and "590.44.01" in rows["gpu-old-gfd"].reason
    assert rows["gpu-nolabel"].included and rows["gpu-nolabel"].reason == "GPU choices (driver unknown)"
    assert any("driver unknown on gpu-nolabel" in n for n in plan.notes)
    assert not rows["gpu-470"].included and "driver 470.256.02" in rows["gpu-470"].reason
    assert "upgrade the driver" in rows["gpu-470"].reason
    for name, version in (("gpu-570", "570.124.06"), ("gpu-550", "550.127.05")):
        if cuda12:
            assert rows[name].included and rows[name].reason == f"GPU choices, CUDA 12 images (driver {version})"
        else:
            assert not rows[name].included
            assert rows[name].reason == (
                f"driver {version}, images need 580+: upgrade the driver or enable the CUDA 12 images "
                "(images.cuda12: true)"
            )
    expected = {"gpu-580", "gpu-old-gfd", "gpu-nolabel"} | ({"gpu-570", "gpu-550"} if cuda12 else set())
    assert set(plan.gpu_nodes) == expected


def _all_options(profile: dict[str, Any]) -> list[dict[str, Any]]:
    out = [{"profile": profile["slug"]}]
    for name, option in profile.get("profile_options", {}).items():
        for choice in option.get("choices", {}):
            out.append({"profile": profile["slug"], name: choice})
        if option.get("unlisted_choice", {}).get("enabled"):
            out.append(
                {
                    "profile": profile["slug"],
                    name: "unlisted_choice",
                    f"{name}--unlisted-choice": "harbor.lab.example/jupyter/custom:1",
                }
            )
    return out


@pytest.mark.parametrize("cuda12", [False, True])
def test_no_gpu_pod_fits_a_node_whose_driver_is_too_old(cuda12: bool) -> None:
    """Every profile and choice, as a KubeSpawner pod: where could the scheduler put it?"""
    values = build_values(config(cuda12), parse_nodes(DRIVERS), REFS)
    profiles = values["singleuser"]["profileList"]
    options = [o for p in profiles for o in _all_options(p)]
    variants = cuda_variants(cuda12)
    by_name = {n["metadata"]["name"]: n for n in DRIVERS["items"]}
    [default_pods] = [pods(values, [{"profile": p["slug"]} for p in profiles])]
    profile_image = {
        p["slug"]: pod["spec"]["containers"][0]["image"] for p, pod in zip(profiles, default_pods, strict=True)
    }
    seen_cu12 = False
    for opts, pod in zip(options, pods(values, options), strict=True):
        limits = pod["spec"]["containers"][0]["resources"].get("limits", {})
        if "nvidia.com/gpu" not in limits:
            continue
        fits = nodes_for(pod, DRIVERS["items"])
        assert fits, f"{opts}: fits no node"
        image = pod["spec"]["containers"][0]["image"]
        # a free-form image is the user's choice: it runs on the nodes its profile is for
        variant = VARIANT_OF_REF.get(image) or VARIANT_OF_REF[profile_image[opts["profile"]]]
        seen_cu12 |= variant == CUDA12
        for name in fits:
            assert variant_for_driver(driver_of(by_name[name]), variants) == variant, (
                f"{opts}: {image.split('/')[-1]} could land on {name}"
            )
        if opts.get("node") not in (None, ANY_NODE):
            assert fits == [opts["node"]]
    assert seen_cu12 == cuda12


def test_auto_select_offers_each_variant_with_its_own_nodes() -> None:
    plan = build_profiles(config(True), parse_nodes(DRIVERS), REFS)
    auto = next(p for p in plan.profiles if p["slug"] == "gpu")
    choices = auto["profile_options"]["image"]["choices"]
    gpu = ["jupyter-ml-gpu", "jupyter-fine-tuning", "jupyter-jax", "jupyter-rapids"]
    assert list(choices) == gpu + [f"{n}-cu12" for n in gpu]
    assert choices["jupyter-ml-gpu"]["default"]
    assert "CUDA 12, for drivers 525-579" in choices["jupyter-ml-gpu-cu12"]["display_name"]
    tuning = next(p for p in plan.profiles if p["slug"] == "fine-tuning")
    assert list(tuning["profile_options"]["image"]["choices"]) == ["jupyter-fine-tuning", "jupyter-fine-tuning-cu12"]
    # only old drivers: the CUDA 12 images are the default, and nothing asks for CUDA 13 nodes
    old_only = node_list(*(n for n in DRIVERS["items"] if n["metadata"]["name"] in ("gpu-570", "gpu-550")))
    plan = build_profiles(config(True), parse_nodes(old_only), REFS)
    auto = next(p for p in plan.profiles if p["slug"] == "gpu")
    assert list(auto["profile_options"]["image"]["choices"]) == [f"{n}-cu12" for n in gpu]
    assert auto["kubespawner_override"]["node_affinity_required"] == with_platform(
        driver_terms(CUDA12, cuda_variants(True))
    )
    tuning = next(p for p in plan.profiles if p["slug"] == "fine-tuning")
    assert tuning["kubespawner_override"]["image"] == REFS["jupyter-fine-tuning-cu12"]


def test_only_too_old_drivers_means_no_gpu_profiles() -> None:
    doc = node_list(node("old", gpus=2, driver="535.183.01"))
    plan = build_profiles(config(False), parse_nodes(doc), REFS)
    assert not plan.gpu_nodes and [p["slug"] for p in plan.profiles] == ["cpu", "agent-dev"]
    assert "enable the CUDA 12 images" in plan.nodes[0].reason
    plan = build_profiles(config(True), parse_nodes(doc), REFS)
    assert plan.gpu_nodes == ["old"]


# ---- pre-pull: each variant only where it runs ----


def test_prepull_puts_each_variant_on_its_nodes() -> None:
    specs = image_specs(cuda12=True)
    gpu_tol = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    manifests = prepull_daemonsets(REFS, gpu_images(specs), "jhub", None, gpu_tol, None)
    placed = {
        ds["metadata"]["labels"]["app.kubernetes.io/component"]: nodes_for(ds["spec"]["template"], DRIVERS["items"])
        for ds in manifests
    }
    assert placed == {
        "cpu": sorted(n["metadata"]["name"] for n in DRIVERS["items"]),
        "gpu": ["gpu-580", "gpu-nolabel", "gpu-old-gfd"],
        "gpu-cu12": ["gpu-550", "gpu-570"],
    }
    without = prepull_daemonsets(
        {n: REFS[n] for n in (s.name for s in IMAGE_SPECS)}, gpu_images(), "jhub", None, gpu_tol, None
    )
    assert [ds["metadata"]["name"] for ds in without] == ["image-prepuller-cpu", "image-prepuller-gpu"]


# ---- config ----


def test_prebuilt_cuda12_needs_the_variant_refs() -> None:
    raw = copy.deepcopy(BASE_CONFIG)
    raw["images"] = {"build": False, "cuda12": True, "refs": {s.name: REFS[s.name] for s in IMAGE_SPECS}}
    variants = ["jupyter-ml-gpu-cu12", "jupyter-fine-tuning-cu12", "jupyter-jax-cu12", "jupyter-rapids-cu12"]
    with pytest.raises(ConfigError, match=re.escape(f"images.refs needs {variants}")):
        parse_config(raw)
    # the optional images left out: their variants are not needed either
    raw["images"].update(jax=False, rapids=False)
    with pytest.raises(ConfigError, match=re.escape(f"images.refs needs {variants[:2]}")):
        parse_config(raw)
    raw["images"]["cuda12"] = False
    assert parse_config(raw).images.cuda12 is False


def test_fixture_has_the_drivers_it_claims() -> None:
    drivers = {n["metadata"]["name"]: driver_of(n) for n in DRIVERS["items"]}
    assert drivers == {
        "gpu-580": 580,
        "gpu-570": 570,
        "gpu-550": 550,
        "gpu-470": 470,
        "gpu-nolabel": None,
        "gpu-old-gfd": 590,
    }
    assert json.loads((ROOT / "tests/fixtures/nodes/drivers.json").read_text()) == DRIVERS
