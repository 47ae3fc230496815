"""The command line and the papermill chain (notebook 01 on synthetic and real data)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from aecnn_utils.__main__ import main
from aecnn_utils.core.errors import NotebookFailed
from aecnn_utils.reporting.reproduce import notebook_paths, run_notebooks
from aecnn_utils.training.config import ConfigError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_every_notebook_starts_with_a_parameters_cell() -> None:
    makefile = (NOTEBOOKS.parent / "Makefile").read_text()
    (kernel,) = re.findall(r"ipykernel install --user --name (\S+)", makefile)
    for path in notebook_paths(NOTEBOOKS):
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata.kernelspec.name == kernel, path.name  # what `make lab` registers
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
    with pytest.raises(ConfigError, match="profile='huge' is not valid; choose one of: smoke"):
        run_notebooks("huge")


def test_reproduce_injects_parameters_and_writes_outputs(
        tmp_path: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The papermill path of ``make reproduce`` (nbval executes every notebook once in
    ``make test``; here the cheapest notebook goes through papermill). A data folder given
    relative to the caller (``--data-root ../shared/data``) reaches the notebooks, which run in
    ``notebooks/``, as the same folder."""
    monkeypatch.chdir(synthetic_root.parent)
    runs = run_notebooks("smoke", synthetic_root.name, runs_dir=tmp_path / "runs",
                         figures_dir=tmp_path / "fig", only=["00"], log=lambda s: None,
                         publish=tmp_path / "pub", params={"seed": 3})
    assert [r.name for r in runs] == ["00_overview.ipynb"]
    assert runs[0].output == tmp_path / "runs" / "smoke" / "notebooks" / "00_overview.ipynb"
    nb = nbformat.read(runs[0].output, as_version=4)
    (injected,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert f"data_root = \"{synthetic_root}\"" in injected.source
    assert "seed = 3" in injected.source  # a further parameter, passed as given
    saved = json.loads((tmp_path / "fig" / "smoke" / "00_environment.json").read_text())
    assert saved["config"]["data_root"] == str(synthetic_root)
    assert "synthetic data" in saved["data"]
    # the readers' copy: the same notebook, its folders as placeholders
    published = nbformat.read(tmp_path / "pub" / "00_overview.ipynb", as_version=4)
    (injected,) = [c for c in published.cells
                   if "injected-parameters" in c.metadata.get("tags", [])]
    assert 'data_root = "<data_root>"' in injected.source
    assert 'figures_dir = "<figures_dir>"' in injected.source
    assert str(tmp_path) not in (tmp_path / "pub" / "00_overview.ipynb").read_text()
    # published: the time table gets the notebook's row (it trains nothing)
    times = (tmp_path / "fig" / "smoke" / "reproduce_times.md").read_text()
    assert "| 00_overview | " in times and "| no training | not measured |" in times


def test_the_time_table_merges_rows_and_counts_each_run_once(tmp_path: Path) -> None:
    from aecnn_utils.reporting.reproduce import NotebookRun, _used_runs, write_times

    log = tmp_path / "07.runs.tsv"
    log.write_text("a\t0\t3600.0\nb\t1\t1800.0\na\t1\t3600.0\n")  # a: trained, then read
    assert _used_runs(log) == (2, 1, 5400.0)
    write_times(tmp_path, [NotebookRun("07_ablations.ipynb", log, 90.0, 2, 1, 5400.0)], "cpu")
    write_times(tmp_path, [NotebookRun("01_data.ipynb", log, 30.0)], "cpu")
    lines = (tmp_path / "reproduce_times.md").read_text().splitlines()
    assert lines[-2:] == ["| 01_data | 0.5 | no training | not measured |",
                          "| 07_ablations | 1.5 | 1.5 h (2 runs) | not measured |"]


def test_reproduce_refuses_a_parameter_no_notebook_declares(tmp_path: Path) -> None:
    from aecnn_utils.training.config import ConfigError

    with pytest.raises(ConfigError, match="ablations are declared by none of 00_overview"):
        run_notebooks("smoke", runs_dir=tmp_path, only=["00"], params={"ablations": []},
                      log=lambda s: None)


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
    (metrics,) = tmp_path.glob("smoke/*/metrics.json")
    # the table is the grid's record of the run: its stored report AUC, mean over splits
    stored = json.loads(metrics.read_text())
    auc = (np.mean([s["test"]["roc_auc"] for s in stored["splits"]["per_split"]])
           if "splits" in stored else stored["test"]["roc_auc"])
    header, row = out.splitlines()[-2:]
    assert header.split()[:3] == ["Arm", "AUC,", "across"] and row.startswith("aecnn ")
    assert row.split()[1] == f"{auc:.3f}" and "Trained now regenerated by aecnn-kit" in out


def test_environment_summary_names_versions_and_device() -> None:
    from aecnn_utils.core.device import environment_summary, resolve_device

    env = environment_summary("cpu")
    assert env["device"] == "cpu" and env["torch"].startswith("2.")
    assert int(env["cpu cores"]) >= 1 and env["aecnn-kit"] != "not installed"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present")
def test_cuda_request_without_gpu_is_a_clear_error() -> None:
    from aecnn_utils.core.device import resolve_device

    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
