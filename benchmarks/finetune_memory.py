"""How much GPU memory LoRA and QLoRA fine-tuning need, per model size and GPU class (docs/fine-tuning.md).

Parameter counts are exact: each architecture is built by transformers on the meta device (no weights, no
download) and the LoRA adapters are attached by peft with the quickstart notebook's settings (rank 16 on every
attention and MLP projection). Bytes per parameter follow the formats the fine-tuning image uses: bf16 weights
for LoRA; bitsandbytes NF4 (4 bits, plus 0.127 bits of double-quantized block scales) for QLoRA's linear
layers, embeddings and head kept in bf16; fp32 adapters, their gradients and AdamW's two moments (8-bit
moments for QLoRA, as the notebook's adamw_8bit). Activations assume gradient checkpointing (one layer input
kept per layer, one layer recomputed at a time) and the loss's fp32 logits. Prints figures, asserts nothing.

    python -m benchmarks.finetune_memory [--batch 2] [--seq 512,2048]
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

GIB = 1024**3
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_RANK = 16
# GPU classes: the memory a profile's GPU offers, and the share a run may plan to use (the rest: CUDA context,
# allocator fragmentation, evaluation and generation)
GPU_CLASSES = [("24 GB (RTX 4090, 3090)", 24), ("48 GB (L40S, A6000)", 48), ("80 GB (A100, H100)", 80)]
GPU_CLASSES += [("141 GB (H200)", 141)]
USABLE = 0.9
CONTEXT_GIB = 1.0  # CUDA context and libraries, per process
# (name, config) from the models' published config.json files
ARCHS = [
    ("SmolLM2-135M", LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                                 num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True)),
    ("Llama-3.2-1B", LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                                 num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True)),
    ("Llama-3.2-3B", LlamaConfig(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24,
                                 num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True)),
    ("Llama-3.1-8B", LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                 num_attention_heads=32, num_key_value_heads=8, vocab_size=128256)),
    ("Qwen2.5-14B", Qwen2Config(hidden_size=5120, intermediate_size=13824, num_hidden_layers=48, num_attention_heads=40,
                                num_key_value_heads=8, vocab_size=152064)),
    ("Qwen2.5-32B", Qwen2Config(hidden_size=5120, intermediate_size=27648, num_hidden_layers=64, num_attention_heads=40,
                                num_key_value_heads=8, vocab_size=152064)),
    ("Llama-3.1-70B", LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                                  num_attention_heads=64, num_key_value_heads=8, vocab_size=128256)),
]  # fmt: skip


@dataclass(frozen=True)
class Counts:
    total: int  # every parameter of the base model
    linear: int  # the decoder layers' linear weights (what QLoRA stores in 4 bits)
    lora: int  # the adapters' parameters (what is trained)
    hidden: int
    layers: int
    vocab: int


def counts(config: LlamaConfig | Qwen2Config) -> Counts:
    """Exact counts from the architecture as transformers builds it and the adapters as peft attaches them."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    linear = sum(
        m.weight.numel()
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in LORA_TARGETS
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # a deprecation between peft and transformers, not ours
        peft_model = get_peft_model(model, LoraConfig(r=LORA_RANK, lora_alpha=LORA_RANK, target_modules=LORA_TARGETS))
    lora = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    return Counts(total, linear, lora, config.hidden_size, config.num_hidden_layers, config.vocab_size)


def activations_gib(c: Counts, batch: int, seq: int) -> float:
    """Checkpointed layer inputs (bf16), one layer's working set while it is recomputed (~34 bytes per hidden
    value with fused attention), and the logits (bf16, their fp32 copy for the loss, its gradient)."""
    tokens = batch * seq
    return (tokens * c.hidden * (2 * c.layers + 34) + tokens * c.vocab * 10) / GIB


def lora_gib(c: Counts, batch: int, seq: int) -> float:
    weights = 2 * c.total
    adapters = 16 * c.lora  # fp32 weights and gradients, two fp32 AdamW moments
    return (weights + adapters) / GIB + activations_gib(c, batch, seq) + CONTEXT_GIB


def qlora_gib(c: Counts, batch: int, seq: int) -> float:
    weights = c.linear * (4 + 0.127) / 8 + 2 * (c.total - c.linear)  # NF4 linear layers, the rest bf16
    adapters = 10 * c.lora  # fp32 weights and gradients, two 8-bit AdamW moments
    return weights / GIB + adapters / GIB + activations_gib(c, batch, seq) + CONTEXT_GIB


def fits(gib: float) -> str:
    """The smallest GPU class the run fits in, at USABLE of its memory."""
    for name, size in GPU_CLASSES:
        if gib <= size * USABLE:
            return name.split(" (")[0]
    return "none (several GPUs)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", default="512,2048", help="sequence lengths, comma-separated")
    args = parser.parse_args(argv)
    seqs = [int(s) for s in args.seq.split(",")]
    print(f"LoRA and QLoRA, rank {LORA_RANK} on all projections, batch {args.batch}, gradient checkpointing; GiB")
    head = "| model | parameters | trained (LoRA) |"
    for seq in seqs:
        head += f" LoRA, {seq} tokens | QLoRA, {seq} tokens |"
    print(head)
    print("|" + "---|" * (3 + 2 * len(seqs)))
    for name, config in ARCHS:
        c = counts(config)
        row = f"| {name} | {c.total / 1e9:.2f} B | {c.lora / 1e6:.1f} M ({100 * c.lora / c.total:.2f} %) |"
        for seq in seqs:
            lo, q = lora_gib(c, args.batch, seq), qlora_gib(c, args.batch, seq)
            row += f" {lo:.1f}: {fits(lo)} | {q:.1f}: {fits(q)} |"
        print(row)
    print(f"smallest GPU class that fits, at {USABLE:.0%} of its memory: " + ", ".join(n for n, _ in GPU_CLASSES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
