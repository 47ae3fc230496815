"""Command line: ``python -m aecnn_utils <command>`` (also installed as ``aecnn``)."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from aecnn_utils.core.coerce import parse_overrides


def _generate(args: argparse.Namespace) -> None:
    from aecnn_utils.data.sources import synthetic_root
    from aecnn_utils.data.synthetic import generate_all

    out = args.out or synthetic_root(args.n_per_class, args.seed)
    paths = generate_all(out, n_per_class=args.n_per_class, seed=args.seed,
                         cric_layout=args.cric_layout, overwrite=args.overwrite)
    for name, path in paths.items():
        print(f"{name}: {path}")


def _scan(args: argparse.Namespace) -> None:
    import pandas as pd

    from aecnn_utils.data.readers import scan_dataset
    from aecnn_utils.data.taxonomy import dataset_summary

    df = scan_dataset(args.dataset, args.root, scheme=args.scheme)
    with pd.option_context("display.width", 160, "display.max_rows", 100):
        print(dataset_summary(df).to_string(index=False))
    print(f"{len(df)} cells, {df['patient_or_slide'].nunique()} groups")


def _cache(args: argparse.Namespace) -> None:
    from aecnn_utils.data.cache import cache_images
    from aecnn_utils.data.readers import scan_dataset

    df = scan_dataset(args.dataset, args.root, scheme=args.scheme)
    cached = cache_images(df, args.size, args.cache_dir, on_error=args.on_error)
    print(f"{len(cached)} images of {args.size}px in {cached.array_path}")


def _train(args: argparse.Namespace) -> None:
    from aecnn_utils.experiments import grid as G
    from aecnn_utils.experiments import scores as S
    from aecnn_utils.training.config import profile_config
    from aecnn_utils.training.engine import train_config
    from aecnn_utils.training.prepare import prepare_data

    overrides = parse_overrides(args.set or [])
    for key, value in (("data_root", args.data_root), ("epochs", args.epochs),
                       ("device", args.device),
                       ("seeds", tuple(args.seeds) if args.seeds else None)):
        if value is not None:
            overrides[key] = value
    configs = [profile_config(args.profile, model=model, **overrides) for model in args.models]
    results = {}
    for config in configs:
        results[config.model] = train_config(config, args.runs_dir, if_exists=args.if_exists)
        for r in results[config.model]:
            print(f"{r.run_dir}: test AUC {r.metrics['test']['roc_auc']:.3f}")
    if configs[0].protocol != "kfold":  # scored as a grid: mean over splits and seeds
        scored = G.score_runs(results, prepare_data(configs[0], progress=False))
        print(G.grid_caption(scored, "Trained now"))
        print(G.wide_table(scored, [(s, m.key) for s in scored.grid.settings
                                    for m in S.SCREENING]).to_string(index=False))


def _finetune(args: argparse.Namespace) -> None:
    from aecnn_utils.training.engine import train_run
    from aecnn_utils.training.finetune import check_labelled, finetune_config
    from aecnn_utils.training.prepare import prepare_data

    config = finetune_config(args.run, args.dataset, args.root, cells=args.cells,
                             train=args.train, **parse_overrides(args.set or []))
    check_labelled(config, args.root)
    data = prepare_data(config)
    run = train_run(config, args.runs_dir, data=data)
    m, ci = run.metrics["test"], run.metrics.get("test_ci", {}).get("roc_auc", {})
    sizes = run.metrics["sizes"]
    print(f"{run.run_dir}: fine-tuned ({config.finetune}) from {run.metrics['source_run']} on "
          f"{sizes['train']} cells, epoch {run.metrics['best_epoch']} chosen on {sizes['val']}; "
          f"on {sizes['test']} held-out cells of other slides: AUC {m['roc_auc']:.3f} "
          f"[{ci.get('low', float('nan')):.3f}, {ci.get('high', float('nan')):.3f}], balanced "
          f"accuracy {100 * m['balanced_accuracy']:.1f}%")


def _evaluate(args: argparse.Namespace) -> None:
    from aecnn_utils.deploy.evaluate import evaluate_run, summary_line

    result = evaluate_run(args.run, args.dataset, args.root, args.out, device=args.device,
                          on_error=args.on_error)
    print(summary_line(result))


def _predict(args: argparse.Namespace) -> None:
    from aecnn_utils.deploy.predict import predict, summary_line, write_predictions

    table = predict(args.model, args.images, batch_size=args.batch_size, device=args.device,
                    on_error=args.on_error, progress=False if args.no_progress else None)
    print(summary_line(table, write_predictions(table, args.out)))


def _export(args: argparse.Namespace) -> None:
    import numpy as np

    from aecnn_utils.deploy.export import (
        export_onnx,
        parity,
        read_metadata,
    )
    from aecnn_utils.deploy.quantize import calibration_images, quantize_int8

    path = export_onnx(args.model, args.out)
    size = read_metadata(path)["image_size"]
    check = np.random.default_rng(0).standard_normal((4, 3, size, size)).astype(np.float32)
    print(f"{path}: float32, max |probability difference| to PyTorch "
          f"{parity(args.model, path, check):.1e} on 4 random inputs")
    if args.int8:
        cells = calibration_images(args.model, args.calibration, data_root=args.data_root,
                                   progress=True)
        print(f"{quantize_int8(path, cells)}: int8, calibrated on {len(cells)} training cells "
              "of the run")


def _lazy(name: str) -> Callable[[argparse.Namespace], None]:
    """The grid command ``name``, imported when it runs (``--help`` imports no torch)."""
    def run(args: argparse.Namespace) -> None:
        from aecnn_utils.reporting import commands

        getattr(commands, name)(args)
    return run


def _grid_arguments(p: argparse.ArgumentParser) -> None:
    """The options every grid command shares."""
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="training seeds across datasets (default: "
                        "aecnn_utils.experiments.grid.CROSS_SEEDS of the profile, else its own)")
    p.add_argument("--out", default=None,
                   help="folder to write the table (records CSV, Markdown, LaTeX) and its "
                        "paired comparisons to")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="other config fields")
    _executor_arguments(p)


def _executor_arguments(p: argparse.ArgumentParser) -> None:
    """Where a command's grid trains (aecnn_utils.training.workers)."""
    from aecnn_utils.core.names import EXECUTORS

    g = p.add_argument_group("workers", "train the grid's runs on several processes (submitit)")
    g.add_argument("--executor", default="serial", choices=EXECUTORS,
                   help="serial: here, one after another; local: --workers processes on this "
                        "machine; slurm: one SLURM job per run (a job array)")
    g.add_argument("--workers", type=int, default=1,
                   help="local processes, each with its share of the cores; slurm: array jobs "
                        "running at once (default: %(default)s; slurm: no limit)")
    g.add_argument("--partition", default=None, help="slurm: the partition to submit to")
    g.add_argument("--gpus-per-job", type=int, default=0, help="GPUs of each job")
    g.add_argument("--cpus-per-job", type=int, default=None, help="slurm: CPUs of each job")
    g.add_argument("--timeout-min", type=int, default=240, help="time limit of each job")
    g.add_argument("--slurm", nargs="*", metavar="KEY=VALUE",
                   help="further sbatch parameters of submitit, e.g. account=lab qos=normal")


