"""Many runs at once: a grid's runs trained by several processes through submitit.

Every run of a grid is independent, so they can train side by side, where an
:class:`Executor` says:

``serial``  (default) in this process, one after another;
``local``   ``workers`` processes on this machine (submitit's local executor), each with its
            share of the cores; every worker walks the whole list and trains the runs no other
            worker holds (the run lock, :func:`aecnn_utils.training.runs.run_lock`);
``slurm``   one SLURM job per unfinished run, submitted as one job array (at most ``workers``
            at a time when ``workers`` > 1), on ``partition`` with ``gpus_per_job`` GPUs.

:func:`dispatch` trains and waits; the caller then reads every run back in its own process,
in order, the way a serial grid does: a finished run is reused
(:func:`aecnn_utils.training.engine.train_run`), so the results are those of a serial run
with as many torch threads as a worker has (a test checks it; on a CPU the last bits of a sum
depend on the thread count). A worker that dies leaves its run resumable; the
caller's own pass resumes it. submitit's logs go to ``<runs_dir>/<profile>/_jobs/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aecnn_utils.core.errors import ConfigError, RunBusy, TrainingDiverged
from aecnn_utils.core.names import EXECUTORS
from aecnn_utils.training.config import RunConfig
from aecnn_utils.training.engine import train_run
from aecnn_utils.training.prepare import PreparedData, shared_data
from aecnn_utils.training.runs import default_runs_dir, run_path


@dataclass(frozen=True)
class Executor:
    """Where a grid's runs train (module docstring). ``slurm`` holds further parameters of
    submitit's ``SlurmExecutor`` (e.g. ``{"account": "lab", "qos": "normal"}``)."""

    kind: str = "serial"
    workers: int = 1
    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int | None = None
    timeout_min: int = 240
    slurm: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ConfigError(f"executor {self.kind!r} is not valid; choose one of: "
                              f"{', '.join(EXECUTORS)}")
        if self.workers < 1:
            raise ConfigError(f"workers={self.workers}: give at least 1")
        if self.kind == "slurm" and not self.partition:
            raise ConfigError("the slurm executor needs a partition (--partition P)")

    @classmethod
    def from_value(cls, value: Executor | Mapping[str, Any] | str | None) -> Executor:
        """An executor from itself, a mapping of its fields (a notebook parameter), a kind
        name, or ``None`` (serial)."""
        if isinstance(value, Executor):
            return value
        if value is None or isinstance(value, str):
            return cls(value or "serial")
        unknown = sorted(set(value) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown executor field {unknown[0]!r}; fields: "
                              f"{', '.join(cls.__dataclass_fields__)}")
        return cls(**value)

    def threads(self) -> int:
        """Torch threads of one local worker: its share of this machine's cores."""
        return max(1, (os.cpu_count() or 1) // self.workers)


def seed_runs(config: RunConfig) -> list[RunConfig]:
    """The single runs of ``config``: one per fold (k-fold) or one per seed."""
    if config.protocol == "kfold":
        return [config.replace(fold=k) for k in range(config.n_folds)]
    return [config.replace(seed=s) for s in config.seeds]


def dispatch(configs: Sequence[RunConfig], runs_dir: str | Path | None = None,
             executor: Executor | Mapping[str, Any] | str | None = None,
             shared: dict[str, PreparedData] | None = None) -> None:
    """Train every unfinished run of ``configs`` where ``executor`` says, and wait for them
    (``serial``: nothing here; the caller trains them as it reads them). ``shared``: the
    caller's prepared cells (:func:`~aecnn_utils.training.prepare.shared_data`), kept for it."""
    executor = Executor.from_value(executor)
    if executor.kind == "serial" or not configs:
        return
    runs = _unfinished([run for config in configs for run in seed_runs(config)], runs_dir,
                       {} if shared is None else shared)
    if runs:
        print(f"{len(runs)} runs to train on {executor.kind} workers", flush=True)
        (_local if executor.kind == "local" else _slurm)(runs, runs_dir, executor)


def work(runs: Sequence[RunConfig], runs_dir: str | Path | None, threads: int) -> list[str]:
    """One worker's job: train each of ``runs`` that no other process holds, with ``threads``
    torch threads; the names of the runs it trained or found finished."""
    import torch

    torch.set_num_threads(threads)
    done = []
    for config in runs:
        try:
            done.append(train_run(config, runs_dir, progress=False, wait=False).run_dir.name)
        except RunBusy:
            continue  # another worker trains it
        except TrainingDiverged:
            continue  # the caller's own pass meets it as a serial grid does
    return done


def _jobs_folder(runs: Sequence[RunConfig], runs_dir: str | Path | None) -> Path:
    return Path(runs_dir or default_runs_dir()) / runs[0].profile / "_jobs" / "%j"


def _wait(jobs: Sequence[Any]) -> None:
    """Wait for every job; a failed one is named with its log."""
    failed = []
    for job in jobs:
        try:
            job.result()
        except Exception as exc:  # every failure is reported together
            failed.append(f"job {job.job_id} ({job.paths.stderr}): "
                          f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(jobs)} jobs failed; their runs are "
                           "resumable, run the command again:\n" + "\n".join(failed))


def _local(runs: Sequence[RunConfig], runs_dir: str | Path | None, executor: Executor) -> None:
    import submitit

    pool = submitit.LocalExecutor(folder=_jobs_folder(runs, runs_dir))
    pool.update_parameters(timeout_min=executor.timeout_min,
                           gpus_per_node=executor.gpus_per_job)
    jobs = [pool.submit(work, list(runs), runs_dir, executor.threads())
            for _ in range(min(executor.workers, len(runs)))]
    _wait(jobs)


def _unfinished(runs: Sequence[RunConfig], runs_dir: str | Path | None,
                shared: dict[str, PreparedData]) -> list[RunConfig]:
    """The runs without a finished folder. Their data are prepared here, once per data key,
    so that the workers find the decoded images cached and never write the cache at once."""
    return [config for config in runs if not (
        run_path(config, shared_data(config, shared), runs_dir) / "metrics.json").is_file()]


def _slurm(runs: Sequence[RunConfig], runs_dir: str | Path | None, executor: Executor) -> None:
    import submitit

    cluster = submitit.SlurmExecutor(folder=_jobs_folder(runs, runs_dir))
    cluster.update_parameters(
        partition=executor.partition, time=executor.timeout_min, ntasks_per_node=1,
        gpus_per_node=executor.gpus_per_job, job_name="aecnn",
        **({"cpus_per_task": executor.cpus_per_job} if executor.cpus_per_job else {}),
        **({"array_parallelism": executor.workers} if executor.workers > 1 else {}),
        **dict(executor.slurm))
    threads = executor.cpus_per_job or 1
    jobs = cluster.map_array(work, [[config] for config in runs], [runs_dir] * len(runs),
                             [threads] * len(runs))
    print(f"submitted {len(jobs)} runs as SLURM array {jobs[0].job_id.split('_')[0]}; "
          f"waiting (logs in {jobs[0].paths.folder.parent})", flush=True)
    _wait(jobs)
