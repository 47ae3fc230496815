"""The executed ``cpu`` notebooks committed for readers (``executed/cpu/``): present for every
notebook, run from the notebooks' current code, free of machine paths, small."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import nbformat
import numpy as np
import pytest

from aecnn_utils.reporting.reproduce import (
    MACHINE_PATH,
    notebook_paths,
    publish_notebook,
    published_dir,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: Largest published notebook (bytes): figures are re-encoded, dataset images only thumbnails.
MAX_BYTES = 1_000_000
#: Notebooks whose code moved ahead of their executed cpu copy because the runs their new code
#: reads are still training: notebook -> why. The README names each under "Being regenerated"
#: (tested below); the copy is then older than the code and says so there, and nowhere else.
PENDING: dict[str, str] = {}


def _code(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"
            and "injected-parameters" not in c.metadata.get("tags", [])]


@pytest.mark.parametrize("source", notebook_paths(NOTEBOOKS), ids=lambda p: p.name[:2])
def test_published_cpu_notebook_is_current_and_clean(source: Path) -> None:
    published = published_dir("cpu") / source.name
    fix = (f"run `python -m aecnn_utils reproduce --profile cpu --data-root DIR --only "
           f"{source.name[:2]} --publish` and commit {published.parent.name}/cpu/{source.name}")
    assert published.is_file(), f"{source.name} has no executed cpu copy: {fix}"
    nb = nbformat.read(published, as_version=4)
    current = _code(nb) == _code(nbformat.read(source, as_version=4))
    if not current and source.name[:2] in PENDING:
        pytest.skip(f"{published.name} is pending: {PENDING[source.name[:2]]}")
    assert current, f"{published.name} is older than the code of notebooks/{source.name}: {fix}"
    (injected,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert 'profile = "cpu"' in injected.source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), f"{published.name} was not run to the end"
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    text = published.read_text(encoding="utf-8")
    assert not MACHINE_PATH.search(text), f"{published.name} holds a machine path: {fix}"
    assert published.stat().st_size < MAX_BYTES


def test_readme_names_every_pending_notebook() -> None:
    """A reader learns from the README which published results predate the current code."""
    readme = " ".join((NOTEBOOKS.parent / "README.md").read_text(encoding="utf-8").split())
    if not PENDING:  # the callout goes with the last pending notebook
        assert "**Being regenerated.**" not in readme
        return
    callout = readme[readme.index("**Being regenerated.**"):][:1500]
    for number in PENDING:
        (name,) = [p.name for p in notebook_paths(NOTEBOOKS) if p.name.startswith(number)]
        assert f"notebook {number}" in callout, f"README does not say {name} is pending"


def test_publish_notebook_cleans_a_copy(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 255, (600, 1800, 3), dtype=np.uint8)
    png = base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode()
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=1)
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="saved /home/me/kit/figures/a.png\n"),
        nbformat.v4.new_output("stream", name="stderr", text="100%|###| /tmp/x\n"),
        nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "w"})]
    cell.metadata["papermill"] = {"start_time": "2026-11-26", "duration": 1.0}
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["papermill"] = {"parameters": {"figures_dir": "/home/me/kit/figures"},
                                "input_path": "/home/me/kit/notebooks/x.ipynb"}
    executed = tmp_path / "x.ipynb"
    nbformat.write(nb, executed)
    out = publish_notebook(executed, tmp_path / "pub" / "x.ipynb",
                           {"/home/me/kit": "<kit>", "/home/me": "~"})
    clean = nbformat.read(out, as_version=4)
    outputs = clean.cells[0].outputs
    assert [o.output_type for o in outputs] == ["stream", "display_data"]  # no stderr, widget
    assert outputs[0].text == "saved <kit>/figures/a.png\n"
    assert "image/jpeg" in outputs[1].data and "image/png" not in outputs[1].data
    small = cv2.imdecode(np.frombuffer(base64.b64decode(outputs[1].data["image/jpeg"]),
                                       np.uint8), cv2.IMREAD_COLOR)
    assert small.shape[1] == 900
    assert "papermill" not in clean.cells[0].metadata
    assert clean.metadata["papermill"]["parameters"] == {"figures_dir": "<kit>/figures"}
    with pytest.raises(ValueError, match="machine path is left"):
        publish_notebook(executed, tmp_path / "pub" / "y.ipynb", {})
    assert not (tmp_path / "pub" / "y.ipynb").exists()  # nothing half written


PUBLISHED_RUNS = Path(__file__).resolve().parents[1] / "published_runs"


@pytest.mark.parametrize("run_dir", sorted(PUBLISHED_RUNS.glob("*/*/")), ids=lambda p: p.name)
def test_published_run_records_are_whole_runs(run_dir: Path) -> None:
    """Each committed run record reads back as a finished run whose stored
    outputs hold every epoch each split chose, and whose folder is its config's run id."""
    from aecnn_utils.models import MODELS
    from aecnn_utils.training.runs import load_run

    run = load_run(run_dir)
    assert run.metrics["run_id"] == run_dir.name
    if run.metrics["model"] in MODELS:  # a network's folder is its config's id
        assert run_dir.name == run.config.run_id(run.metrics["data_fingerprint"])
    logits = np.load(run_dir / "epochs.npz")["logits"]
    assert logits.ndim == 3 and logits.shape[0] == run.metrics["epochs_run"]
    epochs = [s["best_epoch"] for s in run.metrics.get("splits", {}).get("per_split", [])]
    assert all(1 <= e <= logits.shape[0] for e in [run.metrics["best_epoch"], *epochs])
    # the resumable state stays out; best.pt only for the small models trained on SIPaKMeD
    assert not (run_dir / "last.pt").exists()
    if (run_dir / "best.pt").exists():
        assert run.config.model in ("aecnn", "mobilenet_v3_small")
        assert run.config.protocol == "cross"


