"""The cross-dataset study: each method against the domain gap is an arm of one experiment grid
(:mod:`aecnn_utils.experiments.grid`), trained and scored the same way, across datasets and
in-domain.

Protocol (the profile's): train on SIPaKMeD; choose the epoch, threshold and temperature on the
selection halves of Herlev and report on the other halves, over the profile's repeated splits,
with slide-level intervals and three training seeds per method (``cpu``). The same config is
also trained in-domain (SIPaKMeD, grouped train/validation/test split, one seed), so that the
gap stays visible. Nothing uses Herlev labels for training; methods that look at unlabelled
Herlev images are marked transductive.

The methods train at the profile's own learning rate (never one tuned on Herlev) with AECNN's
default ``fast`` layer table; the "model:" arm trains the other table.
The recipe (:data:`PROCEDURE`) is itself an arm: per split it takes the method with the best
selection-half score and reports that split's report half, so its figure estimates what
"choose the best method" gives, the choice included.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from aecnn_utils.core.names import SETTINGS
from aecnn_utils.data.transforms import AugmentConfig
from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments import paired as P
from aecnn_utils.experiments import scores as S
from aecnn_utils.experiments import wording as W
from aecnn_utils.experiments.paper import PAPER_ABSTRACT
from aecnn_utils.experiments.wording import trained_on_line
from aecnn_utils.models import model_defaults
from aecnn_utils.training.tuned import update_tuned

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
#: The study's metrics: the screening metrics (threshold-free, or at 0.5), and balanced
#: accuracy, sensitivity and specificity at each split's selection-chosen threshold.
CHOSEN_THRESHOLD: tuple[S.Metric, ...] = tuple(
    S.Metric(m, at_threshold=True) for m in ("balanced_accuracy", "recall", "specificity"))
STUDY_METRICS: tuple[S.Metric, ...] = (*S.SCREENING, *CHOSEN_THRESHOLD)


def study_methods() -> list[str]:
    """The study's methods: :data:`METHODS` less the layer table every method already trains
    (AECNN's default; its "model:" arm is the other table)."""
    own = f"model: {model_defaults('aecnn')['layers']} layer table"
    return [m for m in METHODS if m != own]


def study_grid(profile: str, methods: Sequence[str] | None = None, *,
               settings: Sequence[str] = SETTINGS, reference: bool = True,
               seeds: Sequence[int] | None = None) -> G.Grid:
    """The study as a grid: one arm per method (default :func:`study_methods`), the
    nucleus-feature reference (``reference``) and, with two or more non-transductive
    methods, :data:`PROCEDURE`."""
    methods = list(methods or study_methods())
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
    return G.Grid(profile, tuple(arms), tuple(settings), {}, tuple(seeds) if seeds else None)


def study_comparisons(result: S.GridResult, setting: str = "cross") -> list[P.Comparison]:
    """Every arm against plain (and the procedure against plain) on the screening metrics:
    one Holm family."""
    others = [a.name for a in result.grid.arms if a.name != "plain"]
    return P.compare(result, [(a, "plain") for a in others], S.SCREENING, setting)


def study_tables(result: S.GridResult, family: int
                 ) -> dict[str, tuple[str, pd.DataFrame]]:
    """The study's readable tables, stem -> (caption, table): ``study`` with the screening
    metrics (at 0.5 and threshold-free) and the range on new slides, ``study_val_threshold``
    with :data:`CHOSEN_THRESHOLD` where the result was scored with them (:data:`STUDY_METRICS`);
    each caption names its threshold."""
    tables = {}
    for stem, what, metrics in (
            ("study", "The cross-dataset study", S.SCREENING),
            ("study_val_threshold", "The cross-dataset study at the selection threshold",
             CHOSEN_THRESHOLD)):
        if not set(metrics) <= set(result.metrics):
            continue
        columns = [(s, m.key) for s in result.grid.settings for m in metrics]
        table = G.wide_table(result, columns,
                             new_slides="roc_auc" if stem == "study" else None)
        tables[stem] = (G.grid_caption(result, what, family, metrics), table)
    return tables


def study_words(result: S.GridResult, comparisons: Sequence[P.Comparison]) -> str:
    """The study in words, from the records: plain's figure and its range on new slides, each
    paired comparison with plain on AUC, the procedure's nested figure against the choice made
    on all cells (the optimism), and the distance to the paper's abstract."""
    plain = result.estimate("plain", "roc_auc")
    lines = [f"- plain: AUC {W.cell(plain)} across datasets (new slides: "
             f"{W.new_slides_cell(plain)})"
             + (f", {result.estimate('plain', 'roc_auc', 'in_domain').value:.3f} in-domain."
                if ("in_domain", "plain") in result.scores else ".")]
    lines += [f"- {W.words(c)}." for c in comparisons if c.metric == "roc_auc"]
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


def record_study(profile: str, result: S.GridResult) -> Path:
    """Record what most splits chose (:data:`PROCEDURE`) as the ``recipe`` of
    ``<profile>_tuned.yaml``, with the splits' counts. A record, never a reported figure:
    the grids do not read it (:class:`aecnn_utils.experiments.grid.Grid`); ``train`` does."""
    e = result.estimate(PROCEDURE, "roc_auc")
    method = e.chosen[0][0]
    return update_tuned(profile, {"recipe": {
        "method": method, "changes": METHODS[method],
        "splits_chose": {c: n for c, n in e.chosen}, "data": result.data["cross"],
        "why": "the method most splits chose on their selection halves (non-transductive "
               "methods); the study reports the nested figure, never this choice's"}})


def optimism(result: S.GridResult, setting: str = "cross") -> pd.DataFrame:
    """What choosing the method on every cell would have claimed: per metric, the nested
    figure of :data:`PROCEDURE` (each split's own choice, scored on its report half), the
    figure of the one method chosen on all splits' selection halves at once, the difference
    (the optimism of a choice that has seen the report cells) and what each chose."""
    rows = []
    for key, e in result.scores[setting, PROCEDURE].estimates.items():
        rows.append({"metric": key, "nested": e.value, "all_cells": e.all_cells,
                     "optimism": e.all_cells - e.value, "all_cells_choice": e.all_cells_choice,
                     "most_chosen": e.chosen[0][0],
                     "splits_chose": "; ".join(f"{c}: {n}" for c, n in e.chosen)})
    return pd.DataFrame(rows)
