"""The command line and the papermill chain (notebook 01 on synthetic and real data)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from aecnn_utils.__main__ import main
from aecnn_utils.reproduce import NotebookFailed, notebook_paths, run_notebooks

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_every_notebook_starts_with_a_parameters_cell() -> None:
    for path in notebook_paths(NOTEBOOKS):
        nb = nbformat.read(path, as_version=4)
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "parameters" in first_code.metadata.get("tags", []), path.name
        assert "profile" in first_code.source and "data_root" in first_code.source
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
            f"{path.name} is stored with outputs"


def test_cli_generate_and_scan(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["generate-data", "--out", str(tmp_path), "--n-per-class", "2"]) == 0
    assert main(["scan", "herlev", str(tmp_path / "herlev"), "--scheme", "native"]) == 0
    out = capsys.readouterr().out
    assert "14 cells" in out and "carcinoma_in_situ" in out
    assert main(["cache", "cric", str(tmp_path / "cric"), "--size", "16",
                 "--cache-dir", str(tmp_path / "c")]) == 0
    assert "12 images of 16px" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["scan", "sipakmed", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: sipakmed root not found") and "Traceback" not in err


def test_reproduce_rejects_unknown_profile() -> None:
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        run_notebooks("huge")


@pytest.mark.slow
def test_reproduce_notebook_01_on_synthetic(tmp_path: Path, synthetic_root: Path) -> None:
    runs = run_notebooks("smoke", synthetic_root, runs_dir=tmp_path / "runs",
                         figures_dir=tmp_path / "fig", only=["01"], log=lambda s: None)
    assert [r.name for r in runs] == ["01_data_exploration.ipynb"]
    executed = nbformat.read(runs[0].output, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    figs = tmp_path / "fig" / "smoke"
    for stem in ("01_label_counts", "01_samples_sipakmed", "01_samples_herlev", "01_samples_cric",
                 "01_image_statistics", "01_augmentations"):
        assert (figs / f"{stem}.png").stat().st_size > 0
        assert (figs / f"{stem}.pdf").stat().st_size > 0
    summary = (figs / "01_dataset_summary.csv").read_text()
    assert "synthetic data: these are not the paper's numbers" in summary


def test_reproduce_reports_the_failing_cell(tmp_path: Path) -> None:
    with pytest.raises(NotebookFailed, match=r"01_data_exploration.ipynb failed in cell .*"
                                             r"DatasetNotFoundError.*does not exist"):
        run_notebooks("smoke", tmp_path / "no-such-root", runs_dir=tmp_path / "runs",
                      figures_dir=tmp_path / "fig", only=["01"], log=lambda s: None)
    assert (tmp_path / "runs" / "smoke" / "notebooks" / "01_data_exploration.ipynb").is_file()


@pytest.mark.real_data
@pytest.mark.slow
def test_notebook_01_on_real_data(tmp_path: Path, real_root: Path) -> None:
    runs = run_notebooks("cpu", real_root, runs_dir=tmp_path / "runs",
                         figures_dir=tmp_path / "fig", only=["01"], log=lambda s: None)
    summary = (tmp_path / "fig" / "cpu" / "01_dataset_summary.csv").read_text()
    assert "synthetic" not in summary
    assert ",Dyskeratotic,abnormal,813," in summary
    nb = json.loads(runs[0].output.read_text())
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    assert not any(o.get("output_type") == "error" for o in outputs)


def test_cli_train_smoke(tmp_path: Path, synthetic_root: Path,
                         capsys: pytest.CaptureFixture) -> None:
    code = main(["train", "--profile", "smoke", "--data-root", str(synthetic_root),
                 "--epochs", "1", "--runs-dir", str(tmp_path), "--set", "n_boot=50",
                 "num_workers=0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "test AUC" in out and "aecnn" in out
    assert len(list(tmp_path.glob("smoke/*/metrics.json"))) == 1
    assert main(["train", "--set", "lr"]) == 2
    assert "key=value" in capsys.readouterr().err
