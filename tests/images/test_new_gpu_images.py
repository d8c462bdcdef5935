"""jupyter-jax and jupyter-rapids: on the GPU images' conventions, optional per stack, offered and
pre-pulled only where their CUDA runs, and what every image promises (components.core.image_imports)."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from components.core import image_imports
from components.core.config import ConfigError
from components.core.config_load import parse_config
from components.core.image_specs import (
    CUDA12,
    CUDA13,
    IMAGE_SPECS,
    MIN_DRIVER_MAJOR,
    gpu_images,
    image_specs,
    images_for,
    parents,
)
from components.core.nodes import parse_nodes
from components.core.prepull_spec import prepull_daemonsets
from components.core.profiles import build_profiles
from components.core.values import build_values
from tests.conftest import BASE_CONFIG, GIVEN_REFS, nodes_json
from tests.images.docker_env import IMAGES

NEW = ("jupyter-jax", "jupyter-rapids")


def _pin(lock: str, name: str) -> str:
    m = re.search(rf"^{name}==(\S+)", lock, re.M)
    assert m, f"no {name} pin"
    return m.group(1)


@pytest.mark.parametrize("variant", [CUDA13, CUDA12], ids=lambda v: v.key)
@pytest.mark.parametrize("folder", ["jupyter-ml-gpu", *NEW])
def test_each_gpu_lock_carries_the_cuda_its_variant_declares(folder: str, variant) -> None:
    """The driver gate (MIN_DRIVER_MAJOR) is only right while every root GPU lock's CUDA runtime is the
    variant's CUDA major: jax and rapids pull their own nvidia-* wheels, not torch's."""
    lock = (IMAGES / folder / f"requirements{variant.suffix}.txt").read_text()
    runtime = _pin(lock, r"nvidia-cuda-runtime(?:-cu[0-9]+)?")
    assert int(runtime.split(".")[0]) == variant.cuda_major, f"{folder}: CUDA runtime {runtime}"
    assert variant.min_driver_major == MIN_DRIVER_MAJOR[variant.cuda_major]


@pytest.mark.parametrize("folder", NEW)
def test_cuda12_variant_lists_the_same_packages_but_the_cuda_build(folder: str) -> None:
    def packages(path: Path) -> list[str]:
        lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
        return sorted(re.sub(r"cuda1[23]|cu1[23]", "cuXX", ln) for ln in lines if ln and not ln.startswith("-"))

    assert packages(IMAGES / folder / "requirements-cu12.in") == packages(IMAGES / folder / "requirements.in")
    assert "cu13" not in (IMAGES / folder / "requirements-cu12.txt").read_text().replace("cu130", "")


def test_new_images_are_gpu_roots_that_nothing_builds_from() -> None:
    specs = {s.name: s for s in IMAGE_SPECS}
    for name in NEW:
        assert specs[name].base is None and specs[name].gpu_required and specs[name].cuda == CUDA13
    assert not set(NEW) & parents(IMAGE_SPECS), "a child would need their stack stage pushed"
    assert {s.name for s in image_specs(cuda12=True)} >= {f"{n}-cu12" for n in NEW}


def test_only_optional_images_can_be_left_out() -> None:
    assert [s.name for s in image_specs(False, ["jupyter-jax"])] == [
        s.name for s in IMAGE_SPECS if s.name != "jupyter-jax"
    ]
    kept = {s.name for s in image_specs(True, NEW)}
    assert not {n for n in kept if n.startswith(NEW)}, "their CUDA 12 variants go too"
    with pytest.raises(ValueError, match=r"only optional images can be left out .*'jupyter-ml-gpu'"):
        image_specs(False, ["jupyter-ml-gpu"])


def _config(**images: object):
    raw = copy.deepcopy(BASE_CONFIG)
    raw["images"] = {"build": False, "refs": dict(GIVEN_REFS), **images}
    return parse_config(raw)


def test_gpu_pickers_offer_them_and_cpu_pickers_do_not() -> None:
    cfg = _config()
    plan = build_profiles(cfg, parse_nodes(nodes_json("mixed")), GIVEN_REFS)
    gpu_pickers = [p for p in plan.profiles if "image" in p.get("profile_options", {}) and p["slug"] != "cpu"]
    assert gpu_pickers, "no GPU profile with an image picker"
    for profile in gpu_pickers:
        choices = profile["profile_options"]["image"]["choices"]
        if profile["slug"] == "fine-tuning":
            assert not set(NEW) & set(choices)
            continue
        assert list(choices)[:4] == ["jupyter-ml-gpu", "jupyter-fine-tuning", *NEW], profile["slug"]
        for name in NEW:
            assert choices[name]["kubespawner_override"]["image"] == GIVEN_REFS[name]
    cpu = next(p for p in plan.profiles if p["slug"] == "cpu")
    assert not set(NEW) & set(cpu["profile_options"]["image"]["choices"])


def test_turned_off_they_are_nowhere_in_the_values_and_not_required() -> None:
    refs = {n: r for n, r in GIVEN_REFS.items() if n not in NEW}
    cfg = _config(jax=False, rapids=False, refs=refs)
    default_off = ("jupyter-rust",)  # images.rust is off by default
    assert [s.name for s in cfg.images.specs()] == [s.name for s in IMAGE_SPECS if s.name not in (*NEW, *default_off)]
    values = build_values(cfg, parse_nodes(nodes_json("mixed")), refs)
    text = repr(values)
    assert "jupyter-jax" not in text and "jupyter-rapids" not in text
    assert "jupyter-ml-gpu" in text
    # on, they must be given (or built): the error names what is missing
    with pytest.raises(ConfigError, match=re.escape("images.refs needs ['jupyter-jax', 'jupyter-rapids']")):
        _config(refs=refs)
    with pytest.raises(ConfigError, match=r"images\.jax"):
        _config(jax="sometimes")


def test_prepulled_on_gpu_nodes_only() -> None:
    manifests = prepull_daemonsets(GIVEN_REFS, gpu_images(), "jhub", "harbor-pull", [], None)
    for ds in manifests:
        pulled = {c["image"] for c in ds["spec"]["template"]["spec"]["initContainers"]}
        on_gpu = ds["metadata"]["name"].endswith("-gpu")
        for name in NEW:
            assert (GIVEN_REFS[name] in pulled) == on_gpu, ds["metadata"]["name"]


def test_images_for_keeps_spec_order_and_variant() -> None:
    names = list(GIVEN_REFS) + [f"{n}-cu12" for n in GIVEN_REFS]
    assert images_for(CUDA13, names) == ["jupyter-ml-gpu", "jupyter-fine-tuning", *NEW]
    assert images_for(CUDA12, names) == ["jupyter-ml-gpu-cu12", "jupyter-fine-tuning-cu12"] + [f"{n}-cu12" for n in NEW]
    assert images_for(CUDA13, ["jupyter-rapids", "jupyter-ml-cpu"]) == ["jupyter-rapids"]


# ---- what each image promises ----


def test_promised_modules_follow_the_from_chain() -> None:
    specs = {s.name: s for s in IMAGE_SPECS}
    agent = image_imports.promised(specs["jupyter-agent-dev"])
    assert agent[: len(image_imports.COMMON)] == image_imports.COMMON
    assert set(image_imports.IMPORTS["jupyter-ml-cpu"]) <= set(agent) and "crewai" in agent
    assert len(agent) == len(set(agent))
    assert "torch" in image_imports.promised(specs["jupyter-fine-tuning"])
    assert "torch" not in image_imports.promised(specs["jupyter-jax"])
    assert set(image_imports.IMPORTS) == {s.dockerfile_dir for s in image_specs(cuda12=True)}


def test_every_promise_of_the_issue_is_listed() -> None:
    """The packages the images were promised (images/README.md says where one is replaced and why)."""
    expected = {
        "jupyter-ml-cpu": {"fastembed", "boto3", "litellm", "dotenv", "requests"},
        "jupyter-ml-gpu": {"sentence_transformers", "sentencepiece", "mlflow", "tensorboard", "wandb", "litellm"},
        "jupyter-fine-tuning": {"einops", "xformers"},
        "jupyter-agent-dev": {
            "crewai",
            "autogen_agentchat",
            "chromadb",
            "semantic_router",
            "mediawiki",
            "arxiv",
            "langserve",
        },
    }
    for folder, modules in expected.items():
        assert modules <= set(image_imports.IMPORTS[folder]), folder
    assert {"jupyter_lsp", "pylsp"} <= set(image_imports.COMMON)


def test_readme_table_is_current() -> None:
    readme = (IMAGES / "README.md").read_text()
    assert image_imports.with_table(readme) == readme, "run: python -m components.core.image_imports --write"
    with pytest.raises(ValueError, match="markers"):
        image_imports.with_table("no markers here")


def test_smoke_script_reports_each_failure(tmp_path: Path) -> None:
    """The in-image script must fail, naming the module, when one is missing (run here, on this Python)."""

    ok = subprocess.run(
        [sys.executable, "-c", image_imports.smoke_script(("json", "re"))], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0 and "ok json imported" in ok.stdout, ok.stdout + ok.stderr
    bad = subprocess.run(
        [sys.executable, "-c", image_imports.smoke_script(("json", "no_such_module_x"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "FAIL no_such_module_x: ModuleNotFoundError" in bad.stdout
    assert "failed: no_such_module_x" in bad.stdout
    # a module that is installed but fails on import (e.g. a native library missing) is a failure too
    (tmp_path / "crashy.py").write_text("raise RuntimeError('CUDA driver not found')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    other = subprocess.run(
        [sys.executable, "-c", image_imports.smoke_script(("crashy", "json"))],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert other.returncode == 1 and "FAIL crashy: RuntimeError: CUDA driver not found" in other.stdout
    assert "ok json imported" in other.stdout, "one failure does not stop the others"
