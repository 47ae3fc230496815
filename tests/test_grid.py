"""The experiment grid's statistics on synthetic scores whose truth is known: nested choices stay
unbiased where a choice on all cells does not, paired tests find the differences they should and
no others, Holm's correction, and the new-slides range covers fresh slides."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from aecnn_utils.evaluation import metrics as M
from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments import paired as P
from aecnn_utils.experiments import scores as S
from aecnn_utils.experiments import wording as W


def _cells(rng: np.random.Generator, n_slides: int, per_slide: int) -> pd.DataFrame:
    slides = np.repeat(np.arange(n_slides), per_slide)
    return pd.DataFrame({"label": rng.integers(0, 2, slides.size),
                         "patient_or_slide": slides.astype(str), "source_class": "x"})


def _probs(scores: np.ndarray) -> np.ndarray:
    p = 1.0 / (1.0 + np.exp(-scores))
    return np.stack([1.0 - p, p], axis=1)


def _halves(rng: np.random.Generator, frame: pd.DataFrame, n_splits: int
            ) -> list[tuple[np.ndarray, np.ndarray]]:
    slides = frame["patient_or_slide"].unique()
    out = []
    for _ in range(n_splits):
        chosen = set(rng.permutation(slides)[: slides.size // 2])
        member = frame["patient_or_slide"].isin(chosen).to_numpy()
        out.append((np.flatnonzero(member), np.flatnonzero(~member)))
    return out


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    pred = (p[:, 1] >= 0.5).astype(np.int64)
    return float(M.batch_metrics(y, p, pred, np.ones((1, y.size)), ["roc_auc"])["roc_auc"][0])


def _scorings(frame: pd.DataFrame, probs: np.ndarray,
              halves: list[tuple[np.ndarray, np.ndarray]]) -> list[S.Scoring]:
    y = frame["label"].to_numpy()
    return [S.Scoring(probs, s, r, None, _auc(y[s], probs[s])) for s, r in halves]


def _true_auc(a: float, variance: float = 1.0) -> float:
    """AUC of ``a * y`` plus normal noise of ``variance`` (between cells of different slides:
    the slide effect counts in the variance)."""
    return float(0.5 * math.erfc(-a / math.sqrt(2 * variance) / math.sqrt(2)))


AUC = [S.Metric("roc_auc")]


def test_nested_choice_is_unbiased_where_a_choice_on_all_cells_is_not() -> None:
    """12 candidates of equal true AUC: choosing per split on the selection half and scoring
    the report half estimates the true AUC; choosing once on every split's selection halves
    (every cell among them) and reporting that candidate's report halves is biased upward."""
    a, truth = 1.0, _true_auc(1.0)
    nested, once = [], []
    for rep in range(12):
        rng = np.random.default_rng(rep)
        frame = _cells(rng, 120, 5)
        y = frame["label"].to_numpy()
        halves = _halves(rng, frame, 20)
        candidates = {f"c{k}": [_scorings(frame, _probs(a * y + rng.normal(size=y.size)),
                                          halves)] for k in range(12)}
        scores = S.score_arm("cross", "arm", candidates, frame, AUC, "max", n_boot=2)
        e = scores.estimates["roc_auc"]
        assert sum(n for _, n in e.chosen) == 20 and e.all_cells_choice in candidates
        nested.append(e.value)
        once.append(e.all_cells)
    se_nested = np.std(nested, ddof=1) / math.sqrt(len(nested))
    se_once = np.std(once, ddof=1) / math.sqrt(len(once))
    assert abs(np.mean(nested) - truth) < 3 * se_nested
    assert np.mean(once) - truth > 3 * se_once
    assert np.mean(once) > np.mean(nested)


#: Noise variance of :func:`_two_arms`' scores: slide 0.7², shared cell difficulty 1, own 0.5².
VARIANCE = 0.7 ** 2 + 1.0 + 0.5 ** 2


