"""The paper's claims decided: a ledger generated from the records the notebooks wrote.

Each row of the ledger is one claim of the paper (quoted short, with its section), the kit's
test of it (notebook, comparison, data), the measured effect with its 95% interval and a
verdict:

* **holds**: the paired test shows the claimed direction (Holm-corrected within its table), or
  a measurement meets the claim;
* **contradicted**: the paired test shows the opposite direction, the measurement misses the
  claim, or the paper's figure lies outside our 95% interval;
* **not shown**: the interval holds zero (or the paper's figure);
* **not testable here**: what would test it is missing (the reason names it: CRIC, a GPU for
  a model's grid, AEDA's and LAHN's code).

Nothing is typed in: every effect is read from ``figures/<profile>/`` (the records of
notebooks 02 and 04-09, themselves computed from the runs), and a record that is missing makes
its row "not testable here" with the notebook that writes it. The paper's numbers come from
:data:`aecnn_utils.experiments.paper.PAPER_TABLE2` and
:data:`~aecnn_utils.experiments.paper.PAPER_ABSTRACT`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from aecnn_utils.core.formatting import to_markdown
from aecnn_utils.core.io import atomic_write_text
from aecnn_utils.experiments.ablation import CLAIMS
from aecnn_utils.experiments.paper import PAPER_ABSTRACT, PAPER_TABLE2
from aecnn_utils.experiments.tune import arm_label
from aecnn_utils.training.config import PROFILE_NAMES, profile_config

VERDICTS: tuple[str, ...] = ("holds", "contradicted", "not shown", "not testable here")
#: What tests a claim the kit cannot test on this machine's data.
NEEDS_CRIC = "CRIC (not available here) at the paper's 224 px, 150-epoch protocol"
NEEDS_GPU = ("the model's grid (three rates x three seeds), not trained here: a GPU runs it "
             "(`python -m aecnn_utils tune --models resnet50 efficientnet_b3`)")
#: The default AECNN's label in the benchmark's records (notebooks 02 and 06).
AECNN_BENCH = "AECNN (parallel)"
#: The paper's abstract names its metrics by other words than Table 2.
ABSTRACT_KEYS: dict[str, str] = {"sensitivity": "recall"}


@dataclass(frozen=True)
class Entry:
    """One row of the ledger."""

    claim: str
    section: str
    test: str
    effect: str
    value: float
    low: float
    high: float
    verdict: str
    reason: str


class Records:
    """The CSV records of one profile's figures folder, read once each."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._frames: dict[str, pd.DataFrame | None] = {}

    @property
    def protocol(self) -> str:
        """The image size and epochs of the folder's profile (``figures/<profile>``)."""
        if self.folder.name not in PROFILE_NAMES:
            return "the profile's protocol"
        config = profile_config(self.folder.name, recipe=False, tuned=False)
        return f"{config.image_size} px, {config.epochs} epochs"

    def __call__(self, name: str) -> pd.DataFrame | None:
        if name not in self._frames:
            path = self.folder / name
            self._frames[name] = pd.read_csv(path) if path.is_file() else None
        return self._frames[name]


def _missing(claim: str, section: str, test: str, name: str) -> Entry:
    notebook = name[:2]
    return Entry(claim, section, test, "-", math.nan, math.nan, math.nan, "not testable here",
                 f"no record `{name}`: run notebook {notebook} under this profile")


def _fmt(key: str, value: float, signed: bool = False) -> str:
    scale, digits = (1.0, 3) if key.startswith("roc_auc") else (100.0, 1)
    return f"{scale * value:{'+' if signed else ''}.{digits}f}"


def _interval(key: str, low: float, high: float, signed: bool = False) -> str:
    return f"[{_fmt(key, low, signed)}, {_fmt(key, high, signed)}]"


