"""Many workers: a grid on two local submitit workers gives the serial results; a SLURM array
is submitted as submitit's own mocked cluster sees it; the run lock keeps two processes from
training one run; a worker killed with SIGKILL leaves a run that the next call resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aecnn_utils.core.errors import ConfigError, RunBusy
from aecnn_utils.training.config import profile_config
from aecnn_utils.training.prepare import prepare_data
from aecnn_utils.training.runs import run_lock, run_path
from aecnn_utils.training.workers import Executor

KIT = Path(__file__).resolve().parents[1]
SET = ["image_size=48", "epochs=1", "n_boot=20", "num_workers=0"]
ARMS = ["AECNN (parallel, hybrid)", "attention: none", "loss: weighted CE"]


def _ablation(root: Path, runs: Path, out: Path, *extra: str,
              threads: int | None = None) -> subprocess.CompletedProcess:
    """``ablation`` on the command line, as a user runs it (its own process; ``threads``:
    its torch threads)."""
    argv = [sys.executable, "-m", "aecnn_utils", "ablation", "--profile", "smoke",
            "--ablations", *ARMS, "--settings", "cross", "--data-root", str(root),
            "--runs-dir", str(runs), "--out", str(out), "--set", *SET, *extra]
    env = {**os.environ, "AECNN_CACHE_DIR": str(runs.parent / "cache"),
           **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    return subprocess.run(argv, capture_output=True, text=True, cwd=KIT, env=env, timeout=900)


def _runs(folder: Path) -> dict[str, tuple[dict, np.ndarray]]:
    out = {}
    for run in sorted((folder / "smoke").glob("aecnn_*")):
        if run.is_dir():
            metrics = json.loads((run / "metrics.json").read_text())
            for key in ("train_seconds", "epoch_seconds", "code_revision", "device"):
                metrics.pop(key, None)
            out[run.name] = (metrics, np.load(run / "epochs.npz")["logits"])
    return out


@pytest.mark.slow
def test_two_local_workers_give_the_serial_results(synthetic_root: Path,
                                                   tmp_path: Path) -> None:
    # a CPU's sums depend on the thread count: the serial run gets a worker's share
    serial = _ablation(synthetic_root, tmp_path / "a" / "runs", tmp_path / "a" / "out",
                       threads=Executor("local", workers=2).threads())
    assert serial.returncode == 0, serial.stderr
    local = _ablation(synthetic_root, tmp_path / "b" / "runs", tmp_path / "b" / "out",
                      "--executor", "local", "--workers", "2")
    assert local.returncode == 0, local.stderr
    assert "3 runs to train on local workers" in local.stdout
    jobs = [p for p in (tmp_path / "b" / "runs" / "smoke" / "_jobs").iterdir()
            if p.name.isdigit()]
    assert len(jobs) == 2  # two worker processes, each with its share of the cores
    a, b = _runs(tmp_path / "a" / "runs"), _runs(tmp_path / "b" / "runs")
    assert len(a) == 3 and a.keys() == b.keys()
    for name in a:
        assert a[name][0] == b[name][0], name
        np.testing.assert_array_equal(a[name][1], b[name][1])
    for stem in ("ablations.csv", "ablations_comparisons.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a" / "out" / stem),
                                      pd.read_csv(tmp_path / "b" / "out" / stem))
    again = _ablation(synthetic_root, tmp_path / "b" / "runs", tmp_path / "b" / "out",
                      "--executor", "local", "--workers", "2")
    assert again.returncode == 0 and "runs to train" not in again.stdout  # all finished


def test_slurm_submits_one_array_job_per_run(synthetic_root: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The SLURM path as far as it goes without a cluster: submitit's own mocked ``sbatch``
    and ``sacct`` (its test helpers), the jobs run here as SLURM would run them."""
    from submitit.core import submission
    from submitit.slurm.test_slurm import mocked_slurm

    from aecnn_utils.__main__ import main

    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    runs = tmp_path / "runs"
    argv = ["ablation", "--profile", "smoke", "--ablations", ARMS[0], ARMS[1], "--settings",
            "cross", "--data-root", str(synthetic_root), "--runs-dir", str(runs), "--set", *SET,
            "--executor", "slurm", "--partition", "gpu", "--gpus-per-job", "1", "--workers", "2",
            "--slurm", "account=lab"]
    with mocked_slurm() as mock:
        done: list[int] = []
        grid = threading.Thread(target=lambda: done.append(main(argv)))
        grid.start()  # submits, then waits for the jobs
        deadline = time.time() + 300
        while not list((runs / "smoke" / "_jobs").glob("*/*_submitted.pkl")):
            assert time.time() < deadline and grid.is_alive(), "nothing was submitted"
            time.sleep(0.2)
        time.sleep(1)
        folders = sorted({p.parent for p in (runs / "smoke" / "_jobs").glob("*/*_submitted.pkl")})
        assert [f.name for f in folders] == ["12_0", "12_1"]  # one array job per run
        for folder in folders:
            with mock.job_context(folder.name):
                submission.process_job(folder)
        grid.join(timeout=600)
    assert done == [0]
    (script,) = (runs / "smoke" / "_jobs").glob("**/*_submission.sh")
    text = script.read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --array=0-1%2", "#SBATCH --account=lab"):
        assert line in text
    assert len([p for p in (runs / "smoke").glob("aecnn_*") if p.is_dir()]) == 2


