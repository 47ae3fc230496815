"""The cross-dataset study: each method against the domain gap is a config change, trained and
scored the same way, across datasets and in-domain.

Protocol (the profile's): train on SIPaKMeD; choose the epoch and threshold on the selection
halves of Herlev and report on the other halves, over the profile's repeated splits, with
slide-level intervals. The same config is also trained in-domain (SIPaKMeD, grouped
train/validation/test split), so that the gap stays visible. Nothing uses Herlev labels for
training; methods that look at unlabelled Herlev images are listed in :data:`TRANSDUCTIVE`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .config import MONITORS, RunConfig, profile_config, update_tuned
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
}
#: Methods that use the unlabelled target (Herlev) images: their results are transductive.
TRANSDUCTIVE: tuple[str, ...] = ("test: AdaBN",)
#: The nucleus-feature reference's row name.
REFERENCE = "nucleus features (logistic regression)"
#: In-domain: one SIPaKMeD split, grouped by cluster image, 60/20/20.
IN_DOMAIN: dict[str, Any] = {"protocol": "within", "train": ("sipakmed",), "val_fraction": 0.2,
                             "test_fraction": 0.2, "n_splits": 1}
SETTINGS: tuple[str, ...] = ("cross", "in_domain")
#: Training seeds of every method across datasets, by profile (others: the profile's seeds).
#: On the cpu profile one seed's training noise is as large as the methods' effects, so each
#: method is trained three times and compared on the mean (in-domain: the profile's seeds).
CROSS_SEEDS: dict[str, tuple[int, ...]] = {"cpu": (0, 1, 2)}


def study_config(profile: str, method: str, setting: str = "cross",
                 **overrides: Any) -> RunConfig:
    """The config of one method in one setting (``cross`` or ``in_domain``); across datasets
    it trains the seeds of :data:`CROSS_SEEDS` unless ``overrides`` name ``seeds``."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not valid; choose one of: {', '.join(METHODS)}")
    if setting not in SETTINGS:
        raise ValueError(f"setting={setting!r} is not valid; choose one of: "
                         f"{', '.join(SETTINGS)}")
    extra = IN_DOMAIN if setting == "in_domain" else {}
    if setting == "cross" and profile in CROSS_SEEDS:
        overrides = {"seeds": CROSS_SEEDS[profile], **overrides}
    return profile_config(profile, recipe=False, **{**overrides, **METHODS[method], **extra})


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
            [*(methods or METHODS), *([REFERENCE] if reference else [])]]
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


def adopted_method(table: pd.DataFrame) -> str:
    """The method the profile adopts: :func:`best_method` if *every* seed of it scores better
    on the selection halves than every seed of "plain", else "plain". With three seeds each,
    two equally good methods pass this by chance once in 20 (an exact one-sided rank test,
    1 / C(6, 3)): a method is not made the default on training noise. With one seed it is
    simply "better than plain"."""
    best = best_method(table)
    rows = table.set_index("method")
    if best == "plain" or "plain" not in rows.index:
        return best
    lowest = MONITORS[str(table["monitor"].iloc[0])] == "min"
    b, p = rows.loc[best], rows.loc["plain"]
    beats = (b["cross_selection_max"] < p["cross_selection_min"] if lowest
             else b["cross_selection_min"] > p["cross_selection_max"])
    return best if beats else "plain"


def record_recipe(profile: str, table: pd.DataFrame) -> Path:
    """Record the method :func:`adopted_method` chose (with every method's selection scores)
    as the ``recipe`` of ``<profile>_tuned.yaml``: :func:`aecnn_utils.config.profile_config`
    then applies its changes to every model of the profile. "plain" records no change."""
    adopted = adopted_method(table)
    scores = table[~table["transductive"] & (table["method"] != REFERENCE)]
    return update_tuned(profile, {"recipe": {
        "method": adopted, "changes": METHODS[adopted], "best_on_selection": best_method(table),
        "selection": {m: [round(float(r[f"cross_selection{k}"]), 6)
                          for k in ("", "_min", "_max")]
                      for m, (_, r) in zip(scores["method"], scores.iterrows(), strict=True)},
        "data": str(table["data"].iloc[0]),
        "why": "best mean selection-half score across datasets (non-transductive methods; "
               "selection: mean, lowest and highest seed), adopted only if every seed beats "
               "every seed of plain; the report halves are not looked at"}})


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
    adopted = adopted_method(table)
    lines.append(f"- Adopted as the profile's recipe: **{adopted}**" + (
        "." if adopted == best else
        f" ({best} did not score better than plain on the selection halves for every seed: "
        f"{r['cross_selection_min']:.3f}-{r['cross_selection_max']:.3f} against "
        f"{base['cross_selection_min']:.3f}-{base['cross_selection_max']:.3f})."))
    lines.append(trained_on_line(((method, device) for method, device
                                  in rows["cross_device"].items()), " (across datasets)"))
    return "\n".join(lines)
