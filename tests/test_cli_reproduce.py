"""The command line and the papermill chain (notebook 01 on synthetic and real data)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from aecnn_utils.__main__ import main
from aecnn_utils.reproduce import NotebookFailed, notebook_paths, run_notebooks

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_every_notebook_starts_with_a_parameters_cell() -> None:
    for path in notebook_paths(NOTEBOOKS):
        nb = nbformat.read(path, as_version=4)
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "parameters" in first_code.metadata.get("tags", []), path.name
        for name in ("profile", "data_root", "figures_dir", "seed", "device"):
            assert re.search(rf"^{name} = ", first_code.source, re.M), (path.name, name)
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
def test_reproduce_chain_on_smoke(tmp_path: Path, synthetic_root: Path) -> None:
    """The whole papermill chain: every notebook runs, Table 2 and Figures 1-3 are written, and
    the table holds the numbers of the runs made in this very chain."""
    runs = run_notebooks("smoke", synthetic_root, runs_dir=tmp_path / "runs",
                         figures_dir=tmp_path / "fig", log=lambda s: None)
    assert [r.name for r in runs] == [p.name for p in notebook_paths(NOTEBOOKS)]
    assert [r.name[:2] for r in runs] == ["00", "01", "02", "03", "04"]
    for r in runs:
        nb = nbformat.read(r.output, as_version=4)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    figs = tmp_path / "fig" / "smoke"
    for name in ("04_table2.csv", "04_table2.md", "04_table2.tex", "04_fig1_accuracy.png",
                 "04_fig2_f1.png", "04_fig3_roc.png", "04_fig1_accuracy.pdf",
                 "01_label_counts.png", "02_complexity.png", "03_training_curves.png"):
        assert (figs / name).stat().st_size > 0, name
    table = pd.read_csv(figs / "04_table2.csv").set_index("model")
    finished = list((tmp_path / "runs" / "smoke").glob("*/metrics.json"))
    assert len(finished) == 3  # one seed of three models, trained in this chain
    for path in finished:
        m = json.loads(path.read_text())
        label = {"resnet50": "ResNet-50", "efficientnet_b3": "EfficientNet-B3",
                 "aecnn": "AECNN"}[m["model"]]
        assert table.loc[label, "accuracy"] == pytest.approx(100 * m["test"]["accuracy"])
        assert table.loc[label, "roc_auc"] == pytest.approx(m["test"]["roc_auc"])
        assert "synthetic data" in table.loc[label, "data"]
    notice = "synthetic data: these are not the paper's numbers"
    assert notice in (figs / "04_table2.md").read_text()


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


def test_environment_summary_names_versions_and_device() -> None:
    from aecnn_utils.device import environment_summary, resolve_device

    env = environment_summary("cpu")
    assert env["device"] == "cpu" and env["torch"].startswith("2.")
    assert int(env["cpu cores"]) >= 1 and env["aecnn-kit"] != "not installed"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="CUDA is not available"):
        if not __import__("torch").cuda.is_available():
            resolve_device("cuda")
        else:
            raise ValueError("CUDA is not available (skipped: a GPU is present)")