def _two_arms(seed: int, a_first: float, a_second: float, n_boot: int = 1000
              ) -> tuple[S.ArmScores, S.ArmScores]:
    rng = np.random.default_rng(seed)
    frame = _cells(rng, 80, 6)
    y = frame["label"].to_numpy()
    slide = rng.normal(scale=0.7, size=80)[frame["patient_or_slide"].astype(int).to_numpy()]
    hard = rng.normal(size=y.size)  # what makes a cell hard for every model
    halves = _halves(rng, frame, 20)
    arms = []
    for a in (a_first, a_second):
        probs = _probs(a * y + slide + hard + rng.normal(scale=0.5, size=y.size))
        arms.append(S.score_arm("cross", f"a={a}", {"": [_scorings(frame, probs, halves)]},
                                frame, AUC, "max", n_boot=n_boot, seed=7))
    return arms[0], arms[1]


@pytest.mark.parametrize(("a_first", "a_second", "shown"),
                         [(1.2, 1.2, False), (1.35, 1.2, None), (2.4, 1.0, True)],
                         ids=["zero", "small", "large"])
def test_paired_comparison_finds_a_known_difference(a_first: float, a_second: float,
                                                    shown: bool | None) -> None:
    truth = _true_auc(a_first, VARIANCE) - _true_auc(a_second, VARIANCE)
    first, second = _two_arms(3, a_first, a_second)
    (c,) = P.compare_scores([(first, second, "roc_auc")])
    assert c.low <= truth <= c.high  # the paired interval covers the true difference
    assert c.family == 1 and c.n_splits == 20 and 0 <= c.wins <= 20
    assert math.isclose(c.diff, first.estimates["roc_auc"].value
                        - second.estimates["roc_auc"].value)
    if shown is not None:
        assert c.shown is shown
    if shown:
        assert c.verdict == "higher" and c.wins == 20 and c.low > 0


def test_pairing_narrows_the_interval_of_a_difference() -> None:
    """The paired interval of the difference is narrower than the two arms' intervals are
    apart: pairing removes the slides' shared luck (the old rule threw it away)."""
    first, second = _two_arms(5, 1.4, 1.2)
    (c,) = P.compare_scores([(first, second, "roc_auc")])
    a, b = first.estimates["roc_auc"], second.estimates["roc_auc"]
    assert c.high - c.low < 0.75 * ((a.high - a.low) + (b.high - b.low)) / 2


def test_no_difference_is_rarely_shown() -> None:
    """Equal arms: the paired test calls a difference in at most two of 12 replications
    (5% expected)."""
    calls = 0
    for rep in range(12):
        first, second = _two_arms(100 + rep, 1.2, 1.2, n_boot=300)
        calls += P.compare_scores([(first, second, "roc_auc")])[0].shown
    assert calls <= 2


def test_holm_step_down() -> None:
    adjusted = P.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert P.holm([0.5, 0.9]).max() <= 1.0


def test_holm_family_widens_intervals_and_withholds_weak_calls() -> None:
    first, second = _two_arms(11, 1.4, 1.2)
    (alone,) = P.compare_scores([(first, second, "roc_auc")])
    many = P.compare_scores([(first, second, "roc_auc")] + [(second, second, "roc_auc")] * 9)
    assert many[0].family == 10 and many[0].p == alone.p
    assert many[0].p_holm == pytest.approx(min(1.0, 10 * alone.p))  # the smallest p: rank 0
    se = (alone.high - alone.low) / (2 * 1.959963984540054)
    z = NormalDist().inv_cdf(1 - 0.05 / 10 / 2)  # Holm's level of rank 0 of 10
    assert many[0].holm_high - many[0].holm_low == pytest.approx(2 * z * se)
    assert not any(c.shown for c in many[1:])  # an arm against itself: no difference
    assert all(c.diff == 0 and c.p_holm == 1 for c in many[1:])


