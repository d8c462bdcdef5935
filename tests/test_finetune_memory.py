"""The fine-tuning memory table (benchmarks/finetune_memory.py, docs/fine-tuning.md) counts what the libraries
build: totals equal the models' published parameter counts, and the adapters what peft attaches."""

from __future__ import annotations

from benchmarks.finetune_memory import ARCHS, counts, fits, lora_gib, qlora_gib

PUBLISHED = {"Llama-3.2-1B": 1_235_814_400, "Llama-3.1-8B": 8_030_261_248, "Llama-3.1-70B": 70_553_706_496}


def test_counts_are_the_published_ones_and_the_known_lora_size() -> None:
    by_name = dict(ARCHS)
    for name, total in PUBLISHED.items():
        assert counts(by_name[name]).total == total, name
    # rank 16 on the 7 projections of 32 layers, 16 * (in + out) each: q and o 4096 -> 4096, k and v 4096 -> 1024,
    # gate, up and down 4096 <-> 14336
    per_layer = 2 * (4096 + 4096) + 2 * (4096 + 1024) + 3 * (4096 + 14336)
    assert counts(by_name["Llama-3.1-8B"]).lora == 32 * 16 * per_layer == 41_943_040


def test_qlora_needs_less_than_lora_and_longer_sequences_more() -> None:
    c = counts(dict(ARCHS)["Llama-3.1-8B"])
    assert qlora_gib(c, 2, 512) < lora_gib(c, 2, 512) < lora_gib(c, 2, 2048)
    assert fits(qlora_gib(c, 2, 512)).startswith("24 GB") and fits(500.0) == "none (several GPUs)"
