"""The cross-dataset study: each method against the domain gap is an arm of one experiment grid
(:mod:`aecnn_utils.grid`), trained and scored the same way, across datasets and in-domain.

Protocol (the profile's): train on SIPaKMeD; choose the epoch, threshold and temperature on the
selection halves of Herlev and report on the other halves, over the profile's repeated splits,
with slide-level intervals and three training seeds per method (``cpu``). The same config is
also trained in-domain (SIPaKMeD, grouped train/validation/test split, one seed), so that the
gap stays visible. Nothing uses Herlev labels for training; methods that look at unlabelled
Herlev images are marked transductive.

The methods train at the profile's own learning rate (never one tuned on Herlev) and, on the
``cpu`` profile, with AECNN's ``fast`` layer table (:data:`STUDY_MODEL`: a quarter of the cost,
so that 15 methods x 3 seeds fit a 2-core CPU); the "model:" arm trains the other table.
The recipe (:data:`PROCEDURE`) is itself an arm: per split it takes the method with the best
selection-half score and reports that split's report half, so its figure estimates what
"choose the best method" gives, the choice included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import grid as G
from .config import MONITORS, RunConfig, update_tuned
from .data.transforms import AugmentConfig
from .morphology import fit_reference
from .report import (
    PAPER_ABSTRACT,
    compare_intervals,
    interval_cell,
    trained_on,
    trained_on_line,
)
from .runs import RunResult, results_table
from .train import train_config
from .tune import selection_score

#: Method name -> config changes. "plain" is the profile as it is.
METHODS: dict[str, dict[str, Any]] = {
    "plain": {},
    "scale: cell extent": {"resize_mode": "cell"},
    "scale: nucleus extent": {"resize_mode": "nucleus"},
    "scale: random zoom": {"augment": {"p_zoom": 0.5}},
    "stain: HED jitter": {"augment": {"p_stain": 0.8, "stain_scale": 0.1}},
    "stain: Macenko": {"stain_norm": "macenko"},
    "stain: Reinhard": {"stain_norm": "reinhard"},
    "input: grey": {"input_mode": "grey"},
    "input: haematoxylin": {"input_mode": "haematoxylin"},
    "augment: no elastic": {"augment": {"p_elastic": 0.0}},
    "augment: strong + mixup": {"augment": dict(vars(AugmentConfig.strong())), "mixup": 0.2},
    "test: flip TTA": {"tta": True},
    "test: AdaBN": {"adapt_bn": True},
    "model: fast layer table": {"model_kwargs": {"layers": "fast"}},
    "model: base layer table": {"model_kwargs": {"layers": "base"}},
}
#: Methods that use the unlabelled target (Herlev) images: their results are transductive.
TRANSDUCTIVE: tuple[str, ...] = ("test: AdaBN",)
#: The nucleus-feature reference's row name.
REFERENCE = "nucleus features (logistic regression)"
#: The arm that chooses its method per split on the selection half (the recipe procedure).
PROCEDURE = "method chosen per split"
#: Model arguments of every method, by profile (others: the published ``base`` table).
STUDY_MODEL: dict[str, dict[str, Any]] = {"cpu": {"layers": "fast"}}
IN_DOMAIN = G.IN_DOMAIN
SETTINGS: tuple[str, ...] = tuple(G.SETTINGS)
CROSS_SEEDS = G.CROSS_SEEDS


def study_methods(profile: str) -> list[str]:
    """The methods of ``profile``'s study: :data:`METHODS` less the layer table the profile
    already trains (its "model:" arm is the other table)."""
    own = f"model: {STUDY_MODEL.get(profile, {}).get('layers', 'base')} layer table"
    return [m for m in METHODS if m != own]


def study_grid(profile: str, methods: Sequence[str] | None = None, *,
               settings: Sequence[str] = SETTINGS, reference: bool = True,
               seeds: Sequence[int] | None = None) -> G.Grid:
    """The study as a grid: one arm per method (default :func:`study_methods`), the
    nucleus-feature reference (``reference``) and, with two or more non-transductive
    methods, :data:`PROCEDURE`."""
    methods = list(methods or study_methods(profile))
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"method={method!r} is not valid; choose one of: "
                             f"{', '.join(METHODS)}")
    arms = [G.Arm(m, METHODS[m], transductive=m in TRANSDUCTIVE,
                  group=m.split(":")[0] if ":" in m else m) for m in methods]
    inductive = {m: METHODS[m] for m in methods if m not in TRANSDUCTIVE}
    if len(inductive) > 1:
        arms.append(G.Arm(PROCEDURE, candidates=inductive, group="procedure"))
    if reference:
        arms.append(G.Arm(REFERENCE, group="reference", reference=True))
    model = STUDY_MODEL.get(profile)
    return G.Grid(profile, tuple(arms), tuple(settings),
                  {"model_kwargs": model} if model else {},
                  tuple(seeds) if seeds else None)


def study_config(profile: str, method: str, setting: str = "cross",
                 **overrides: Any) -> RunConfig:
    """The config of one method in one setting (``cross`` or ``in_domain``), as the study's
    grid trains it; across datasets the grid's seeds unless ``overrides`` name ``seeds``."""
    if setting not in SETTINGS:
        raise ValueError(f"setting={setting!r} is not valid; choose one of: "
                         f"{', '.join(SETTINGS)}")
    seeds = overrides.pop("seeds", None)
    grid = study_grid(profile, [method], settings=(setting,), reference=False, seeds=seeds)
    return grid.config(grid.arm(method), "", setting, **overrides)


