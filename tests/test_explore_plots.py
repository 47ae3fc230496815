"""Exploration statistics, figures and the data-source resolution used by notebook 01."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from aecnn_utils.data.errors import DatasetNotFoundError
from aecnn_utils.data.explore import (
    image_statistics,
    label_counts,
    sample_rows,
    summarize_statistics,
)
from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.data.sources import resolve_data_source
from aecnn_utils.data.synthetic import SYNTHETIC_NOTICE
from aecnn_utils.data.transforms import single_augmentations
from aecnn_utils.reporting import data_plots, plots

from .conftest import SYNTHETIC_PER_CLASS

matplotlib.use("Agg")


def _roots(root: Path) -> dict[str, Path]:
    return {n: root / n for n in ("sipakmed", "herlev", "cric")}


def _frames(root: Path) -> dict[str, pd.DataFrame]:
    return {n: scan_dataset(n, p) for n, p in _roots(root).items()}


def test_label_counts_account_for_every_cell(synthetic_root: Path) -> None:
    counts = label_counts(_frames(synthetic_root))
    assert set(counts["scheme"]) == {"binary", "three_tier", "native"}
    per = counts.groupby(["scheme", "dataset"])["n_cells"].sum()
    assert (per.xs("sipakmed", level="dataset") == 5 * SYNTHETIC_PER_CLASS).all()
    assert (per.xs("herlev", level="dataset") == 7 * SYNTHETIC_PER_CLASS).all()
    excluded = counts[(counts["scheme"] == "three_tier") & (counts["label_name"] == "(excluded)")]
    assert excluded["dataset"].tolist() == ["sipakmed"]
    assert excluded["n_cells"].tolist() == [SYNTHETIC_PER_CLASS]


def test_sample_rows_is_deterministic_and_balanced(synthetic_root: Path) -> None:
    df = scan_dataset("herlev", synthetic_root / "herlev")
    a, b = sample_rows(df, 2, seed=1), sample_rows(df, 2, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert a.groupby("source_class").size().eq(2).all()
    assert not sample_rows(df, 2, seed=2)["path"].equals(a["path"])
    with pytest.raises(ValueError, match="per_class"):
        sample_rows(df, 0)


def test_image_statistics_measure_real_pixels(synthetic_root: Path) -> None:
    df = scan_dataset("cric", synthetic_root / "cric", crop_size=64)
    stats = image_statistics(df, max_per_class=2, progress=False)
    assert len(stats) == 12
    assert (stats["width"] == 64).all() and (stats["height"] == 64).all()
    assert stats[["mean_r", "mean_g", "mean_b"]].stack().between(0, 255).all()
    table = summarize_statistics(stats)
    assert table["n"].sum() == 12


def test_figures_are_written_as_png_and_pdf(synthetic_root: Path, tmp_path: Path) -> None:
    plots.set_style()
    df = scan_dataset("sipakmed", synthetic_root / "sipakmed")
    written = []
    fig = data_plots.plot_label_counts(label_counts(_frames(synthetic_root)), SYNTHETIC_NOTICE)
    written += plots.save_figure(fig, tmp_path / "counts")
    fig = data_plots.plot_sample_grid(df, per_class=3, size=32, notice=SYNTHETIC_NOTICE)
    written += plots.save_figure(fig, tmp_path / "grid")
    stats = image_statistics(df, max_per_class=2, progress=False)
    fig = data_plots.plot_image_statistics(stats)
    shown = {text.get_text() for ax in fig.axes if ax.get_legend()
             for text in [*ax.get_legend().get_texts(), ax.get_legend().get_title()]}
    assert "class" in shown and not shown & {"label_name", "source_class", "sipakmed"}, shown
    written += plots.save_figure(fig, tmp_path / "stats")
    images = [np.full((32, 32, 3), 128, np.uint8)] * 2
    fig = data_plots.plot_augmentations(images, single_augmentations(32))
    assert len(fig.axes) == 2 * 6
    written += plots.save_figure(fig, tmp_path / "aug")
    assert sorted(p.name for p in written) == sorted(
        f"{s}.{e}" for s in ("counts", "grid", "stats", "aug") for e in ("png", "pdf"))
    for p in written:
        assert p.stat().st_size > 1000
    assert p.read_bytes()[:4] == b"%PDF"
    again = plots.save_figure(fig, tmp_path / "again")
    assert again[1].read_bytes() == p.read_bytes()  # no creation date: the same figure, same file
    assert not list(tmp_path.glob(".*.tmp"))


def test_resolve_data_source_real_folder(synthetic_root: Path, tmp_path: Path) -> None:
    src = resolve_data_source(synthetic_root)
    assert src.datasets == _roots(synthetic_root) and src.synthetic
    assert src.notice == SYNTHETIC_NOTICE
    assert src.path("herlev") == synthetic_root / "herlev"
    (tmp_path / "sipakmed").symlink_to(synthetic_root / "sipakmed")
    with pytest.raises(DatasetNotFoundError, match="'cric' is not available.*found: sipakmed"):
        resolve_data_source(tmp_path).path("cric")


def test_resolve_data_source_env_and_default(tmp_path: Path, synthetic_root: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AECNN_DATA_ROOT", str(synthetic_root))
    assert resolve_data_source().root == synthetic_root
    monkeypatch.delenv("AECNN_DATA_ROOT")
    monkeypatch.setenv("AECNN_SYNTHETIC_DIR", str(tmp_path / "syn"))
    src = resolve_data_source(n_per_class=2)
    assert src.root == tmp_path / "syn" / "n2-seed0" and src.synthetic
    assert set(src.datasets) == {"sipakmed", "herlev", "cric"}


def test_resolve_data_source_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        resolve_data_source(tmp_path / "missing")
    with pytest.raises(DatasetNotFoundError, match="no dataset folder"):
        resolve_data_source(tmp_path)


@pytest.mark.real_data
def test_real_data_is_not_synthetic(real_root: Path) -> None:
    src = resolve_data_source(real_root)
    assert not src.synthetic
    assert {"sipakmed", "herlev"} <= set(src.datasets)
    assert "synthetic" not in src.notice


def test_model_figures(tmp_path: Path) -> None:
    import torch

    from aecnn_utils.data.transforms import NormStats, compute_norm_stats, to_batch
    from aecnn_utils.models import AECNN, attention_maps, complexity_table

    table = complexity_table(["aecnn", "mobilenet_v3_small"], input_size=64)
    written = plots.save_figure(data_plots.plot_complexity(table), tmp_path / "complexity")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    stats = compute_norm_stats(np.stack(images))
    batch = to_batch(images, stats, 64)
    assert batch.shape == (3, 3, 64, 64) and batch.dtype == torch.float32
    assert abs(float(batch.mean())) < 0.05  # normalised with the images' own statistics
    maps = {"a": attention_maps(AECNN(attention="parallel"), batch),
            "b": attention_maps(AECNN(attention="channel"), batch)}
    fig = data_plots.plot_attention_maps(images, maps)
    assert len(fig.axes) == 3 * (1 + 3)  # "channel" has no spatial maps: no columns for it
    written += plots.save_figure(fig, tmp_path / "attention")
    assert all(p.stat().st_size > 1000 for p in written)
    assert NormStats.from_dict({"mean": [0.1] * 3, "std": [0.2] * 3}).std == (0.2, 0.2, 0.2)
    with pytest.raises(ValueError, match="'mean' and 'std'"):
        NormStats.from_dict({"mean": [0.1] * 3})
