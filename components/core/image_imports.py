"""What each Jupyter image promises its users, as the Python modules it must import.

One list per Dockerfile folder, in one place: the smoke test imports every module inside the built
image (``--network none``), ``images/README.md`` shows the same lists (``--write`` renders them),
and a derived image promises its base's modules too. Every module is imported, on a machine
without a GPU: all of them import there (cuDF and cuML load without a device, Unsloth falls back to
CPU with a notice), checked in the built images.

    python -m components.core.image_imports --write    # update the table in images/README.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from components.core.image_specs import IMAGE_SPECS, ImageSpec, specs_by_name

# Every image: the Jupyter layer (images/common).
COMMON: tuple[str, ...] = (
    "jupyterlab",
    "jupyterhub",
    "ipykernel",
    "ipywidgets",
    "jupyterlab_git",
    "jupyter_lsp",  # the language-server proxy of jupyterlab-lsp
    "pylsp",  # python-lsp-server
)

# Per Dockerfile folder, what that image adds (its base's modules are promised too).
IMPORTS: dict[str, tuple[str, ...]] = {
    "jupyter-ml-cpu": (
        "numpy",
        "pandas",
        "pyarrow",
        "scipy",
        "sklearn",
        "matplotlib",
        "seaborn",
        "plotly",
        "transformers",
        "datasets",
        "mlflow",
        "fastembed",
        "boto3",
        "litellm",
        "dotenv",
        "requests",
    ),
    "jupyter-agent-dev": (
        "langchain",
        "langchain_community",
        "langchain_openai",
        "langgraph",
        "faiss",
        "qdrant_client",
        "ddgs",
        "tavily",
        "crewai",
        "autogen_agentchat",
        "autogen_ext.models.openai",
        "chromadb",
        "semantic_router",
        "mediawiki",
        "arxiv",
        "langserve",
    ),
    "jupyter-ml-gpu": (
        "torch",
        "torchvision",
        "accelerate",
        "bitsandbytes",
        "transformers",
        "datasets",
        "sentence_transformers",
        "sentencepiece",
        "numpy",
        "pandas",
        "sklearn",
        "matplotlib",
        "mlflow",
        "tensorboard",
        "wandb",
        "litellm",
        "boto3",
        "dotenv",
        "requests",
        "pynvml",
        "nvitop",
        "jupyterlab_nvdashboard",
    ),
    "jupyter-fine-tuning": ("unsloth", "trl", "peft", "xformers", "einops"),
    "jupyter-jax": (
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "orbax.checkpoint",
        "chex",
        "numpy",
        "pandas",
        "sklearn",
        "matplotlib",
        "pynvml",
        "nvitop",
        "jupyterlab_nvdashboard",
    ),
    "jupyter-rapids": (
        "cudf",
        "cuml",
        "cupy",
        "pandas",
        "sklearn",
        "matplotlib",
        "pynvml",
        "nvitop",
        "jupyterlab_nvdashboard",
    ),
    # the Jupyter layer only: what it adds is the Rust kernel, which tests/images/test_rust_image.py runs
    "jupyter-rust": (),
}


def promised(spec: ImageSpec, specs: tuple[ImageSpec, ...] = IMAGE_SPECS) -> tuple[str, ...]:
    """Every module ``spec``'s image must import: the Jupyter layer, its bases' modules, its own (no repeats)."""
    by_name = specs_by_name(specs)
    chain: list[ImageSpec] = []
    current: ImageSpec | None = spec
    while current is not None:
        chain.append(current)
        current = by_name.get(current.base) if current.base else None
    out: list[str] = list(COMMON)
    for link in reversed(chain):
        out.extend(m for m in IMPORTS[link.dockerfile_dir] if m not in out)
    return tuple(out)


def smoke_script(modules: tuple[str, ...]) -> str:
    """Python run inside the image: import each module; print one line per module; exit 1 naming every
    failure."""
    return f"""
import importlib, sys, time
failed = []
for name in {list(modules)!r}:
    start = time.monotonic()
    try:
        importlib.import_module(name)
        print(f"ok {{name}} imported {{time.monotonic() - start:.2f}}s", flush=True)
    except BaseException as exc:
        failed.append(name)
        print(f"FAIL {{name}}: {{type(exc).__name__}}: {{str(exc)[:300]}}", flush=True)
if failed:
    print("failed: " + ", ".join(failed), flush=True)
    sys.exit(1)
"""


def readme_table(specs: tuple[ImageSpec, ...] = IMAGE_SPECS) -> str:
    """The Markdown table of promised modules that images/README.md carries."""
    lines = [
        "| image | adds (imported by the smoke test; its base's modules are checked too) |",
        "| --- | --- |",
        f"| every image (`images/common`) | {', '.join(f'`{m}`' for m in COMMON)} |",
    ]
    for spec in specs:
        own = [f"`{m}`" for m in IMPORTS[spec.dockerfile_dir]]
        base = f" (on `{spec.base}`)" if spec.base else ""
        lines.append(f"| `{spec.name}`{base} | {', '.join(own) or 'no Python modules beyond the Jupyter layer'} |")
    return "\n".join(lines) + "\n"


BEGIN = "<!-- image-imports: generated by python -m components.core.image_imports --write -->\n"
END = "<!-- /image-imports -->\n"


def with_table(readme: str, specs: tuple[ImageSpec, ...] = IMAGE_SPECS) -> str:
    """``readme`` with the text between the markers replaced by the current table."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise ValueError("images/README.md has no image-imports markers")
    return pattern.sub(lambda _: BEGIN + readme_table(specs) + END, readme)


def main(argv: list[str]) -> int:
    readme = Path(__file__).resolve().parents[2] / "images" / "README.md"
    if argv != ["--write"]:
        sys.stdout.write(readme_table())
        return 0
    readme.write_text(with_table(readme.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
