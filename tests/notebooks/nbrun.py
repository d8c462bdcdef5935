"""Run the example notebooks the way a user would, and read back what they print."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
KERNEL_NAME = "gpu-jupyterhub-test-python"


def run_notebook(name: str, params: dict[str, object], cwd: Path, timeout: int = 240) -> nbformat.NotebookNode:
    """Execute notebooks/<name> with a cell of overrides after its `parameters` cell, like papermill."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if params:
        index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in params.items()))
        cell.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(index + 1, cell)
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL_NAME, resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def output_text(nb: nbformat.NotebookNode) -> str:
    """All stream and plain-text output of the executed notebook, in order."""
    parts: list[str] = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.append(out.data.get("text/plain", "") + "\n")  # a displayed value ends its line
    return "".join(parts)


def result_of(nb: nbformat.NotebookNode, marker: str) -> dict:
    """The JSON a notebook prints on its `<marker> {...}` line."""
    for line in output_text(nb).splitlines():
        if line.startswith(marker + " "):
            return json.loads(line[len(marker) + 1 :])
    raise AssertionError(f"{marker} line not found in the notebook's output")