def test_a_bad_executor_is_refused() -> None:
    with pytest.raises(ConfigError, match="partition"):
        Executor("slurm")
    with pytest.raises(ConfigError, match="workers=0"):
        Executor("local", workers=0)
    with pytest.raises(ConfigError, match="'dask' is not valid"):
        Executor.from_value("dask")
    with pytest.raises(ConfigError, match="unknown executor field 'nodes'"):
        Executor.from_value({"kind": "local", "nodes": 2})
    assert Executor.from_value({"kind": "local", "workers": 2}).threads() >= 1


SCRIPT = """
import json, sys
from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments.ablation import ablation_grid
grid = ablation_grid("smoke", {arms!r}, settings=["cross"])
runs = G.run_grid(grid, {runs!r}, progress=False, data_root={root!r}, image_size=48,
                  epochs=1, n_boot=20, num_workers=0)
print(json.dumps([[r.run_dir.name, r.reused] for rs in runs.values() for r in rs]))
"""


@pytest.mark.slow
def test_two_processes_on_one_grid_train_each_run_once(synthetic_root: Path,
                                                       tmp_path: Path) -> None:
    code = SCRIPT.format(arms=ARMS, runs=str(tmp_path / "runs"), root=str(synthetic_root))
    env = {**os.environ, "AECNN_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=KIT, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    seen = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    names = {name for rows in seen for name, _ in rows}
    assert len(names) == 3
    for name in names:
        trained = [reused for rows in seen for n, reused in rows if n == name and not reused]
        assert len(trained) == 1, f"{name} trained {len(trained)} times"


def test_a_held_run_is_skipped_by_a_worker_and_waited_for_by_a_grid(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from aecnn_utils.training.engine import train_run

    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    config = profile_config("smoke", data_root=str(synthetic_root), image_size=48, epochs=1,
                            n_boot=20, num_workers=0)
    path = run_path(config, prepare_data(config, progress=False), tmp_path / "runs")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from aecnn_utils.training.runs import run_lock\n"
         f"with run_lock(Path({str(path)!r})):\n print('held', flush=True); time.sleep(4)"],
        stdout=subprocess.PIPE, text=True, cwd=KIT)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunBusy, match="another process"):
        train_run(config, tmp_path / "runs", progress=False, wait=False)
    assert not path.exists()  # nothing written into a run another process holds
    run = train_run(config, tmp_path / "runs", progress=False)  # waits, then trains
    assert "waiting for" in capsys.readouterr().out
    assert holder.wait(timeout=30) == 0 and run.metrics["epochs_run"] == 1
    with run_lock(path, wait=False):  # free again
        pass


@pytest.mark.slow
def test_a_worker_killed_mid_run_leaves_a_run_the_next_call_resumes(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aecnn_utils.training.engine import train_run

    cache = tmp_path / "cache"
    monkeypatch.setenv("AECNN_CACHE_DIR", str(cache))
    config = profile_config("smoke", data_root=str(synthetic_root), image_size=48, epochs=6,
                            n_boot=20, num_workers=0, patience=6)
    path = run_path(config, prepare_data(config, progress=False), tmp_path / "runs")
    argv = [sys.executable, "-m", "aecnn_utils", "train", "--profile", "smoke", "--data-root",
            str(synthetic_root), "--runs-dir", str(tmp_path / "runs"), "--epochs", "6",
            "--set", "image_size=48", "n_boot=20", "num_workers=0", "patience=6"]
    worker = subprocess.Popen(argv, cwd=KIT, env={**os.environ, "AECNN_CACHE_DIR": str(cache)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (path / "last.pt").is_file():  # its first epoch is finished
        assert time.time() < deadline and worker.poll() is None, "the worker ended early"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    assert not (path / "metrics.json").is_file()
    run = train_run(config, tmp_path / "runs", progress=False, wait=False)  # the lock is free
    assert run.resumed_from_epoch >= 1 and run.metrics["epochs_run"] == 6
    assert len(run.history) == 6


@pytest.mark.slow
def test_reproduce_trains_a_notebooks_grid_on_local_workers(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``reproduce --executor local --workers 2``: the notebook that trains a grid gets the
    executor as its parameter, and its runs train on two workers."""
    import nbformat

    from aecnn_utils.__main__ import main
    from aecnn_utils.reporting.reproduce import _used_runs

    monkeypatch.setenv("AECNN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["reproduce", "--profile", "smoke", "--data-root", str(synthetic_root),
                 "--only", "07", "--param",
                 'ablations=["AECNN (parallel, hybrid)", "attention: none"]', "epochs=1",
                 "--executor", "local", "--workers", "2"]) == 0
    nb = nbformat.read(tmp_path / "runs" / "smoke" / "notebooks" / "07_ablations.ipynb", 4)
    (injected,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert '"kind": "local"' in injected.source and '"workers": 2' in injected.source
    jobs = [p for p in (tmp_path / "runs" / "smoke" / "_jobs").iterdir() if p.name.isdigit()]
    assert len(jobs) == 2
    # the run log tells what the notebook stood on: every run trained now, in the workers
    runs, trained, seconds = _used_runs(tmp_path / "runs" / "smoke" / "notebooks"
                                        / "07_ablations.runs.tsv")
    assert runs == trained == 4 and seconds > 0  # two arms, across datasets and in-domain
