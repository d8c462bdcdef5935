"""The notebooks in the repo are valid nbformat 4, stored without outputs, and say what they are for."""

from __future__ import annotations

import ast

import nbformat
import pytest
from nbrun import NOTEBOOKS

EXPECTED = [
    "agent_development.ipynb",
    "data_pipeline.ipynb",
    "fine_tuning_quickstart.ipynb",
    "gpu_check.ipynb",
    "storage_check.ipynb",
]


def test_the_expected_notebooks_exist() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_valid_and_clean(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=nbformat.NO_CONVERT)
    assert nb.nbformat == 4
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert "What it shows" in first.source and "What it needs" in first.source
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{name}: outputs not cleared in cell {cell.id}"
        assert cell.execution_count is None, f"{name}: execution count left in cell {cell.id}"
        ast.parse(cell.source)  # a syntax error would only surface when a user runs the cell


@pytest.mark.parametrize("name", EXPECTED)
def test_one_parameters_cell_of_plain_assignments(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    statements = ast.parse(tagged[0].source).body
    assert statements and all(isinstance(s, ast.Import | ast.Assign) for s in statements)