def study_comparisons(result: G.GridResult, setting: str = "cross") -> list[G.Comparison]:
    """Every arm against plain (and the procedure against plain) on the screening metrics:
    one Holm family."""
    others = [a.name for a in result.grid.arms if a.name != "plain"]
    return G.compare(result, [(a, "plain") for a in others], G.SCREENING, setting)


def study_words(result: G.GridResult, comparisons: Sequence[G.Comparison]) -> str:
    """The study in words, from the records: plain's figure and its range on new slides, each
    paired comparison with plain on AUC, the procedure's nested figure against the choice made
    on all cells (the optimism), and the distance to the paper's abstract."""
    plain = result.estimate("plain", "roc_auc")
    lines = [f"- plain: AUC {G.cell(plain)} across datasets (new slides: "
             f"{G.new_slides_cell(plain)})"
             + (f", {result.estimate('plain', 'roc_auc', 'in_domain').value:.3f} in-domain."
                if ("in_domain", "plain") in result.scores else ".")]
    lines += [f"- {G.words(c)}." for c in comparisons if c.metric == "roc_auc"]
    if ("cross", PROCEDURE) in result.scores:
        e = result.estimate(PROCEDURE, "roc_auc")
        top = ", ".join(f"{c} ({n})" for c, n in e.chosen[:3])
        lines.append(
            f"- Choosing the method per split on its selection half (most chosen: {top}) "
            f"gives AUC {e.value:.3f} [{e.low:.3f}, {e.high:.3f}] on the report halves; "
            f"choosing it once on every split's selection halves ({e.all_cells_choice}), as the "
            f"kit did before, gives {e.all_cells:.3f}: {e.all_cells - e.value:+.3f} of "
            "optimism from a choice that has seen the report cells.")
        sens = result.estimate(PROCEDURE, "sens_at_spec95")
        paper = PAPER_ABSTRACT
        lines.append(f"- Against the paper's abstract (CRIC, AUC {paper['roc_auc']}, "
                     f"sensitivity {paper['sensitivity']:.2f}% at specificity "
                     f"{paper['specificity']:.2f}%): AUC {e.value - paper['roc_auc']:+.3f}; "
                     f"sensitivity at 95% specificity {100 * sens.value:.1f}% "
                     f"({100 * sens.value - paper['sensitivity']:+.1f} points).")
    frame = result.frame()
    cross = frame[(frame["setting"] == "cross") & (frame["metric"] == "roc_auc")]
    lines.append(trained_on_line(zip(cross["arm"], cross["device"], strict=True),
                                 " (across datasets)"))
    return "\n".join(lines)


def record_study(profile: str, result: G.GridResult) -> Path:
    """Record what most splits chose (:data:`PROCEDURE`) as the ``recipe`` of
    ``<profile>_tuned.yaml``, with the splits' counts. A record, never a reported figure:
    the grids do not read it (:class:`aecnn_utils.grid.Grid`); ``train`` does."""
    e = result.estimate(PROCEDURE, "roc_auc")
    method = e.chosen[0][0]
    return update_tuned(profile, {"recipe": {
        "method": method, "changes": METHODS[method],
        "splits_chose": {c: n for c, n in e.chosen}, "data": result.data["cross"],
        "why": "the method most splits chose on their selection halves (non-transductive "
               "methods); the study reports the nested figure, never this choice's"}})


