"""Ablations that test the paper's claims: which attention, which loss.

The paper says that attention helps, that parallel fusion (Eq. 4) is its design, and that the
hybrid loss (Eq. 5) lowers the error on the minority class ("Theorem 1": focal + weighted CE
against weighted CE alone); it tests none of these. Each ablation here is a config change of
AECNN, trained and scored exactly as the cross-dataset study's methods
(:func:`aecnn_utils.study.study_config`: across datasets over the profile's seeds and repeated
splits, and in-domain on a grouped SIPaKMeD split), so its rows carry the same intervals.

The ablations are arms of one experiment grid (:func:`ablation_grid`, :mod:`aecnn_utils.grid`)
whose reference arm is the study's "plain" (the same runs): on the ``cpu`` profile AECNN's
``fast`` layer table (:data:`aecnn_utils.study.STUDY_MODEL`: same attention at 28, 14 and 7 px,
a quarter of ``base``'s cost) at the profile's own learning rate. Each claim is a paired
comparison of two arms (:data:`CLAIMS`), Holm-corrected over the claims of a setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import grid as G
from . import metrics as M
from .config import RunConfig
from .data.prepare import PreparedData, prepare_data
from .evaluation import CI_UNIT, softmax, split_halves
from .report import compare_intervals, interval_cell
from .runs import RunResult, results_table
from .study import SETTINGS, STUDY_MODEL, spread_text
from .train import train_config

#: The reference row: AECNN as the paper describes it (parallel fusion, hybrid loss).
REFERENCE = "AECNN (parallel, hybrid)"
#: Ablation name -> (group, config changes against :data:`REFERENCE`).
ABLATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    REFERENCE: ("reference", {}),
    "attention: none": ("attention", {"model_kwargs": {"attention": "none"}}),
    "attention: channel only": ("attention", {"model_kwargs": {"attention": "channel"}}),
    "attention: spatial only": ("attention", {"model_kwargs": {"attention": "spatial"}}),
    "attention: sequential": ("attention", {"model_kwargs": {"attention": "sequential"}}),
    "loss: cross-entropy": ("loss", {"loss": "ce"}),
    "loss: weighted CE": ("loss", {"loss": "weighted_ce"}),
    "loss: focal": ("loss", {"loss": "focal"}),
    "loss: hybrid, gamma=1": ("loss grid", {"gamma": 1.0}),
    "loss: hybrid, gamma=4": ("loss grid", {"gamma": 4.0}),
    "loss: hybrid, alpha=class weights": ("loss grid", {"focal_alpha": "weights"}),
}
#: Model arguments every ablation of a profile shares (the study's).
ABLATION_MODEL = STUDY_MODEL
#: The paper's claims as paired comparisons: (title, first arm, second arm, metric); the
#: metric "minority recall" is the training minority class's recall (Theorem 1's).
CLAIMS: tuple[tuple[str, str, str, str], ...] = (
    ("Theorem 1: hybrid lowers the error on the minority class against weighted CE",
     REFERENCE, "loss: weighted CE", "minority recall"),
    ("Attention helps", REFERENCE, "attention: none", "roc_auc"),
    ("Parallel fusion beats sequential", REFERENCE, "attention: sequential", "roc_auc"),
    ("Channel attention beats none", "attention: channel only", "attention: none", "roc_auc"),
    ("Spatial attention beats none", "attention: spatial only", "attention: none", "roc_auc"),
    ("Hybrid beats cross-entropy", REFERENCE, "loss: cross-entropy", "roc_auc"),
    ("Hybrid beats focal alone", REFERENCE, "loss: focal", "roc_auc"),
)


def ablation_grid(profile: str, names: Sequence[str] | None = None, *,
                  settings: Sequence[str] = SETTINGS,
                  seeds: Sequence[int] | None = None) -> G.Grid:
    """The ablations as a grid: one arm per ablation (default all of :data:`ABLATIONS`)."""
    names = list(names or ABLATIONS)
    for name in names:
        if name not in ABLATIONS:
            raise ValueError(f"ablation {name!r} is not valid; choose one of: "
                             f"{', '.join(ABLATIONS)}")
    model = ABLATION_MODEL.get(profile)
    return G.Grid(profile, tuple(G.Arm(n, ABLATIONS[n][1], group=ABLATIONS[n][0])
                                 for n in names), tuple(settings),
                  {"model_kwargs": model} if model else {}, tuple(seeds) if seeds else None)


def ablation_config(profile: str, name: str, setting: str = "cross",
                    **overrides: Any) -> RunConfig:
    """The config of ablation ``name`` in ``setting`` (``cross`` or ``in_domain``), as the
    ablation grid trains it; ``overrides`` go to every config (``seeds``: the grid's)."""
    seeds = overrides.pop("seeds", None)
    grid = ablation_grid(profile, [name], settings=(setting,), seeds=seeds)
    return grid.config(grid.arm(name), "", setting, **overrides)


def minority_metric(data: PreparedData) -> G.Metric | None:
    """Theorem 1's metric: the recall of the class with fewest training cells (sensitivity
    when it is the positive class, else specificity); ``None`` for more than two classes
    (no per-class recall in the grid's metrics)."""
    names = data.class_names
    if len(names) != 2:
        return None
    minority = int(np.argmin(np.asarray(data.train_counts)))
    return G.Metric("recall" if minority == 1 else "specificity")


def ablation_metrics(data: PreparedData) -> tuple[G.Metric, ...]:
    """The ablation table's metrics: the screening ones, sensitivity and specificity at 0.5,
    and the sensitivity of each abnormal publisher class of the report cells."""
    pool = data.frame("pool")
    classes = dict.fromkeys(pool.loc[pool["label"] == 1, "source_class"])
    return (*G.SCREENING, G.Metric("recall"), G.Metric("specificity"),
            *(G.Metric("recall", cls=c) for c in classes))


def ablation_comparisons(result: G.GridResult, data: PreparedData,
                         setting: str = "cross") -> list[G.Comparison]:
    """The :data:`CLAIMS` of ``setting`` as paired comparisons (one Holm family)."""
    minority = minority_metric(data)
    claims = [(a, b, minority.key if m == "minority recall" and minority else m)
              for _, a, b, m in CLAIMS if minority or m != "minority recall"]
    return G.compare_scores([(result.scores[setting, a], result.scores[setting, b], m)
                             for a, b, m in claims
                             if (setting, a) in result.scores and (setting, b) in result.scores],
                            setting)


def ablation_words(comparisons: Sequence[G.Comparison]) -> str:
    """The claims in words, from the paired comparisons: "supported" when shown in the
    claim's favour, "contradicted" when shown against it, else "not shown"."""
    titles = {(a, b): t for t, a, b, _ in CLAIMS}
    word = {"higher": "supported", "lower": "contradicted", "not shown": "not shown"}
    return "\n".join(f"- **{titles[c.first, c.second]}** ({G.SETTING_WORDS[c.setting]}): "
                     f"{word[c.verdict]}; {G.words(c)}." for c in comparisons)


def run_ablations(profile: str, names: Sequence[str] | None = None,
                  runs_dir: str | Path | None = None, *, settings: Sequence[str] = SETTINGS,
                  progress: bool = True, epoch_bars: bool = False,
                  **overrides: Any) -> dict[str, dict[str, list[RunResult]]]:
    """Train (or reuse) every ablation in every setting; ``{setting: {name: runs}}``.
    ``overrides`` go to every config (e.g. ``data_root``)."""
    jobs = [(setting, name) for name in (names or ABLATIONS) for setting in settings]
    out: dict[str, dict[str, list[RunResult]]] = {setting: {} for setting in settings}
    for setting, name in tqdm(jobs, desc="ablations", disable=not progress):
        config = ablation_config(profile, name, setting, **overrides)
        out[setting][name] = train_config(config, runs_dir, progress=epoch_bars)
    return out


def ablation_data(profile: str, settings: Sequence[str] = SETTINGS,
                  **overrides: Any) -> dict[str, PreparedData]:
    """The prepared cells of each setting (every ablation of a setting shares them)."""
    return {setting: prepare_data(ablation_config(profile, REFERENCE, setting, **overrides))
            for setting in settings}


def scorings(run: RunResult, data: PreparedData, halves: dict | None = None
             ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each scoring of a run: the class probabilities of its chosen epoch on the pool and the
    report rows: every repeated split (its own epoch, :mod:`aecnn_utils.evaluation`), or the
    configured split. ``halves`` keeps the report rows of each split seed across calls (the
    runs of one setting share their splits; drawing one takes a second)."""
    if run.metrics.get("data_fingerprint") != data.fingerprint:
        raise ValueError(f"{run.run_dir.name} was trained on other cells than the data given "
                         f"({run.metrics.get('data_fingerprint')} != {data.fingerprint})")
    logits = np.load(run.run_dir / "epochs.npz")["logits"]
    pool = data.frame("pool")
    if "splits" in run.metrics:
        halves = {} if halves is None else halves
        out = []
        for s in run.metrics["splits"]["per_split"]:
            key = (data.fingerprint, run.config.val, run.config.val_fraction, s["split_seed"])
            if key not in halves:
                halves[key] = split_halves(run.config, pool, s["split_seed"])[1]
            out.append((softmax(logits[s["best_epoch"] - 1]), halves[key]))
        return out
    return [(softmax(logits[run.metrics["best_epoch"] - 1]), np.asarray(data.index["test"]))]


def class_sensitivity(runs: Sequence[RunResult], data: PreparedData, n_boot: int = 1000,
                      halves: dict | None = None, seed: int = 0
                      ) -> dict[str, dict[str, float]]:
    """Sensitivity at 0.5 for each abnormal publisher class of the report cells: per seed the
    mean over its scorings (:func:`scorings`) and the 95% interval of that mean from a
    bootstrap over slides (:func:`aecnn_utils.metrics.bootstrap_mean_ci`); over seeds the mean, the
    sd and the seeds' bounds averaged (as :func:`aecnn_utils.runs.results_table` does)."""
    pool = data.frame("pool")
    labels, groups = pool["label"].to_numpy(), pool[CI_UNIT].to_numpy()
    classes = list(dict.fromkeys(pool.loc[pool["label"] == 1, "source_class"]))
    per_run = [scorings(r, data, halves) for r in runs]
    out = {}
    for cls in classes:
        member = (pool["source_class"] == cls).to_numpy()
        found = []
        for run, scored in zip(runs, per_run, strict=True):
            rows = [r[member[r]] for _, r in scored]
            if not all(len(r) for r in rows):
                continue
            ci = M.bootstrap_mean_ci(labels, [p for p, _ in scored], rows, [None] * len(rows),
                                     groups, ("sensitivity",), n_boot=n_boot,
                                     seed=seed + run.config.seed)
            found.append((ci["sensitivity"]["value"], ci["sensitivity"]["low"],
                          ci["sensitivity"]["high"]))
        if found:
            values = [f[0] for f in found]
            out[cls] = {"mean": float(np.mean(values)),
                        "std": float(np.std(values, ddof=1)) if len(values) > 1 else np.nan,
                        "low": float(np.mean([f[1] for f in found])),
                        "high": float(np.mean([f[2] for f in found]))}
    return out


#: The ablation table's metrics (at 0.5, the report cells): column stem -> results-table name.
ABLATION_METRICS: dict[str, str] = {"auc": "roc_auc", "balanced_accuracy": "balanced_accuracy",
                                    "sensitivity": "recall", "specificity": "specificity"}


def ablation_table(results: dict[str, dict[str, list[RunResult]]],
                   data: dict[str, PreparedData], n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """One row per ablation: its group and, per setting, AUC, balanced accuracy, sensitivity
    and specificity at 0.5 (``<setting>_<stem>`` with ``_std``, ``_low``, ``_high``, as
    :func:`aecnn_utils.runs.results_table`: seeds and repeated splits) and the sensitivity of
    each abnormal publisher class (``<setting>_sens_<class>``, :func:`class_sensitivity`);
    ``<setting>_spread`` says what the sd is over, ``minority`` names the training minority
    class (Theorem 1's) and ``positive`` the class sensitivity is of. ``seed`` offsets the
    bootstrap's draws."""
    table: pd.DataFrame | None = None
    halves: dict = {}
    for setting, runs in results.items():
        numeric = results_table(runs, "test").set_index("model")
        part = pd.DataFrame({f"{setting}_{stem}{suffix}": numeric[f"{metric}{suffix}"]
                             for stem, metric in ABLATION_METRICS.items()
                             for suffix in ("", "_std", "_low", "_high")})
        part[f"{setting}_spread"] = numeric["spread"]
        for name, rs in runs.items():
            for cls, v in class_sensitivity(rs, data[setting], n_boot, halves,
                                            seed).items():
                for key, suffix in (("mean", ""), ("std", "_std"), ("low", "_low"),
                                    ("high", "_high")):
                    part.loc[name, f"{setting}_sens_{cls}{suffix}"] = v[key]
        table = part if table is None else table.join(part, how="outer")
    if table is None:
        raise ValueError("no results to tabulate")
    order = [name for name in ABLATIONS if name in table.index]
    table = table.loc[order]
    table.index.name = "ablation"
    table.insert(0, "group", [ABLATIONS[name][0] for name in table.index])
    first = next(rs[0] for runs in results.values() for rs in runs.values() if rs)
    counts = first.metrics["train_counts"]
    names = first.metrics["class_names"]
    table["minority"], table["positive"] = names[int(np.argmin(counts))], names[-1]
    table["data"], table["profile"] = first.metrics["data"], first.metrics["profile"]
    table["model_kwargs"] = str(first.config.model_kwargs)
    return table.reset_index()


#: Readable names of the ablation table's main columns.
ABLATION_LABELS: dict[str, str] = {
    "cross_auc": "AUC, across", "cross_balanced_accuracy": "Bal. acc., across (%)",
    "cross_sensitivity": "Sens., across (%)", "cross_specificity": "Spec., across (%)",
    "in_domain_auc": "AUC, in-domain", "in_domain_balanced_accuracy": "Bal. acc., in-domain (%)",
    "in_domain_sensitivity": "Sens., in-domain (%)",
    "in_domain_specificity": "Spec., in-domain (%)"}


def format_ablation(table: pd.DataFrame, per_class: bool = False) -> pd.DataFrame:
    """The ablation table as "mean ± sd [low, high]" cells (AUC as a fraction, the rest in %):
    the main metrics, or (``per_class``) the sensitivity of each abnormal class."""
    out = pd.DataFrame({"Ablation": table["ablation"]})
    if per_class:
        columns = {c: f"{c.split('_sens_')[1].replace('_', ' ')}, "
                      f"{'across' if c.startswith('cross') else 'in-domain'} (%)"
                   for c in table if "_sens_" in c and not c.endswith(("_std", "_low", "_high"))}
    else:
        columns = {c: label for c, label in ABLATION_LABELS.items() if c in table}
    for col, label in columns.items():
        scale, digits = (1, 3) if col.endswith("_auc") else (100, 1)
        out[label] = [interval_cell(r, col, digits, scale) for _, r in table.iterrows()]
    return out


def ablation_caption(table: pd.DataFrame) -> str:
    """What the ablation table's cells are, from the table."""
    spreads = spread_text(table)
    return (f"Ablations of AECNN ({table['model_kwargs'].iloc[0] or 'published layer table'}) "
            "regenerated by aecnn-kit, trained and scored as the cross-dataset study's methods: "
            "train SIPaKMeD; across datasets, epoch chosen on Herlev's selection halves and "
            "scored on its report halves; in-domain, a grouped SIPaKMeD split. Metrics at 0.5. "
            f"Cells: mean ± sd [95% interval over slides]; spread: {spreads}.")


def _compare(rows: pd.DataFrame, name: str, other: str, col: str, scale: float = 1.0,
             digits: int = 3) -> tuple[str, str]:
    """``compare_intervals`` of two rows on ``col``, and both as "mean [low, high]"."""
    a, b = rows.loc[name], rows.loc[other]
    side = compare_intervals(a[f"{col}_low"], a[f"{col}_high"], b[f"{col}_low"],
                             b[f"{col}_high"])

    def cell(r: pd.Series) -> str:
        return (f"{scale * r[col]:.{digits}f} [{scale * r[f'{col}_low']:.{digits}f}, "
                f"{scale * r[f'{col}_high']:.{digits}f}]")
    return side, f"{cell(a)} against {cell(b)}"


def ablation_summary(table: pd.DataFrame) -> str:
    """The ablations' answers to the paper's claims, in words generated from the table: each
    claim is "supported" only where the intervals do not overlap in its favour, "contradicted"
    where they do not overlap against it, and otherwise "not shown"."""
    rows = table.set_index("ablation")
    settings = [(s, w) for s, w in (("cross", "across datasets"), ("in_domain", "in-domain"))
                if f"{s}_auc" in rows]
    word = {"higher": "supported", "lower": "contradicted", "not shown": "not shown"}
    lines = []

    def claim(title: str, name: str, other: str, col: str, what: str, scale: float = 1.0,
              digits: int = 3, invert: bool = False) -> None:
        if name not in rows.index or other not in rows.index:
            return
        parts = []
        for setting, where in settings:
            side, numbers = _compare(rows, name, other, f"{setting}_{col}", scale, digits)
            if invert:  # an error: lower is better
                side = {"higher": "lower", "lower": "higher"}.get(side, side)
            parts.append(f"{where} {word[side]} ({what} {numbers})")
        lines.append(f"- **{title}**: " + "; ".join(parts) + ".")

    minority = str(table["minority"].iloc[0])  # its recall: sensitivity or specificity
    recall = "sensitivity" if minority == table["positive"].iloc[0] else "specificity"
    claim(f"Theorem 1 (hybrid lowers the error on the minority class, {minority}, against "
          "weighted CE)", REFERENCE, "loss: weighted CE", recall,
          f"{minority} recall ({recall}) %, hybrid against weighted CE", 100, 1)
    claim("Attention helps", REFERENCE, "attention: none", "auc", "AUC, parallel against none")
    claim("Parallel fusion beats sequential", REFERENCE, "attention: sequential", "auc",
          "AUC, parallel against sequential")
    for single in ("attention: channel only", "attention: spatial only"):
        claim(f"{single.split(': ')[1].capitalize()} beats none", single, "attention: none",
              "auc", f"AUC, {single.split(': ')[1]} against none")
    grid = [n for n in rows.index if ABLATIONS[n][0] in ("loss", "loss grid") or n == REFERENCE]
    for setting, where in settings:
        aucs = rows.loc[grid, f"{setting}_auc"]
        lines.append(f"- Loss and its gamma/alpha ({len(grid)} settings) {where}: AUC from "
                     f"{aucs.min():.3f} ({aucs.idxmin()}) to {aucs.max():.3f} "
                     f"({aucs.idxmax()}).")
    return "\n".join(lines)