def _seed_scorings(frame: pd.DataFrame, halves: list, rng: np.random.Generator,
                   gains: Sequence[float]) -> list[list[S.Scoring]]:
    """One arm "trained with several seeds": each seed's scores separate by its own gain
    (training noise), on the same cells."""
    y = frame["label"].to_numpy()
    return [_scorings(frame, _probs(g * y + frame["hard"].to_numpy()
                                    + rng.normal(scale=0.5, size=y.size)), halves)
            for g in gains]


def _arm_with_seeds(frame: pd.DataFrame, halves: list, rng: np.random.Generator,
                    gains: Sequence[float], name: str) -> S.ArmScores:
    return S.score_arm("cross", name, {"": _seed_scorings(frame, halves, rng, gains)}, frame,
                       AUC, "max", n_boot=300, seed=3)


def test_training_noise_enters_the_paired_test() -> None:
    """Two equal training procedures whose seeds differ as much as real ones do: resampling
    the slides alone would call a difference often; with the seeds resampled too, the test
    keeps to its level."""
    calls = 0
    for rep in range(12):
        rng = np.random.default_rng(300 + rep)
        frame = _cells(rng, 80, 6)
        frame["hard"] = rng.normal(size=len(frame))
        halves = _halves(rng, frame, 10)
        a, b = (_arm_with_seeds(frame, halves, rng, list(rng.normal(1.2, 0.35, 3)), n)
                for n in ("a", "b"))
        calls += P.compare_scores([(a, b, "roc_auc")])[0].shown
    assert calls <= 2


def test_seeds_and_splits_are_not_swapped() -> None:
    """3 seeds x 5 splits: the value and the sds over seeds and over splits are those of the
    report-half scores, computed here by hand."""
    rng = np.random.default_rng(8)
    frame = _cells(rng, 40, 6).assign(hard=0.0)
    halves = _halves(rng, frame, 5)
    seeds = _seed_scorings(frame, halves, rng, [0.5, 1.5, 3.0])
    e = S.score_arm("cross", "a", {"": seeds}, frame, AUC, "max", n_boot=50).estimates["roc_auc"]
    y = frame["label"].to_numpy()
    values = np.array([[_auc(y[s.report_rows], s.probs[s.report_rows]) for s in per_seed]
                       for per_seed in seeds])  # (seeds, splits)
    assert e.n_seeds == 3 and e.n_splits == 5
    assert e.value == pytest.approx(values.mean())
    assert e.sd_seeds == pytest.approx(values.mean(axis=1).std(ddof=1))
    assert e.sd_splits == pytest.approx(values.mean(axis=0).std(ddof=1))
    assert e.sd_seeds > 2 * e.sd_splits  # the gains differ a lot: seeds dominate


def test_arms_scored_on_other_draws_are_not_compared() -> None:
    first, _ = _two_arms(5, 1.4, 1.2, n_boot=100)
    other, _ = _two_arms(6, 1.4, 1.2, n_boot=100)
    with pytest.raises(ValueError, match="different slide draws"):
        P.compare_scores([(first, other, "roc_auc")])


def test_new_slides_range_covers_scores_on_fresh_slides() -> None:
    """Over many collections, the range from one collection's disjoint halves holds about 95%
    of the AUCs that a fresh set of slides (as many as a report half) from the same population
    gives; the interval of the mean, which answers another question, holds far fewer."""
    rng = np.random.default_rng(21)

    def draw(n_slides: int) -> tuple[pd.DataFrame, np.ndarray]:
        frame = _cells(rng, n_slides, 6)
        y = frame["label"].to_numpy()
        ids = frame["patient_or_slide"].astype(int).to_numpy()
        slide = rng.normal(scale=0.8, size=n_slides)[ids]
        gain = rng.normal(1.0, 0.5, size=n_slides)[ids]  # slides separate more or less well
        return frame, _probs(gain * y + slide + rng.normal(size=y.size))

    in_range, in_interval, errors, halves_widths = [], [], [], []
    for _ in range(40):
        frame, probs = draw(80)
        e = S.score_arm("cross", "arm", {"": [_scorings(frame, probs, _halves(rng, frame, 20))]},
                        frame, AUC, "max", n_boot=200).estimates["roc_auc"]
        assert e.new_low < e.low < e.high < e.new_high
        fresh, p = draw(40)
        v = _auc(fresh["label"].to_numpy(), p)
        in_range.append(e.new_low <= v <= e.new_high)
        in_interval.append(e.low <= v <= e.high)
        errors.append(v - e.value)
        halves_widths.append((e.new_high - e.new_low) / 2)
    assert 0.85 <= np.mean(in_range) <= 1.0
    assert np.mean(in_interval) < np.mean(in_range)
    # neither too narrow nor far too wide: the half-width is about 1.96 sd of the errors
    assert 0.75 < np.mean(halves_widths) / (1.96 * np.std(errors)) < 1.33