def run_study(profile: str, methods: Sequence[str] | None = None,
              runs_dir: str | Path | None = None, *, settings: Sequence[str] = SETTINGS,
              reference: bool = True, progress: bool = True, epoch_bars: bool = False,
              **overrides: Any) -> dict[str, dict[str, list[RunResult]]]:
    """Train (or reuse) every method in every setting; ``{setting: {method: runs}}``.

    ``reference`` adds the nucleus-feature classifier (:mod:`aecnn_utils.morphology`) as a
    row. ``overrides`` go to every config (e.g. ``data_root``, ``model``). ``progress`` shows
    one bar over the study's runs; ``epoch_bars`` also each run's epoch bars (the command
    line; a notebook kernel chokes on that many updates).
    """
    jobs = [(setting, method) for setting in settings for method in
            [*(methods or study_methods(profile)), *([REFERENCE] if reference else [])]]
    out: dict[str, dict[str, list[RunResult]]] = {setting: {} for setting in settings}
    for setting, method in tqdm(jobs, desc="study", disable=not progress):
        if method == REFERENCE:
            config = study_config(profile, "plain", setting, **overrides)
            out[setting][method] = [fit_reference(config, runs_dir, progress=epoch_bars)]
        else:
            config = study_config(profile, method, setting, **overrides)
            out[setting][method] = train_config(config, runs_dir, progress=epoch_bars)
    return out


#: The study table's metrics: (column stem, metric, block).
STUDY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("auc", "roc_auc", "test"), ("balanced_accuracy", "balanced_accuracy", "test"),
    ("sens_at_spec95", "sens_at_spec95", "test"), ("auc_seen", "roc_auc", "test_seen"))


def study_table(results: dict[str, dict[str, list[RunResult]]]) -> pd.DataFrame:
    """One row per method: for each setting its AUC, balanced accuracy, sensitivity at 95%
    specificity (and, across datasets, AUC without the classes absent from training), each
    with its spread and interval (``<setting>_<stem>``, ``_std``, ``_low``, ``_high``), the
    selection-half score, mean over seeds and lowest and highest seed
    (``<setting>_selection``, ``_selection_min``, ``_selection_max``), the spread's meaning
    (``<setting>_spread``) and where the runs trained (``<setting>_device``)."""
    table: pd.DataFrame | None = None
    for setting, runs in results.items():
        numeric: dict[str, pd.DataFrame] = {}  # one results table per block
        for block in dict.fromkeys(b for _, _, b in STUDY_COLUMNS
                                   if setting == "cross" or b == "test"):
            with contextlib.suppress(ValueError):  # e.g. no unseen classes: no "_seen" block
                numeric[block] = results_table(runs, block).set_index("model")
        part = pd.DataFrame({f"{setting}_{stem}{suffix}": numeric[block][f"{metric}{suffix}"]
                             for stem, metric, block in STUDY_COLUMNS if block in numeric
                             for suffix in ("", "_std", "_low", "_high")})
        part[f"{setting}_spread"] = numeric["test"]["spread"]
        part[f"{setting}_device"] = pd.Series({m: ", ".join(dict.fromkeys(map(trained_on, rs)))
                                               for m, rs in runs.items() if rs})
        scores = {m: [selection_score(r.metrics) for r in rs] for m, rs in runs.items() if rs}
        for suffix, how in (("", np.mean), ("_min", np.min), ("_max", np.max)):
            part[f"{setting}_selection{suffix}"] = pd.Series(
                {m: float(how(v)) for m, v in scores.items()})
        table = part if table is None else table.join(part, how="outer")
    if table is None:
        raise ValueError("no results to tabulate")
    table.index.name = "method"
    table.insert(0, "transductive", [m in TRANSDUCTIVE for m in table.index])
    first = next(rs[0] for runs in results.values() for rs in runs.values() if rs)
    table["data"], table["profile"] = first.metrics["data"], first.metrics["profile"]
    table["monitor"] = first.config.monitor
    order = [m for m in (*METHODS, REFERENCE) if m in table.index]
    return table.loc[order].reset_index()


#: Readable column names of :func:`format_study`.
STUDY_LABELS: dict[str, str] = {
    "cross_auc": "AUC, across datasets",
    "cross_sens_at_spec95": "Sens. @ 95% spec., across (%)",
    "cross_balanced_accuracy": "Bal. acc., across (%)",
    "cross_auc_seen": "AUC, across, seen classes only", "in_domain_auc": "AUC, in-domain",
    "in_domain_balanced_accuracy": "Bal. acc., in-domain (%)"}