def _reproduce(args: argparse.Namespace) -> None:
    from aecnn_utils.reporting.reproduce import published_dir, run_notebooks

    executor = None
    if args.executor != "serial":
        import dataclasses

        from aecnn_utils.reporting.commands import executor_of

        executor = dataclasses.asdict(executor_of(args))
    run_notebooks(args.profile, args.data_root, seed=args.seed, device=args.device,
                  only=args.only, publish=published_dir(args.profile) if args.publish else None,
                  params=parse_overrides(args.param or []), executor=executor,
                  retrain=args.retrain)


def _publish_runs(args: argparse.Namespace) -> None:
    from aecnn_utils.data.sources import project_dir
    from aecnn_utils.training.published import publish_runs
    from aecnn_utils.training.runs import default_runs_dir

    runs = Path(args.runs_dir or default_runs_dir()) / args.profile
    folder = project_dir() / "published_runs" / args.profile
    folder.mkdir(parents=True, exist_ok=True)
    print(f"wrote {publish_runs(runs, folder, args.profile, args.data_root)}")


def _claims(args: argparse.Namespace) -> None:
    from aecnn_utils.data.sources import project_dir
    from aecnn_utils.reporting.claims import ledger, ledger_markdown, write_ledger

    folder = Path(args.figures or project_dir() / "figures") / args.profile
    entries = ledger(folder)
    for path in write_ledger(folder, args.profile, entries):
        print(f"wrote {path}")
    print(ledger_markdown(entries, args.profile))