def paper_figures(records: Records, claim: str, section: str,
                  paper: dict[str, float]) -> Entry:
    """The paper's AECNN figures against ours (notebook 04's AECNN row across datasets):
    contradicted when every figure lies outside our 95% interval, holds when every one lies
    inside, not shown otherwise."""
    test = "notebook 04, AECNN trained on SIPaKMeD, scored on Herlev's report halves"
    frame = records("04_table2.csv")
    if frame is None:
        return _missing(claim, section, test, "04_table2.csv")
    rows = frame[(frame["arm"] == "aecnn") & (frame["setting"] == "cross")].set_index("metric")
    parts, outside = [], []
    for name, figure in paper.items():
        key = ABSTRACT_KEYS.get(name, name)
        figure = figure if key == "roc_auc" else figure / 100
        row = rows.loc[key]
        outside.append(not row["low"] <= figure <= row["high"])
        parts.append(f"{key.replace('roc_auc', 'AUC').replace('recall', 'sensitivity')} "
                     f"{_fmt(key, row['value'])} {_interval(key, row['low'], row['high'])} vs "
                     f"{_fmt(key, figure)}")
    auc = rows.loc["roc_auc"]
    verdict = ("contradicted" if all(outside) else "holds" if not any(outside)
               else "not shown")
    where = "above" if paper["roc_auc"] > auc["high"] else "outside"
    reason = (f"{sum(outside)} of {len(outside)} of the paper's figures lie {where} our 95% "
              f"intervals on Herlev ({records.protocol}); its own test, {NEEDS_CRIC}, is not "
              "testable here")
    return Entry(claim, section, test, "; ".join(parts), auc["value"], auc["low"],
                 auc["high"], verdict, reason)


def abstract_agrees(claim: str, section: str) -> Entry:
    """The abstract's AECNN figures against Table 2's (the paper's own numbers)."""
    table = PAPER_TABLE2["aecnn"]
    parts, differ = [], 0
    for name, figure in PAPER_ABSTRACT.items():
        other = table[ABSTRACT_KEYS.get(name, name)]
        differ += figure != other
        parts.append(f"{name.replace('roc_auc', 'AUC')} {figure:g} vs {other:g}")
    same = [m for m, row in PAPER_TABLE2.items() if row["roc_auc"] == PAPER_ABSTRACT["roc_auc"]]
    reason = f"{differ} of {len(PAPER_ABSTRACT)} figures differ" + (
        f"; the abstract's AUC is Table 2's {', '.join(map(arm_label, same))}" if same else "")
    return Entry(claim, section, "the paper's abstract against its Table 2", "; ".join(parts),
                 math.nan, math.nan, math.nan, "contradicted" if differ else "holds", reason)


def comparison(records: Records, claim: str, section: str, name: str, first: str,
               second: str, metric: str, setting: str = "cross",
               missing: str = "", test: str = "") -> Entry:
    """A paired comparison of a grid's table: holds when it shows ``first`` higher,
    contradicted when it shows it lower, else not shown (``missing``: why a row that is not
    in the record cannot be tested here). ``metric`` ``"minority"``: the row of the pair that
    is not AUC (the ablation's minority-class recall)."""
    where = "across datasets" if setting == "cross" else "in-domain (SIPaKMeD)"
    test = test or (f"notebook {name[:2]}, {arm_label(first)} vs {arm_label(second)}, {where}, "
                    "paired slide bootstrap")
    frame = records(name)
    if frame is None:
        return _missing(claim, section, test, name)
    rows = frame[(frame["setting"] == setting) & (frame["first"] == first)
                 & (frame["second"] == second)]
    rows = rows[rows["metric"] != "roc_auc"] if metric == "minority" else rows[
        rows["metric"] == metric]
    if rows.empty:
        return Entry(claim, section, test, "-", math.nan, math.nan, math.nan,
                     "not testable here", missing or f"no comparison in `{name}`")
    c = rows.iloc[0]
    key = str(c["metric"])
    verdict = {"higher": "holds", "lower": "contradicted"}.get(c["verdict"], "not shown")
    label = "AUC" if key == "roc_auc" else f"{key} (points)"
    effect = f"{label} {_fmt(key, c['diff'], True)} {_interval(key, c['low'], c['high'], True)}"
    reason = (f"Holm over {c['family']}: interval "
              f"{_interval(key, c['holm_low'], c['holm_high'], True)}")
    if c["n_splits"] > 1:
        reason += f"; {arm_label(first)} higher on {c['wins']} of {c['n_splits']} report halves"
    return Entry(claim, section, test, effect, c["diff"], c["low"], c["high"], verdict,
                 reason)