def spread_text(table: pd.DataFrame) -> str:
    """What a study-like table's sd is over, per setting (its ``<setting>_spread`` columns)."""
    return "; ".join(f"{where}: {', '.join(sorted(set(table[f'{setting}_spread'].dropna())))}"
                     for setting, where in (("cross", "across datasets"),
                                            ("in_domain", "in-domain"))
                     if f"{setting}_spread" in table)


def study_caption(table: pd.DataFrame) -> str:
    """What the study table's cells are, from the table (how many seeds, splits, where)."""
    spreads = spread_text(table)
    return ("The cross-dataset study regenerated by aecnn-kit: train SIPaKMeD; across datasets "
            "choose epoch and threshold on Herlev's selection halves and report on its report "
            "halves; in-domain: a grouped SIPaKMeD split. Cells: mean ± sd [95% interval over "
            f"slides]; spread: {spreads}.")


def format_study(table: pd.DataFrame) -> pd.DataFrame:
    """The study table as "mean ± sd [low, high]" cells (AUC as is, the rest in %)."""
    out = pd.DataFrame({"Method": [m + (" (transductive)" if t else "") for m, t in
                                   zip(table["method"], table["transductive"], strict=True)]})
    for col, label in STUDY_LABELS.items():
        if col not in table:
            continue
        scale, digits = (1, 3) if col.endswith(("_auc", "_auc_seen")) else (100, 1)

        def cell(r: pd.Series, col: str = col, scale: int = scale, digits: int = digits) -> str:
            return interval_cell(r, col, digits, scale)
        out[label] = table.apply(cell, axis=1)
    return out


def best_method(table: pd.DataFrame) -> str:
    """The non-transductive method with the best cross-dataset score on the selection halves
    (the profile's monitor, highest or lowest as it asks; the report halves play no part)."""
    candidates = table[~table["transductive"] & (table["method"] != REFERENCE)]
    scores = candidates["cross_selection"]
    lowest = MONITORS[str(table["monitor"].iloc[0])] == "min"  # e.g. the validation loss
    return str(candidates.loc[scores.idxmin() if lowest else scores.idxmax(), "method"])


def study_summary(table: pd.DataFrame) -> str:
    """The study in words, from the table: each method against ``plain`` across datasets (a
    difference whose intervals overlap is "not shown"), the method chosen on the selection
    halves, and the distance to the paper's abstract figures."""
    rows = table.set_index("method")
    base = rows.loc["plain"]

    def cell(r: pd.Series, stem: str, digits: int = 3) -> str:
        return (f"{r[f'cross_{stem}']:.{digits}f} [{r[f'cross_{stem}_low']:.{digits}f}, "
                f"{r[f'cross_{stem}_high']:.{digits}f}]")

    lines = [f"- plain: AUC {cell(base, 'auc')} across datasets, "
             f"{base['in_domain_auc']:.3f} in-domain."]
    for method, r in rows.drop(index="plain").iterrows():
        side = compare_intervals(r["cross_auc_low"], r["cross_auc_high"],
                                 base["cross_auc_low"], base["cross_auc_high"])
        verdict = {"higher": "better", "lower": "worse"}.get(side, side)
        tag = " (transductive)" if r["transductive"] else ""
        gain = r["cross_auc"] - base["cross_auc"]
        lines.append(f"- {method}{tag}: AUC {cell(r, 'auc')} ({gain:+.3f} vs plain: {verdict}); "
                     f"in-domain {r['in_domain_auc']:.3f}.")
    best = best_method(table)
    r = rows.loc[best]
    paper = PAPER_ABSTRACT
    auc_gap = r["cross_auc"] - paper["roc_auc"]
    sens_gap = 100 * r["cross_sens_at_spec95"] - paper["sensitivity"]
    lines.append(f"- Chosen on the selection halves: **{best}**: report-half AUC "
                 f"{r['cross_auc']:.3f} ({auc_gap:+.3f} against the paper's abstract, "
                 f"{paper['roc_auc']} on CRIC) and sensitivity "
                 f"{100 * r['cross_sens_at_spec95']:.1f}% at 95% specificity ({sens_gap:+.1f} "
                 f"points against the paper's {paper['sensitivity']:.2f}% at "
                 f"{paper['specificity']:.2f}%).")
    lines.append(trained_on_line(((method, device) for method, device
                                  in rows["cross_device"].items()), " (across datasets)"))
    return "\n".join(lines)
