"""examples/notebook.ipynb runs top to bottom on a real Jupyter kernel (this interpreter)."""

from __future__ import annotations

import json
import sys

import pytest

from tests.support import REPO

pytestmark = pytest.mark.slow

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

KERNEL = "sweeper-test"


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A kernel spec for this interpreter (the venv's), found through JUPYTER_PATH."""
    folder = tmp_path / "jupyter" / "kernels" / KERNEL
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "sweeper test",
        "language": "python",
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


def test_example_notebook_runs(tmp_path, kernel):
    nb = nbformat.read(REPO / "examples" / "notebook.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},  # the notebook's working folder
    )
    client.execute()  # a cell that raises fails the test (CellExecutionError)

    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    kinds = {kind for o in outputs for kind in o.get("data", {})}
    assert "application/vnd.plotly.v1+json" in kinds or "text/html" in kinds
    text = json.dumps([o.get("data", o.get("text", "")) for o in outputs])
    assert "4/4 trials done" in text  # the progress line, updated in place
    study = tmp_path / "runs" / "notebook"
    assert (study / "report.html").exists() is False  # inline only: nothing written
    assert sorted(p.name for p in (study / "export").iterdir())[0].startswith("top1_")
    assert len(list((study / "tensorboard").iterdir())) == 4
    assert (study / "code" / "my_models.py").exists()  # the user's model travels with it
    meta = json.loads((study / "study.json").read_text())
    assert meta["state"] == "finished"