def lightweight(records: Records, claim: str, section: str) -> Entry:
    """Parameters and MACs of the default AECNN against ResNet-50, EfficientNet-B3 and
    MobileNetV3-Small at 224 px (notebook 02's complexity record)."""
    test = "notebook 02, parameters and MACs at 224 px"
    frame = records("02_complexity.csv")
    if frame is None:
        return _missing(claim, section, test, "02_complexity.csv")
    rows = frame.set_index("model")
    ours = rows.loc["aecnn"]
    others = [m for m in ("resnet50", "efficientnet_b3", "mobilenet_v3_small") if m in rows.index]
    lighter = {m: ours["params_M"] < rows.loc[m, "params_M"]
               and ours["GMACs"] < rows.loc[m, "GMACs"] for m in others}
    parts = [f"{ours['params_M']:.2f} M parameters, {ours['GMACs']:.3f} GMACs"] + [
        f"{arm_label(m)}: {rows.loc[m, 'params_M']:.2f} M, {rows.loc[m, 'GMACs']:.3f} GMACs"
        for m in others]
    paper = [m for m in others if m != "mobilenet_v3_small"]
    verdict = "holds" if all(lighter[m] for m in paper) else "contradicted"
    heavier = [m for m in others if not lighter[m]]
    reason = ("lighter in both than " + ", ".join(arm_label(m) for m in others if lighter[m])
              + (f"; not lighter than {', '.join(map(arm_label, heavier))}" if heavier else ""))
    return Entry(claim, section, test, "; ".join(parts), ours["params_M"], math.nan,
                 math.nan, verdict, reason)


def speed(records: Records, claim: str, section: str, target: str) -> Entry:
    """A speed target of notebook 06 (measured ratio to MobileNetV3-Small at 224 px, from one
    interleaved benchmark run: no interval): holds when the ratio is at least 1."""
    test = f"notebook 06, {target.split(' >=')[0]} against MobileNetV3-Small at 224 px"
    frame = records("06_targets.csv")
    if frame is None:
        return _missing(claim, section, test, "06_targets.csv")
    rows = frame[(frame["model"] == AECNN_BENCH) & (frame["target"] == target)]
    if rows.empty:
        return Entry(claim, section, test, "-", math.nan, math.nan, math.nan,
                     "not testable here", f"no target {target!r} in `06_targets.csv`")
    ratio = float(rows.iloc[0]["measured"])
    return Entry(claim, section, test, f"{ratio:.2f}x MobileNetV3-Small's images/s", ratio,
                 math.nan, math.nan, "holds" if ratio >= 1 else "contradicted",
                 "median of interleaved repetitions in one run on this CPU (no interval)"
                 + ("; the kit's target is 2x in training" if "training" in target else ""))


def generalises(records: Records, claim: str, section: str) -> Entry:
    """AECNN's AUC across datasets against in-domain (notebook 05's plain arm): contradicted
    when the cross-dataset interval lies wholly below the in-domain one and below the paper's
    cross-dataset AUC."""
    test = "notebook 05, plain AECNN: Herlev report halves against SIPaKMeD's own test cells"
    frame = records("05_study.csv")
    if frame is None:
        return _missing(claim, section, test, "05_study.csv")
    rows = frame[(frame["arm"] == "plain") & (frame["metric"] == "roc_auc")].set_index(
        "setting")
    cross, within = rows.loc["cross"], rows.loc["in_domain"]
    gap = cross["value"] - within["value"]
    below = cross["high"] < within["low"] and cross["high"] < PAPER_TABLE2["aecnn"]["roc_auc"]
    effect = (f"AUC {_fmt('roc_auc', cross['value'])} "
              f"{_interval('roc_auc', cross['low'], cross['high'])} across datasets vs "
              f"{_fmt('roc_auc', within['value'])} "
              f"{_interval('roc_auc', within['low'], within['high'])} in-domain")
    return Entry(claim, section, test, effect, gap, math.nan, math.nan,
                 "contradicted" if below else "not shown",
                 f"the gap is {gap:+.3f}; intervals over slides, not a paired test (other cells)")


