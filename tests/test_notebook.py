"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel, with a tiny budget."""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` leaves this module out


def test_the_quickstart_notebook_runs(tmp_path, tiny_budgets):
    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = (f"BUDGET = 'tiny'\nBUDGETS_FILE = {str(tiny_budgets)!r}\nTRIALS = 2\nSEEDS = 1\n"
                     f"REPORTS = {str(tmp_path / 'reports')!r}\nNAME = 'nb'")
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = {i: c.outputs for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    text = json.dumps(outputs, ensure_ascii=False)
    assert "13794" in text  # model.count_params() of the hand-written net
    assert "within budget mnist-15k (13,794 of 15,000 params)" in text  # its verdict, as HTML in the notebook
    assert "params: 13,794 total params > limit 8,000" in text
    assert "Leaderboard — nb" in text and "<table>" in text
    assert (tmp_path / "reports" / "nb" / "export" / "model.keras").exists()
    assert (tmp_path / "reports" / "nb" / "export" / "model_float32.tflite").exists()
    assert not any(o.get("output_type") == "error" for outs in outputs.values() for o in outs)