def test_cells_and_words_come_from_the_records() -> None:
    first, second = _two_arms(5, 2.4, 1.0)
    e = first.estimates["roc_auc"]
    text = W.cell(e)
    assert text.startswith(f"{e.value:.3f} ± {e.sd_splits:.3f} [{e.low:.3f}, {e.high:.3f}]")
    (c,) = P.compare_scores([(first, second, "roc_auc")])
    sentence = W.words(c, {"a=2.4": "strong", "a=1.0": "weak"})
    assert sentence.startswith(f"strong vs weak, AUC: {c.diff:+.3f}")
    assert "higher on 20 of 20 report halves" in sentence and "**higher, shown**" in sentence
    assert W.metric_label("recall@threshold|carcinoma_in_situ") == \
        "Recall (%), at the selection threshold, carcinoma in situ"


def test_candidates_need_the_same_seeds_and_splits() -> None:
    rng = np.random.default_rng(0)
    frame = _cells(rng, 20, 4)
    probs = _probs(frame["label"].to_numpy() + rng.normal(size=len(frame)))
    halves = _halves(rng, frame, 3)
    with pytest.raises(ValueError, match="every candidate needs 1 seeds x 3 splits"):
        S.score_arm("cross", "arm", {"a": [_scorings(frame, probs, halves)],
                                     "b": [_scorings(frame, probs, halves[:2])]},
                    frame, AUC, "max", n_boot=2)


def test_merge_changes_merges_nested_fields() -> None:
    merged = G.merge_changes({"model_kwargs": {"layers": "fast"}, "lr": 0.1},
                             {"model_kwargs": {"attention": "none"}, "lr": 0.2})
    assert merged == {"model_kwargs": {"layers": "fast", "attention": "none"}, "lr": 0.2}


def test_equal_models_share_their_config() -> None:
    grid = G.Grid("smoke", (G.Arm("fast", {"model_kwargs": {"layers": "fast"}}), G.Arm("plain")))
    a, b = (grid.config(arm, "", "cross") for arm in grid.arms)
    assert a.model_kwargs == {} and a.fingerprint() == b.fingerprint()
    assert grid.config(grid.arms[0], "", "in_domain").protocol == "within"
    with pytest.raises(ValueError, match="unique"):
        G.Grid("smoke", (G.Arm("a"), G.Arm("a")))


SMALL = {"image_size": 32, "epochs": 2, "n_splits": 2, "test": ["herlev"], "n_boot": 20,
         "num_workers": 0, "batch_size": 16}