def nucleus(records: Records, claim: str, section: str) -> Entry:
    """Where AECNN's spatial attention falls (notebook 08's nucleus ratio at every stage that
    has attention: the map's mass on the nucleus over the nucleus's share of the image, 1 is
    an even map): holds when every stage's interval lies above 1, contradicted when every one
    lies below, not shown otherwise."""
    test = "notebook 08, AECNN's spatial attention on Herlev's report cells (nucleus ratio)"
    frame = records("08_nucleus.csv")
    if frame is None:
        return _missing(claim, section, test, "08_nucleus.csv")
    rows = frame[(frame["model"] == "aecnn") & (frame["source_class"] == "all")
                 & frame["explanation"].str.contains("attention")]
    if rows.empty:
        return Entry(claim, section, test, "-", math.nan, math.nan, math.nan,
                     "not testable here", "no AECNN attention row in `08_nucleus.csv`")
    verdict = ("holds" if (rows["ratio_low"] > 1).all() else
               "contradicted" if (rows["ratio_high"] < 1).all() else "not shown")
    stages = "; ".join(f"{r.explanation.split(', ')[-1]} {r.ratio:.2f} "
                       f"[{r.ratio_low:.2f}, {r.ratio_high:.2f}]" for r in rows.itertuples())
    above, below = int((rows["ratio_low"] > 1).sum()), int((rows["ratio_high"] < 1).sum())
    return Entry(claim, section, test, f"ratio {stages} (1 = an even map)",
                 rows["ratio"].min(), rows["ratio_low"].min(), rows["ratio_high"].max(),
                 verdict, f"of {len(rows)} stages with attention, {above} weight the nucleus "
                 f"above its area and {below} below; {int(rows['n'].max())} cells; the mean "
                 "over cells of each cell's ratio")


def new_lab(records: Records) -> Entry:
    """The finding beyond the paper (notebook 09): from which ``k`` labelled cells fine-tuning
    the SIPaKMeD run beats training from scratch, and the best AUC any method reaches."""
    claim = "Beyond the paper: a lab's own labels; starting from SIPaKMeD beats its cells alone"
    test = "notebook 09, each fine-tune vs scratch at the same k, Herlev report halves"
    comparisons, curve = (records("09_label_efficiency_comparisons.csv"),
                          records("09_label_efficiency.csv"))
    if comparisons is None or curve is None:
        return _missing(claim, "-", test, "09_label_efficiency.csv")
    tuned = comparisons[comparisons["first"].str.startswith("fine-tune")]
    higher = tuned[tuned["verdict"] == "higher"]
    auc = curve[curve["metric"] == "roc_auc"].sort_values("value")
    best = auc.iloc[-1]
    effect = (f"best AUC {_fmt('roc_auc', best['value'])} "
              f"{_interval('roc_auc', best['low'], best['high'])} ({best['arm']})")
    shown = ", ".join(higher["first"]) if len(higher) else ""
    verdict = "holds" if shown else (
        "contradicted" if (tuned["verdict"] == "lower").any() else "not shown")
    reason = (f"shown higher: {shown}" if shown else
              f"no fine-tune shown higher than scratch at any k (Holm over "
              f"{int(tuned['family'].max())})")
    return Entry(claim, "-", test, effect, best["value"], best["low"], best["high"], verdict,
                 reason)


