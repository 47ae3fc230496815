"""Ablations that test the paper's claims: which attention, which loss.

The paper says that attention helps, that parallel fusion (Eq. 4) is its design, and that the
hybrid loss (Eq. 5) lowers the error on the minority class ("Theorem 1": focal + weighted CE
against weighted CE alone); it tests none of these. Each ablation here is a config change of
AECNN, trained and scored exactly as the cross-dataset study's methods: across datasets over
the grid's seeds and the profile's repeated splits, in-domain on a grouped SIPaKMeD split.

The ablations are arms of one experiment grid (:func:`ablation_grid`,
:mod:`aecnn_utils.experiments.grid`) whose reference arm is the study's "plain" (the same runs):
AECNN's default ``fast`` layer table at the profile's own learning rate. Each claim is a paired
comparison of two arms (:data:`CLAIMS`), Holm-corrected over the claims of a setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from aecnn_utils.core.names import SETTINGS
from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments import paired as P
from aecnn_utils.experiments import scores as S
from aecnn_utils.experiments import wording as W
from aecnn_utils.training.prepare import PreparedData

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
    # the study's base: the two grids share their runs
    return G.Grid(profile, tuple(G.Arm(n, ABLATIONS[n][1], group=ABLATIONS[n][0])
                                 for n in names), tuple(settings), {},
                  tuple(seeds) if seeds else None)


def minority_metric(data: PreparedData) -> S.Metric | None:
    """Theorem 1's metric: the recall of the class with fewest training cells (sensitivity
    when it is the positive class, else specificity); ``None`` for more than two classes
    (no per-class recall in the grid's metrics)."""
    names = data.class_names
    if len(names) != 2:
        return None
    minority = int(np.argmin(np.asarray(data.train_counts)))
    return S.Metric("recall" if minority == 1 else "specificity")


def ablation_metrics(data: PreparedData) -> tuple[S.Metric, ...]:
    """The ablation table's metrics: the screening ones, sensitivity and specificity at 0.5,
    and the sensitivity of each abnormal publisher class of the report cells."""
    pool = data.frame("pool")
    classes = dict.fromkeys(pool.loc[pool["label"] == 1, "source_class"])
    return (*S.SCREENING, S.Metric("recall"), S.Metric("specificity"),
            *(S.Metric("recall", cls=c) for c in classes))


def ablation_comparisons(result: S.GridResult, data: PreparedData,
                         setting: str = "cross") -> list[P.Comparison]:
    """The :data:`CLAIMS` of ``setting`` as paired comparisons (one Holm family)."""
    minority = minority_metric(data)
    claims = [(a, b, minority.key if m == "minority recall" and minority else m)
              for _, a, b, m in CLAIMS if minority or m != "minority recall"]
    return P.compare_scores([(result.scores[setting, a], result.scores[setting, b], m)
                             for a, b, m in claims
                             if (setting, a) in result.scores and (setting, b) in result.scores],
                            setting)


def ablation_words(result: S.GridResult, comparisons: Sequence[P.Comparison]) -> str:
    """The claims in words, from the paired comparisons: "supported" when shown in the
    claim's favour, "contradicted" when shown against it, else "not shown"; then how long a
    run trained."""
    titles = {(a, b): t for t, a, b, _ in CLAIMS}
    word = {"higher": "supported", "lower": "contradicted", "not shown": "not shown"}
    return "\n".join([*(f"- **{titles[c.first, c.second]}** ({W.SETTING_WORDS[c.setting]}): "
                         f"**{word[c.verdict]}** ({W.words(c, verdict=False)})."
                         for c in comparisons), W.training_line(result)])