#: Columns of the published records that hold shares: fractions in [0, 1] in every CSV (one
#: unit; the tables print them as percent).
SHARE_COLUMNS = {"value", "low", "high", "new_low", "new_high", "accuracy", "precision",
                 "recall", "specificity", "f1", "balanced_accuracy", "sens_at_spec95",
                 "called_abnormal", "correct", "mass", "area"}


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "figures" / "cpu").glob("*.csv")
                                         if p.name != "claims.csv"), ids=lambda p: p.name)
def test_published_shares_are_fractions(path: Path) -> None:
    """(The ledger is left out: its effects are also ratios and parameter counts.)"""
    import pandas as pd

    frame = pd.read_csv(path)
    low = -1 if "diff" in frame.columns else 0  # a comparison's differences of shares
    for column in SHARE_COLUMNS & set(frame.columns):
        values = pd.to_numeric(frame[column], errors="coerce").dropna()
        assert values.between(low - 1e-9, 1 + 1e-9).all(), \
            f"{path.name}: {column} is not a fraction"


def test_every_run_of_the_cpu_grids_is_published() -> None:
    """Table 2's, the study's, the ablations' and the efficiency grid's runs are all in
    published_runs/cpu under the ids the code gives them now (a renamed default, such as
    AECNN's layer table, must not orphan a published run)."""
    import json

    from aecnn_utils.experiments import ablation, efficiency, study, tune

    published = PUBLISHED_RUNS / "cpu"
    fingerprints = {}
    for path in published.glob("*/metrics.json"):
        run_id = path.parent.name
        fingerprints[run_id.split("_")[1]] = json.loads(path.read_text())["data_fingerprint"]
    grids = [tune.model_grid("cpu", ["aecnn", "mobilenet_v3_small"]), study.study_grid("cpu"),
             ablation.ablation_grid("cpu"), efficiency.efficiency_grid("cpu", [
                 "AECNN (parallel)", "AECNN base (parallel)", "MobileNetV3-Small"])]
    missing = []
    for grid in grids:
        for arm in grid.arms:
            if arm.reference:
                continue
            for setting in grid.settings:
                for candidate in arm.candidates or {"": {}}:
                    config = grid.config(arm, candidate, setting)
                    for seed in config.seeds:
                        run = config.replace(seed=seed)
                        where = run.run_id().split("_")[1]
                        if not (published / run.run_id(fingerprints[where])).is_dir():
                            missing.append(f"{arm.name} / {candidate} / {setting} / seed {seed}")
    assert not missing, f"{len(missing)} runs are not published, e.g. {missing[:3]}"


@pytest.mark.parametrize("source", notebook_paths(NOTEBOOKS), ids=lambda p: p.name[:2])
def test_papermill_reads_every_parameter_and_its_comment(
        source: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Papermill parses each line of the parameters cell (a comment with ``=`` in it is read
    as code and warns on every run)."""
    import papermill as pm

    with caplog.at_level("WARNING"):
        params = pm.inspect_notebook(str(source))
    assert "profile" in params
    assert not [r for r in caplog.records if "Unable to parse" in r.getMessage()], source.name
