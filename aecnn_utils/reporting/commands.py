"""The grid commands of the command line (``tune``, ``study``, ``ablation``): train or reuse the
grid, print its table, caption and words, and with ``--out`` write its files."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from aecnn_utils.core.coerce import parse_overrides
from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments import paired as P
from aecnn_utils.experiments import scores as S
from aecnn_utils.experiments.ablation import (
    ablation_comparisons,
    ablation_grid,
    ablation_metrics,
    ablation_words,
)
from aecnn_utils.experiments.study import (
    PROCEDURE,
    STUDY_METRICS,
    record_study,
    study_comparisons,
    study_grid,
    study_tables,
    study_words,
)
from aecnn_utils.experiments.tune import tune
from aecnn_utils.reporting import tables as report
from aecnn_utils.reporting.tables import write_grid, write_table
from aecnn_utils.training.workers import Executor


def executor_of(args: argparse.Namespace) -> Executor:
    """The executor of a grid command: ``--executor``, ``--workers`` and the SLURM options."""
    return Executor(args.executor, args.workers, args.partition, args.gpus_per_job,
                    args.cpus_per_job, args.timeout_min, parse_overrides(args.slurm or []))


def grid_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The config overrides of a grid command: ``--set`` items and ``--data-root``."""
    overrides = parse_overrides(args.set or [])
    if args.data_root is not None:
        overrides["data_root"] = args.data_root
    return overrides


def show_grid(result: S.GridResult, comparisons: list[P.Comparison], pretty: pd.DataFrame,
              caption: str, words: str, out: str | None, stem: str) -> None:
    """Print a grid's table, caption and words; with ``--out`` also write its files."""
    print(caption)
    with pd.option_context("display.width", 220, "display.max_colwidth", 44):
        print(pretty.to_string(index=False))
    print(words)
    if out:
        for path in write_grid(result, comparisons, Path(out) / stem, caption, pretty):
            print(f"wrote {path}")


def tune_command(args: argparse.Namespace) -> None:
    """``tune``: the learning-rate grid and Table 2."""
    result = tune(args.profile, args.models, args.lrs, args.runs_dir, write=not args.dry_run,
                  seeds=args.seeds, executor=executor_of(args), **grid_overrides(args))
    comparisons = report.table2_comparisons(result) if "aecnn" in args.models else []
    show_grid(result, comparisons, report.grid_table2(result),
              G.grid_caption(result, "Table 2", len(comparisons),
                             [m for m in result.metrics if not m.at_threshold]),
              report.grid_summary(result, comparisons), args.out, "table2")


def study_command(args: argparse.Namespace) -> None:
    """``study``: the cross-dataset study (both tables) and its recorded recipe."""
    overrides = {"model": args.model, **grid_overrides(args)}
    grid = study_grid(args.profile, args.methods, settings=args.settings,
                      reference=not args.no_reference, seeds=args.seeds)
    result = G.score_grid(grid, G.run_grid(grid, args.runs_dir, epoch_bars=True,
                                               executor=executor_of(args), **overrides),
                          G.grid_data(grid, **overrides), STUDY_METRICS)
    comparisons = study_comparisons(result) if "cross" in args.settings else []
    (caption, pretty), (chosen_caption, chosen) = study_tables(result, len(comparisons)).values()
    show_grid(result, comparisons, pretty, caption,
              study_words(result, comparisons) if "plain" in {a.name for a in grid.arms}
              and comparisons else "", args.out, "study")
    print(chosen_caption)
    print(chosen.to_string(index=False))
    if args.out:
        for path in write_table(result.frame(), Path(args.out) / "study_val_threshold",
                                chosen_caption, chosen):
            print(f"wrote {path}")
    if not args.dry_run and ("cross", PROCEDURE) in result.scores:
        print(f"recipe recorded in {record_study(args.profile, result)}")


def ablation_command(args: argparse.Namespace) -> None:
    """``ablation``: the ablations of AECNN's attention and loss."""
    overrides = grid_overrides(args)
    grid = ablation_grid(args.profile, args.ablations, settings=args.settings, seeds=args.seeds)
    data = G.grid_data(grid, **overrides)
    metrics = ablation_metrics(data[grid.settings[0]])
    result = G.score_grid(grid, G.run_grid(grid, args.runs_dir, epoch_bars=True,
                                               executor=executor_of(args), **overrides),
                          data, metrics)
    comparisons = [c for s in args.settings for c in ablation_comparisons(result, data[s], s)]
    columns = [(s, m.key) for s in args.settings for m in metrics]
    show_grid(result, comparisons, G.wide_table(result, columns, new_slides="roc_auc"),
              G.grid_caption(result, "Ablations of AECNN",
                             len(comparisons) // len(args.settings)),
              ablation_words(result, comparisons), args.out, "ablations")