#: The ledger's rows, in order: each a function of the records.
LEDGER: tuple[Callable[[Records], Entry], ...] = (
    lambda r: paper_figures(r, "AECNN scores accuracy 97.63%, AUC 0.986", "Table 2",
                            PAPER_TABLE2["aecnn"]),
    lambda r: paper_figures(r, "AECNN scores sensitivity 92.14%, AUC 0.958 on CRIC", "abstract",
                            PAPER_ABSTRACT),
    lambda r: abstract_agrees("The abstract's figures are Table 2's", "abstract, 5"),
    lambda r: comparison(r, "AECNN outperforms ResNet-50", "5", "04_table2_comparisons.csv",
                         "aecnn", "resnet50", "roc_auc", missing=f"ResNet-50: {NEEDS_GPU}"),
    lambda r: comparison(r, "AECNN outperforms EfficientNet-B3", "5",
                         "04_table2_comparisons.csv", "aecnn", "efficientnet_b3", "roc_auc",
                         missing=f"EfficientNet-B3: {NEEDS_GPU}"),
    lambda r: comparison(r, "Beyond the paper: AECNN vs MobileNetV3-Small", "-",
                         "04_table2_comparisons.csv", "aecnn", "mobilenet_v3_small", "roc_auc"),
    lambda r: Entry("AECNN outperforms AEDA and LAHN by 3.2-5.6%", "abstract", "-", "-",
                    math.nan, math.nan, math.nan, "not testable here",
                    "neither model's code nor weights are published"),
    lambda r: lightweight(r, "Lightweight: lower parameter count and computational cost", "3"),
    lambda r: speed(r, "Lightweight in training time", "3, 6",
                    "training >= 2x MobileNetV3-Small"),
    lambda r: speed(r, "Lightweight at inference (real-time screening)", "abstract, 6",
                    "inference (BN folded) >= MobileNetV3-Small"),
    *(lambda r, c=c, s=s: comparison(
        r, c[0].replace("Theorem 1: hybrid", "Theorem 1: the hybrid loss") + (
            "" if s == "cross" else " (in-domain)"), "3, Eq. 4-7", "07_ablations_comparisons.csv",
        c[1], c[2], "minority" if c[3] == "minority recall" else c[3], s)
      for c in CLAIMS[:3] for s in ("cross", "in_domain")),
    lambda r: generalises(r, "Robust generalisation across datasets", "6"),
    lambda r: nucleus(r, "Attention emphasises the nucleus", "3, 6"),
    new_lab,
)


def ledger(figures: str | Path) -> list[Entry]:
    """Every claim of :data:`LEDGER` decided from the records in ``figures`` (a profile's
    folder, e.g. ``figures/cpu``)."""
    records = Records(figures)
    return [row(records) for row in LEDGER]


def ledger_markdown(entries: Sequence[Entry], profile: str) -> str:
    """The ledger as a caption and a Markdown table."""
    counts = {v: sum(e.verdict == v for e in entries) for v in VERDICTS}
    caption = (f"The paper's claims, decided by aecnn-kit (profile {profile}; generated from "
               f"`figures/{profile}/`): " + ", ".join(f"{n} {v}" for v, n in counts.items())
               + ". Effects are ours with 95% intervals over slides; comparisons are paired "
               "and Holm-corrected within their table.")
    frame = pd.DataFrame([{"Claim (section)": f"{e.claim} ({e.section})", "Test": e.test,
                           "Effect [95%]": e.effect, "Verdict": f"**{e.verdict}**",
                           "Why": e.reason} for e in entries])
    return f"{caption}\n\n{to_markdown(frame)}"


def write_ledger(figures: str | Path, profile: str,
                 entries: Sequence[Entry] | None = None) -> list[Path]:
    """Write ``claims.csv`` (every field) and ``claims.md`` into ``figures`` (``entries``:
    :func:`ledger` of ``figures`` when not given)."""
    figures = Path(figures)
    entries = ledger(figures) if entries is None else entries
    frame = pd.DataFrame([asdict(e) for e in entries]).assign(profile=profile)
    return [atomic_write_text(figures / "claims.csv", frame.to_csv(index=False)),
            atomic_write_text(figures / "claims.md", ledger_markdown(entries, profile))]
