"""Every example notebook runs end to end on CPU, on inputs made by the test, with no network."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from nbclient.exceptions import CellExecutionError
from nbrun import output_text, result_of, run_notebook


def test_gpu_check_runs_on_a_cpu_profile(user_env: dict[str, Path]) -> None:
    nb = run_notebook("gpu_check.ipynb", {"CPU_MATMUL_SIZE": 128, "ITERATIONS": 3}, user_env["tmp"])
    result = result_of(nb, "GPU_CHECK_RESULT")
    assert result["device"] == "cpu"
    assert result["gpu_name"] is None
    assert result["matmul_size"] == 128
    assert result["tflops"]["fp32"] > 0
    assert "CPU profile: no GPU is attached" in output_text(nb)


def test_storage_check_persists_a_marker_across_runs(user_env: dict[str, Path]) -> None:
    first = run_notebook("storage_check.ipynb", {"SAVE_SIZE_MB": 1}, user_env["tmp"])
    assert "No marker yet" in output_text(first)
    assert result_of(first, "STORAGE_CHECK_RESULT")["previous_marker"] is None
    marker = user_env["notebooks"] / ".storage-check" / "marker.json"
    first_marker = json.loads(marker.read_text())
    assert first_marker["host"] and first_marker["written_at"]

    second = run_notebook("storage_check.ipynb", {}, user_env["tmp"])
    result = result_of(second, "STORAGE_CHECK_RESULT")
    assert result["notebooks_dir"] == str(user_env["notebooks"])
    assert result["scratch_dir"] == str(user_env["scratch"])
    assert result["previous_marker"] == first_marker
    assert "Found a marker written by pod" in output_text(second)
    for place in ("notebooks", "scratch"):
        timing = result["timings"][place]
        assert timing["read_back_ok"] is True
        assert 0 < timing["save_s"] < 2
    # the timed files are cleaned up; only the marker stays
    assert sorted(p.name for p in (user_env["notebooks"] / ".storage-check").iterdir()) == ["marker.json"]


def test_agent_runs_its_tool_with_the_offline_model(user_env: dict[str, Path]) -> None:
    question = {"QUESTION": "How much is (1234 - 34) * 3?"}
    nb = run_notebook("agent_development.ipynb", question, user_env["tmp"])
    result = result_of(nb, "AGENT_RESULT")
    assert result["backend"] == "offline"
    assert result["tool_calls"] == [{"name": "calculator", "args": {"expression": "(1234 - 34) * 3"}}]
    assert "3600" in result["answer"]  # computed by the tool, passed back through the agent loop


def test_fine_tuning_trains_saves_and_reloads_a_lora_adapter(
    user_env: dict[str, Path], tiny_model: Path, tiny_dataset: Path
) -> None:
    params = {
        "MODEL": str(tiny_model),
        "DATASET": str(tiny_dataset),
        "DATASET_SPLIT": "train",
        "MAX_STEPS": 3,
        "MAX_SEQ_LENGTH": 64,
        "BATCH_SIZE": 2,
        "GRADIENT_ACCUMULATION": 1,
        "PROMPT": "Explain what a GPU is",
    }
    nb = run_notebook("fine_tuning_quickstart.ipynb", params, user_env["tmp"], timeout=300)
    result = result_of(nb, "FINE_TUNING_RESULT")
    assert result["backend"] == "transformers-peft-lora"
    assert result["device"] == "cpu"
    assert result["model"] == str(tiny_model)
    assert result["steps"] == 3
    assert math.isfinite(result["first_loss"]) and math.isfinite(result["last_loss"])
    # default output dir: under the persistent notebooks dir
    out = user_env["notebooks"] / "models" / "quickstart-lora"
    saved = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "training_summary.json"} <= saved
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model)
    assert f"reloaded adapter onto {tiny_model}" in output_text(nb)
    # checkpoints went to scratch, not to the network volume
    assert (user_env["scratch"] / "checkpoints").is_dir()


def test_gpu_check_on_an_image_without_torch(user_env: dict[str, Path], hide_modules) -> None:
    hide_modules("torch")  # jupyter-ml-cpu ships without PyTorch
    nb = run_notebook("gpu_check.ipynb", {"CPU_MATMUL_SIZE": 128, "ITERATIONS": 3}, user_env["tmp"])
    result = result_of(nb, "GPU_CHECK_RESULT")
    assert (result["device"], result["backend"]) == ("cpu", "numpy")
    assert result["tflops"]["fp32"] > 0
    assert "PyTorch is not installed in this image" in output_text(nb)


@pytest.mark.parametrize(
    ("notebook", "hidden", "advice"),
    [
        ("fine_tuning_quickstart.ipynb", ("peft",), "needs peft, which this image lacks"),
        ("agent_development.ipynb", ("langchain",), "needs langchain: start the 'Agent Development' profile"),
    ],
)
def test_missing_packages_get_a_clear_message(
    user_env: dict[str, Path], hide_modules, notebook: str, hidden: tuple[str, ...], advice: str
) -> None:
    hide_modules(*hidden)
    with pytest.raises(CellExecutionError) as failure:
        run_notebook(notebook, {}, user_env["tmp"])
    assert "ModuleNotFoundError" in str(failure.value)
    assert advice in str(failure.value)


def test_data_pipeline_validates_writes_partitioned_parquet_and_reads_it_back(user_env: dict[str, Path]) -> None:
    params = {"ROWS": 3000, "FILES": 4, "DAYS": 2, "BAD_ROWS_PER_KIND": 7}
    nb = run_notebook("data_pipeline.ipynb", params, user_env["tmp"])
    result = result_of(nb, "DATA_PIPELINE_RESULT")
    assert result["engine"] == "pandas", "no GPU here: plain pandas"
    assert result["raw_rows"] == 3000 + 5 * 7
    kinds = ["bad timestamp", "missing user", "negative duration", "utilization over 100"]
    assert result["rejected"] == dict.fromkeys(kinds, 7), "every injected bad row caught, with its reason"
    assert result["duplicates_dropped"] == 7 and result["valid_rows"] == 3000
    assert result["roundtrip_ok"] is True
    out = user_env["notebooks"] / "data" / "gpu-usage"
    assert result["output_dir"] == str(out)
    dates = {p.name for p in out.iterdir()}
    assert dates == {"date=2026-11-30", "date=2026-12-01"}
    assert {p.name for p in (out / "date=2026-11-30").iterdir()} == {
        "node=gpu-4090-a", "node=gpu-4090-b", "node=gpu-a100", "node=gpu-l40s"
    }  # fmt: skip
    rejected = (out.parent / "gpu-usage-rejected.csv").read_text().splitlines()
    assert len(rejected) == 1 + 4 * 7 and "reject" in rejected[0]

    import pyarrow.dataset as ds

    again = result_of(run_notebook("data_pipeline.ipynb", params, user_env["tmp"]), "DATA_PIPELINE_RESULT")
    assert again["valid_rows"] == 3000
    assert ds.dataset(out, format="parquet", partitioning="hive").count_rows() == 3000, "a re-run replaces, not adds"


def test_fine_tuning_resumes_from_its_persistent_checkpoint_after_a_stop(
    user_env: dict[str, Path], tiny_model: Path, tiny_dataset: Path
) -> None:
    """docs/fine-tuning.md: a run the idle culler stopped goes on from its last checkpoint when run again."""
    params: dict[str, object] = {
        "MODEL": str(tiny_model),
        "DATASET": str(tiny_dataset),
        "DATASET_SPLIT": "train",
        "MAX_STEPS": 2,
        "SAVE_STEPS": 1,
        "MAX_SEQ_LENGTH": 64,
        "BATCH_SIZE": 2,
        "GRADIENT_ACCUMULATION": 1,
    }
    first = result_of(run_notebook("fine_tuning_quickstart.ipynb", params, user_env["tmp"], timeout=300),
                      "FINE_TUNING_RESULT")  # fmt: skip
    assert first["steps"] == 2 and first["resumed_from_step"] == 0
    checkpoints = user_env["notebooks"] / "models" / "quickstart-lora" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-1", "checkpoint-2"], "on the volume"
    nb = run_notebook("fine_tuning_quickstart.ipynb", {**params, "MAX_STEPS": 4}, user_env["tmp"], timeout=300)
    again = result_of(nb, "FINE_TUNING_RESULT")
    assert again["resumed_from_step"] == 2 and again["steps"] == 4
    assert f"resuming from {checkpoints / 'checkpoint-2'}" in output_text(nb)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-3", "checkpoint-4"], "the last two kept"