def test_study_grid_along_the_cli_nested_figures_are_the_runs_own(
        synthetic_root, tmp_path, monkeypatch, capsys) -> None:
    """CLI -> grid -> trainer -> files: two methods x two seeds x two splits, in both
    settings. The procedure arm's figure is recomputed here from what the runs stored (each
    split's selection value and report-half AUC in metrics.json)."""
    import yaml

    from aecnn_utils.__main__ import main
    from aecnn_utils.experiments.study import PROCEDURE, REFERENCE, STUDY_METRICS
    from aecnn_utils.training import tuned
    from aecnn_utils.training.runs import load_run

    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tuned, "TUNED_DIR", tmp_path / "profiles")
    argv = ["study", "--profile", "smoke", "--methods", "plain", "input: grey", "--seeds", "0",
            "1", "--data-root", str(synthetic_root), "--runs-dir", str(tmp_path / "runs"),
            "--out", str(tmp_path / "out"), "--set",
            *(f"{k}={v if k != 'test' else '[herlev]'}" for k, v in SMALL.items())]
    assert main(argv) == 0
    records = pd.read_csv(tmp_path / "out" / "study.csv")
    assert (tmp_path / "out" / "study_val_threshold.md").is_file()
    arms = ["plain", "input: grey", PROCEDURE, REFERENCE]
    assert set(records["arm"]) == set(arms)
    assert len(records) == len(arms) * 2 * len(STUDY_METRICS)  # arms x settings x metrics
    cross = records[(records["setting"] == "cross")].set_index(["arm", "metric"])
    assert cross.loc[("plain", "roc_auc"), "n_seeds"] == 2
    assert cross.loc[("plain", "roc_auc"), "n_splits"] == 2
    assert (records[records["setting"] == "in_domain"]["n_seeds"] == 1).all()
    runs = {m: [load_run(p.parent) for p in sorted((tmp_path / "runs" / "smoke").glob(
        "aecnn_sipakmed-herlev-herlev_s*/metrics.json"))
        if load_run(p.parent).config.input_mode == mode] for m, mode in
        (("plain", "rgb"), ("input: grey", "grey"))}
    assert all(len(rs) == 2 for rs in runs.values())
    figures = []
    for j in range(2):  # smoke monitors the validation loss: lowest wins
        loss = {m: np.mean([r.metrics["splits"]["per_split"][j]["selection_value"]
                            for r in rs]) for m, rs in runs.items()}
        pick = min(loss, key=loss.get)
        figures.append(np.mean([r.metrics["splits"]["per_split"][j]["test"]["roc_auc"]
                                for r in runs[pick]]))
    assert cross.loc[(PROCEDURE, "roc_auc"), "value"] == pytest.approx(np.mean(figures))
    plain = np.mean([[s["test"]["roc_auc"] for s in r.metrics["splits"]["per_split"]]
                     for r in runs["plain"]])
    assert cross.loc[("plain", "roc_auc"), "value"] == pytest.approx(plain)
    comparisons = pd.read_csv(tmp_path / "out" / "study_comparisons.csv")
    assert set(comparisons["second"]) == {"plain"} and set(comparisons["family"]) == {9}
    assert (tmp_path / "out" / "study.md").read_text().count("\n|") >= len(arms)
    recipe = yaml.safe_load((tmp_path / "profiles" / "smoke_tuned.yaml").read_text())["recipe"]
    assert sum(recipe["splits_chose"].values()) == 2
    out = capsys.readouterr().out
    assert "optimism from a choice that has seen the report cells" in out


def test_forest_plot_and_numeric_table_of_a_grid(tmp_path) -> None:
    from aecnn_utils.reporting import plots

    first, second = _two_arms(5, 2.4, 1.0, n_boot=200)
    comparisons = P.compare_scores([(first, second, "roc_auc"), (second, first, "roc_auc")])
    fig = plots.plot_comparisons(comparisons, {"a=2.4": "strong"}, notice="synthetic")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["strong - a=1.0",
                                                                     "a=1.0 - strong"]
    assert all(p.exists() for p in plots.save_figure(fig, tmp_path / "forest"))


def test_captions_name_the_threshold_of_their_columns() -> None:
    at_half = W.threshold_words([S.Metric("roc_auc"), S.Metric("accuracy"), S.Metric("f1")])
    assert at_half == ("Scored Accuracy, F1-Score at the threshold 0.5 (AUC and sensitivity at "
                       "95% specificity need none).")
    chosen = W.threshold_words([S.Metric("accuracy", at_threshold=True)])
    assert chosen.startswith("Scored Accuracy at the threshold each run chose on its split's")
    assert W.threshold_words([S.Metric("roc_auc")]).endswith("need no threshold.")
