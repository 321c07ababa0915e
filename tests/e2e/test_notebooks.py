"""The notebooks run headless (nbclient, a real IPython kernel) against the session's demo lake,
and again against a lake holding only the ingest tables, where cells needing a later table must
say so instead of failing. A cell that raises fails the test (nbclient's CellExecutionError)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from demo_lake import core_only_copy, demo_lake
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CELL_TIMEOUT_S = 300
# Figures each notebook shows on the demo lake (its plots are figures, not text placeholders).
FIGURES = {"01_object.ipynb": 2, "02_night.ipynb": 2, "03_crossmatch_features.ipynb": 2,
           "04_readers_time_travel.ipynb": 0}
# Notebooks reading tables the ingest query alone does not write.
NEED_LATER_TABLES = ("01_object.ipynb", "02_night.ipynb", "03_crossmatch_features.ipynb")


@pytest.fixture(scope="session")
def lake(spark, tmp_path_factory) -> Path:
    return demo_lake(tmp_path_factory)


def execute(name: str, lake: Path, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.setenv("LENGA_LAKE", str(lake))  # the kernel inherits the environment
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def outputs(notebook, kind: str) -> list:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs
            if kind in o.get("data", {}) or (kind == "stream" and o.output_type == "stream")]


def stream_text(notebook) -> str:
    return "".join(o.text for o in outputs(notebook, "stream"))


def test_every_notebook_is_tested_and_stored_without_outputs():
    stored = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert stored == sorted(FIGURES)
    for name in stored:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(notebook)
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), name


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs_on_the_demo_lake(name, lake, monkeypatch):
    notebook = execute(name, lake, monkeypatch)
    assert len(outputs(notebook, "image/png")) >= FIGURES[name]
    assert f"lake: {lake}" in stream_text(notebook)


@pytest.mark.parametrize("name", NEED_LATER_TABLES)
def test_notebook_says_what_is_missing_on_a_lake_with_ingest_tables_only(name, lake, monkeypatch, tmp_path):
    text = stream_text(execute(name, core_only_copy(lake, tmp_path / "lake"), monkeypatch))
    assert "no classification" in text or "no xmatch table" in text
    if name == "03_crossmatch_features.ipynb":
        assert "no features table" in text