class _NameOf:
    """An argparse ``type`` that accepts a key of a table read from its module when a value is
    given, so that ``--help`` imports no torch."""

    def __init__(self, module: str, table: str) -> None:
        self.module, self.table = module, table

    def __call__(self, value: str) -> str:
        import importlib

        names = list(getattr(importlib.import_module(self.module), self.table))
        if value not in names:
            raise argparse.ArgumentTypeError(
                f"{value!r} is not one of {self.table}: {', '.join(map(repr, names))}")
        return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``aecnn`` command."""
    from aecnn_utils.core.names import (
        CRIC_LAYOUTS,
        FINETUNE_MODES,
        IF_EXISTS,
        MODEL_NAMES,
        PROFILE_NAMES,
        SETTINGS,
    )
    from aecnn_utils.data.taxonomy import DATASET_NAMES, SCHEMES

    parser = argparse.ArgumentParser(prog="aecnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate-data", help="write the synthetic datasets (published layouts)")
    p.add_argument("--out", help="target folder (default: data/synthetic/n<N>-seed<S>)")
    p.add_argument("--n-per-class", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cric-layout", choices=CRIC_LAYOUTS, default="official")
    p.add_argument("--overwrite", action="store_true", help="regenerate synthetic data")
    p.set_defaults(func=_generate)

    for name, func, helptext in (("scan", _scan, "summarise a dataset folder"),
                                 ("cache", _cache, "decode and resize a dataset once")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("dataset", choices=DATASET_NAMES)
        p.add_argument("root")
        p.add_argument("--scheme", default="binary", choices=SCHEMES)
        if name == "cache":
            p.add_argument("--size", type=int, default=224)
            p.add_argument("--cache-dir", default=None)
            p.add_argument("--on-error", choices=("raise", "warn"), default="raise")
        p.set_defaults(func=func)

    p = sub.add_parser("train", help="train and evaluate models under a profile")
    p.add_argument("--profile", default="smoke", choices=PROFILE_NAMES)
    p.add_argument("--models", nargs="+", default=["aecnn"], choices=MODEL_NAMES)
    p.add_argument("--data-root", default=None, help="real data folder; default synthetic")
    p.add_argument("--seeds", nargs="*", type=int, help="override the profile's seeds")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--device", default=None, help="auto | cpu | cuda | mps")
    p.add_argument("--runs-dir", default=None, help="default: runs/ of the checkout")
    p.add_argument("--if-exists", default="resume", choices=IF_EXISTS)
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                   help="any config field, e.g. --set lr=0.01 protocol=within train=[herlev] "
                        "augment.p_noise=0.5 model_kwargs.attention=channel")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="score a finished run on a dataset folder (a lab's own "
                                        "cells, or cells the kit never saw)")
    p.add_argument("run", help="run folder (runs/<profile>/<run-id>) or its best.pt")
    p.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    p.add_argument("--root", required=True, help="the dataset's folder, in its published layout")
    p.add_argument("--out", default=None, help="output folder (default: <run>/evaluate/...)")
    p.add_argument("--device", default="auto")
    p.add_argument("--on-error", choices=("raise", "warn"), default="raise",
                   help="unreadable images: stop, or skip them with a warning")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("finetune", help="fine-tune a finished run on a lab's labelled cells "
                                        "(any layout the readers accept); writes a run folder")
    p.add_argument("run", help="the source run folder (runs/<profile>/<run-id>) or its best.pt")
    p.add_argument("--dataset", required=True, choices=DATASET_NAMES,
                   help="the layout of the lab's folder")
    p.add_argument("--root", required=True, help="the lab's folder, in that layout")
    p.add_argument("--cells", type=int, default=0,
                   help="labelled cells to use, whole slides, stratified (default: all)")
    p.add_argument("--train", default="all", choices=FINETUNE_MODES,
                   help="what trains: every weight, the head and BatchNorm, or the head")
    p.add_argument("--runs-dir", default=None, help="default: runs/ of the checkout")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                   help="other config fields, e.g. --set epochs=60 lr=0.01")
    p.set_defaults(func=_finetune)

    p = sub.add_parser("predict", help="classify cell images with a run, checkpoint or exported "
                                       ".onnx; writes one CSV row per image")
    p.add_argument("model", help="run folder (runs/<profile>/<run-id>), its best.pt, or a "
                                 ".onnx written by 'export'")
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    p.add_argument("--out", default="predictions.csv", help="CSV file (default: %(default)s)")
    p.add_argument("--on-error", choices=("raise", "warn"), default="raise",
                   help="unreadable images: stop, or skip them with a warning")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (PyTorch models; "
                                                    ".onnx runs on the CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_predict)

    p = sub.add_parser("export", help="export a finished run to ONNX (probabilities out, "
                                      "preprocessing in its metadata), optionally int8 too")
    p.add_argument("model", help="run folder (runs/<profile>/<run-id>) or its best.pt")
    p.add_argument("--out", default=None, help="ONNX file (default: <run>/model.onnx)")
    p.add_argument("--int8", action="store_true",
                   help="also write <name>.int8.onnx, statically quantised (ONNX Runtime)")
    p.add_argument("--calibration", type=int, default=128,
                   help="training cells that calibrate the int8 model (default: %(default)s)")
    p.add_argument("--data-root", default=None,
                   help="where the run's datasets are, if not where its config.yaml says")
    p.set_defaults(func=_export)

    p = sub.add_parser("tune", help="learning-rate grid per model, chosen on the selection "
                                    "halves; writes <profile>_tuned.yaml in "
                                    "aecnn_utils/training/profiles/")
    p.add_argument("--profile", default="smoke", choices=PROFILE_NAMES)
    p.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    p.add_argument("--lrs", nargs="+", type=float, default=None,
                   help="learning rates (default: the profile's grid, "
                        "aecnn_utils.experiments.tune)")
    p.add_argument("--data-root", default=None, help="real data folder; default synthetic")
    p.add_argument("--runs-dir", default=None, help="default: runs/ of the checkout")
    p.add_argument("--dry-run", action="store_true", help="print the table, record nothing")
    _grid_arguments(p)
    p.set_defaults(func=_lazy("tune_command"))

    p = sub.add_parser("study", help="the cross-dataset study: train (or reuse) every method "
                                     "across datasets and in-domain, print its table")
    p.add_argument("--profile", default="smoke", choices=PROFILE_NAMES)
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   type=_NameOf("aecnn_utils.experiments.study", "METHODS"),
                   help="default: every method of aecnn_utils.experiments.study.METHODS")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    p.add_argument("--no-reference", action="store_true",
                   help="leave out the nucleus-feature reference row")
    p.add_argument("--model", default="aecnn", choices=MODEL_NAMES)
    p.add_argument("--data-root", default=None, help="real data folder; default synthetic")
    p.add_argument("--runs-dir", default=None, help="default: runs/ of the checkout")
    p.add_argument("--dry-run", action="store_true",
                   help="print the table, do not record the chosen recipe in the profile")
    _grid_arguments(p)
    p.set_defaults(func=_lazy("study_command"))

    p = sub.add_parser("ablation", help="the ablations of AECNN's attention and loss: train "
                                        "(or reuse) each across datasets and in-domain, print "
                                        "their table and what they say about the paper's claims")
    p.add_argument("--profile", default="smoke", choices=PROFILE_NAMES)
    p.add_argument("--ablations", nargs="+", default=None, metavar="ABLATION",
                   type=_NameOf("aecnn_utils.experiments.ablation", "ABLATIONS"),
                   help="default: every ablation of aecnn_utils.experiments.ablation.ABLATIONS")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    p.add_argument("--data-root", default=None, help="real data folder; default synthetic")
    p.add_argument("--runs-dir", default=None, help="default: runs/ of the checkout")
    _grid_arguments(p)
    p.set_defaults(func=_lazy("ablation_command"))

    p = sub.add_parser("claims", help="the paper's claims decided from a profile's records "
                                      "(writes figures/<profile>/claims.csv and claims.md)")
    p.add_argument("--profile", default="cpu", choices=PROFILE_NAMES)
    p.add_argument("--figures", default=None, help="figures folder (default: figures/ of the "
                                                   "checkout)")
    p.set_defaults(func=_claims)

    p = sub.add_parser("reproduce", help="run the notebooks headless with papermill")
    p.add_argument("--profile", default="smoke", choices=PROFILE_NAMES)
    p.add_argument("--data-root", default=None, help="real data folder; default synthetic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--only", nargs="*", help="notebook prefixes to run, e.g. 01 02")
    p.add_argument("--publish", action="store_true",
                   help="also write readers' copies (no machine paths, small figures) to "
                        "executed/<profile>/ of the checkout")
    p.add_argument("--param", nargs="*", metavar="KEY=VALUE",
                   help="further notebook parameters (YAML values), e.g. "
                        "'ablations=[\"attention: none\"]'")
    p.add_argument("--retrain", action="store_true",
                   help="train every run here, never the published runs (published_runs/)")
    _executor_arguments(p)
    p.set_defaults(func=_reproduce)

    p = sub.add_parser("publish-runs", help="copy a profile's finished runs (their records, and "
                                            "best.pt of the small models) into published_runs/ "
                                            "and write its MANIFEST.json")
    p.add_argument("--profile", default="cpu", choices=PROFILE_NAMES)
    p.add_argument("--data-root", default=None, help="the data the runs were trained on")
    p.add_argument("--runs-dir", default=None, help="default: runs/ of the checkout")
    p.set_defaults(func=_publish_runs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad data or parameters end with a one-line error and exit code 2."""
    from aecnn_utils.core.errors import (
        MissingDependency,
        NotebookFailed,
        RunInterrupted,
        TrainingDiverged,
    )
    from aecnn_utils.data.errors import DataError

    args = build_parser().parse_args(argv)
    shown = warnings.formatwarning  # a warning prints as one line, without a line of code
    warnings.formatwarning = lambda message, category, *_: f"{category.__name__}: {message}\n"
    try:
        args.func(args)
    except (DataError, FileExistsError, FileNotFoundError, ValueError, NotebookFailed,
            RunInterrupted, TrainingDiverged, MissingDependency) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = shown
    return 0


if __name__ == "__main__":
    sys.exit(main())
