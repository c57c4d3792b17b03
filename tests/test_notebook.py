"""The example notebook (docs/examples/tour.ipynb): committed without outputs, and it runs from
top to bottom in a fresh kernel with the results it describes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "examples" / "tour.ipynb"


def test_committed_notebook_has_no_outputs():
    doc = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in doc["cells"] if c["cell_type"] == "code"]
    assert len(code) >= 10
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert dirty == [], f"code cells with outputs or counts (strip them): {dirty}"
    # the tour covers what it promises, through the public API
    source = "\n".join("".join(c["source"]) for c in code)
    for call in ("mescosim.load(", "mescosim.register_policy(", "mescosim.run(",
                 "mescosim.sweep(", "workers=0", "mescosim.bench(", "replay("):
        assert call in source, call


def _text(cell) -> str:
    out = []
    for o in cell.get("outputs", []):
        if o["output_type"] == "stream" and o["name"] == "stdout":
            out.append(o["text"])
        elif "data" in o:
            out.append(o["data"].get("text/plain", ""))
    return "".join(out)


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first cell that fails
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(o["output_type"] != "error" for c in code for o in c.outputs)
    text = [_text(c) for c in code]
    everything = "\n".join(text)
    # the overrides hold; a bad override is reported, both problems at once
    assert "tour 360 min;" in everything and "('mess1', 0.3)" in everything
    bad = text[2]
    assert "fleet[0].p_max_mw: must be > 0" in bad and "step_min=7" in bad
    # the notebook's own policy is registered and ran beside the built-in ones
    assert "__main__.PeakFollower" in everything
    # sweep and bench: four scenarios, each ok; the bench pairs the three policies
    assert everything.count(" ok ") >= 4
    paired = text[9]
    assert "share_b_better" in paired and "peak-follower" in paired and "idle" in paired
    assert "report.html" in everything
    # plan validation: the replay follows the recorded plan step for step, on the run's seed
    # and on another (the vehicles' powers are the plan's; the sites' SFI is what differs)
    replay = text[12]
    assert replay.count("0 step(s) off the plan") == 2
    # the notebook wrote nothing beside itself
    assert not (NOTEBOOK.parent / "runs").exists()
