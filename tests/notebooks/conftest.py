"""Fixtures for executing the example notebooks on CPU with inputs made here (nothing from model hubs)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbrun import KERNEL_NAME

SENTENCES = [
    "Give three tips for staying healthy.",
    "Eat vegetables, sleep well and exercise every day.",
    "Explain what a GPU is in one sentence.",
    "A GPU is a processor built for many parallel arithmetic operations.",
    "Translate hello into French.",
    "Bonjour means hello in French.",
    "What is the capital of France? The capital of France is Paris.",
    "Write a haiku about notebooks that persist across restarts.",
]


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernelspec for this very interpreter, under a name nothing else can shadow."""
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "test python",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return root


@pytest.fixture
def user_env(tmp_path: Path, kernel_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """Environment of a CPU user pod: notebooks and scratch dirs, no GPU, no hub access."""
    notebooks_dir = tmp_path / "home" / "notebooks"
    scratch_dir = tmp_path / "home" / "scratch"
    notebooks_dir.mkdir(parents=True)
    scratch_dir.mkdir(parents=True)
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    monkeypatch.setenv("GPU_JUPYTERHUB_NOTEBOOKS_DIR", str(notebooks_dir))
    monkeypatch.setenv("GPU_JUPYTERHUB_SCRATCH_DIR", str(scratch_dir))
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "void")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL", "GPU_JUPYTERHUB_AGENT_MODEL"):
        monkeypatch.delenv(var, raising=False)
    yield {"notebooks": notebooks_dir, "scratch": scratch_dir, "tmp": tmp_path}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer Llama and a BPE tokenizer trained here, saved like a hub model."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-llama")
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(SENTENCES * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.save_pretrained(out)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Alpaca-style rows (instruction/input/output) as JSON lines."""
    path = tmp_path_factory.mktemp("data") / "instructions.jsonl"
    rows = [
        {"instruction": SENTENCES[i], "input": "" if i % 4 else "briefly", "output": SENTENCES[i + 1]}
        for i in range(0, len(SENTENCES) - 1)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows * 2) + "\n")
    return path


@pytest.fixture
def hide_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Make packages absent in the notebook's kernel, like an image built without them.

    A ``sitecustomize`` on the kernel's PYTHONPATH puts ``None`` in ``sys.modules`` for each name, so
    ``import`` raises ImportError and ``importlib.util.find_spec`` returns None, as for a missing package.
    """

    def hide(*names: str) -> None:
        site_dir = tmp_path / "hidden-modules"
        site_dir.mkdir(exist_ok=True)
        lines = ["import sys", *(f"sys.modules[{name!r}] = None" for name in names)]
        (site_dir / "sitecustomize.py").write_text("\n".join(lines) + "\n")
        monkeypatch.setenv("PYTHONPATH", str(site_dir))

    return hide
