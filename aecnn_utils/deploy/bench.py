"""The benchmark as a whole (``make bench``): every model at each size, plain and as the trainer
runs them, with the data pipeline; its targets, its tables and its words (notebook 06 and the
README). Each model is measured by :mod:`aecnn_utils.deploy.timing`, in one run, interleaved,
and the ratios between models are what the tables report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from aecnn_utils.core.device import resolve_device
from aecnn_utils.core.formatting import to_markdown
from aecnn_utils.deploy.timing import (
    BENCH_MODELS,
    bench_pipeline,
    bench_speed,
    train_peak_memory,
)
from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments import paired as P
from aecnn_utils.experiments import scores as S
from aecnn_utils.experiments import wording as W
from aecnn_utils.experiments.efficiency import LAYER_ROWS, efficiency_grid


def efficiency_table(speed: pd.DataFrame, aucs: Iterable[S.Estimate],
                     image_size: int) -> pd.DataFrame:
    """Speed as the trainer runs (channels_last; AMP on a GPU) at ``image_size`` beside each
    row's AUC record (``model_aucs(...).estimates()``: ``auc``, ``auc_low``/``auc_high``,
    ``seeds``): one row per benchmark row, AUC empty for rows the grid did not score."""
    rows = speed[(speed["image_size"] == image_size) & speed["channels_last"]]
    if rows.empty:
        raise ValueError(f"the benchmark has no channels_last rows at {image_size} px: measure "
                         f"that size (bench_models.py --sizes {image_size})")
    cols = ["name", "image_size", "params_M", "GMACs", "train_img_s", "infer_fused_img_s",
            "latency_ms",
            *(c for c in rows if c.startswith(("train_img_s_x_", "infer_fused_img_s_x_")))]
    scored = pd.DataFrame([{"name": e.arm, "auc": e.value, "auc_low": e.low,
                            "auc_high": e.high, "seeds": e.n_seeds}
                           for e in aucs],
                          columns=["name", "auc", "auc_low", "auc_high", "seeds"])
    return rows[cols].merge(scored, on="name", how="left").reset_index(drop=True)


def run_benchmark(profile: str, sizes: Sequence[int] = (96, 224), *,
                  models: Sequence[str] | None = None, batch: int = 32, reps: int = 5,
                  calls: int = 2, device: str = "auto", data_root: str | None = None,
                  memory: bool = True, onnx: bool = True, progress: bool = True
                  ) -> dict[str, Any]:
    """The whole benchmark (``make bench``): :func:`bench_speed` of the candidates (``models``:
    row names or model names, default :data:`BENCH_MODELS`) at each size, plain and as the
    trainer runs (channels_last; AMP on a GPU), the peak memory of a training step (plain
    rows), ONNX Runtime float32 and int8 inference (as-trained rows, on a CPU, if ``onnx``) and
    the profile's data pipeline against AECNN's training throughput. Returns
    ``{"machine", "speed" (records), "pipeline"}``, ready for JSON."""
    import platform

    from aecnn_utils.training.config import profile_config

    dev = resolve_device(device)
    cands = [c for c in BENCH_MODELS if models is None or c.key in models or c.model in models]
    if not cands:
        raise ValueError(f"no benchmark row matches models={list(models or [])}; rows: "
                         f"{', '.join(c.key for c in BENCH_MODELS)}")
    tables = []
    for amp, channels_last in ((False, False), (dev.type == "cuda", True)):
        for size in sizes:
            table = bench_speed(cands, size, batch=batch, reps=reps, calls=calls,
                                device=str(dev), amp=amp, channels_last=channels_last,
                                onnx=onnx and channels_last and dev.type == "cpu",
                                progress=progress)
            if memory and not channels_last:
                table["peak_train_MB"] = [train_peak_memory(c, size, batch, str(dev))
                                          for c in cands]
            tables.append(table)
    speed = pd.concat(tables, ignore_index=True)
    config = profile_config(profile, device=str(dev),
                            **({"data_root": data_root} if data_root else {}))
    pipeline = bench_pipeline(config, progress=progress)
    as_trained = speed[(speed["image_size"] == config.image_size) & speed["channels_last"]]
    for name in LAYER_ROWS:
        row = as_trained[as_trained["name"] == name]
        if len(row):
            pipeline[f"x_train {name}"] = (pipeline["pipeline_img_s"]
                                           / float(row["train_img_s"].iloc[0]))
    machine = {"platform": platform.platform(), "processor": platform.processor(),
               "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
               "device": dev.type,
               "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None}
    return {"machine": machine, "speed": speed.to_dict("records"), "pipeline": pipeline}


#: The AECNN rows the data pipeline and the targets are checked for.
#: Issue 11's targets at 224 px, as ratios measured in one run: (what, column, at least).
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("training >= 2x MobileNetV3-Small", "train_img_s_x_mobilenetv3small", 2.0),
    ("training >= 5x ResNet-50", "train_img_s_x_resnet50", 5.0),
    ("inference (BN folded) >= MobileNetV3-Small", "infer_fused_img_s_x_mobilenetv3small", 1.0),
    ("inference (eager) >= MobileNetV3-Small", "infer_img_s_x_mobilenetv3small", 1.0),
)


def target_table(speed: pd.DataFrame, image_size: int = 224) -> pd.DataFrame:
    """Each AECNN row (:data:`LAYER_ROWS`) against each target of :data:`TARGETS` and
    "parameters < 1 M", on the as-trained rows at ``image_size`` (empty if not measured)."""
    rows = speed[(speed["image_size"] == image_size) & speed["channels_last"]].set_index("name")
    out = []
    for name in LAYER_ROWS:
        if name not in rows.index:
            continue
        r = rows.loc[name]
        for what, col, least in TARGETS:
            if col in r:
                out.append({"model": name, "target": what, "measured": float(r[col]),
                            "met": bool(r[col] >= least)})
        out.append({"model": name, "target": "parameters < 1 M (millions)",
                    "measured": float(r["params_M"]), "met": bool(r["params_M"] < 1.0)})
    return pd.DataFrame(out, columns=["model", "target", "measured", "met"])


def _seeds(n: float) -> str:
    return f"{n:.0f} seed{'s' * (int(n) != 1)}"


def efficiency_summary(targets: pd.DataFrame, efficiency: pd.DataFrame,
                       machine: dict[str, Any], deployment: pd.DataFrame | None = None,
                       layers: P.Comparison | None = None) -> str:
    """The benchmark in words (for notebook 06 and the README): each AECNN row against the
    targets, the default (fast) layer table's AUC against the base table's (``layers``, the
    paired comparison of :func:`layer_comparison`; a faster model shown worse is a trade-off), and
    ONNX Runtime float32 and int8 against PyTorch (:func:`deployment_table`)."""
    where = (f"{machine.get('gpu') or machine.get('processor') or 'CPU'}, "
             f"{machine.get('cpu_threads')} threads, torch {machine.get('torch')}")
    lines = [f"Measured on {where} ({machine.get('device')}), as the trainer runs, ratios "
             "from one interleaved run:"]
    for name, part in targets.groupby("model", sort=False):
        met = [f"{r.target}: {r.measured:.2f} ({'met' if r.met else 'not met'})"
               for r in part.itertuples()]
        lines.append(f"- {name} at 224 px: " + "; ".join(met) + ".")
    rows = efficiency.dropna(subset=["auc"]).set_index("name")
    if layers is not None and {layers.first, layers.second} <= set(rows.index):
        f, b = rows.loc[layers.first], rows.loc[layers.second]
        verdict = {"not shown": "a difference is not shown",
                   "higher": "the fast table is better",
                   "lower": "a trade-off: the fast table is worse"}[layers.verdict]
        lines.append(
            f"- Accuracy across datasets: AECNN AUC {f['auc']:.3f} [{f['auc_low']:.3f}, "
            f"{f['auc_high']:.3f}] ({_seeds(f['seeds'])}) against AECNN base {b['auc']:.3f} "
            f"[{b['auc_low']:.3f}, {b['auc_high']:.3f}] ({_seeds(b['seeds'])}); paired: "
            f"{W.words(layers, verdict=False)}: {verdict}.")
    for r in (deployment if deployment is not None else pd.DataFrame()).itertuples():
        auc = (f"validation AUC {r.eager_auc:.3f} in PyTorch, {r.onnx_auc:.3f} float32, "
               f"{r.int8_auc:.3f} int8 ({r.int8_auc - r.eager_auc:+.3f}); "
               if r.eager_auc is not None and not pd.isna(r.eager_auc) else "")
        lines.append(
            f"- {r.name} in ONNX Runtime ({r.cells} validation cells): {auc}largest probability "
            f"difference to PyTorch {r.onnx_max_abs_diff:.1e} float32, {r.int8_max_abs_diff:.3f}"
            f" int8; inference {r.onnx_x_eager:.2f}x PyTorch (BatchNorm folded) in float32, "
            f"int8 {r.int8_x_onnx:.2f}x float32.")
    return "\n".join(lines) + "\n"


def load_or_measure(path: str | Path, measure: str = "auto", profile: str = "smoke",
                    sizes: Sequence[int] = (), **kwargs: Any) -> tuple[dict[str, Any], str]:
    """Notebook 06's benchmark: with ``measure="auto"`` the JSON ``make bench`` wrote at
    ``path`` when it exists, else (or with ``measure="now"``) :func:`run_benchmark` of
    ``profile`` at ``sizes`` (default: the profile's image size, and 224, the targets' size,
    except in the smoke profile). Returns the result and where it came from."""
    from aecnn_utils.training.config import profile_config

    if measure not in ("auto", "now"):
        raise ValueError(f"measure={measure!r} is not valid; choose auto or now")
    path = Path(path)
    if measure == "auto" and path.is_file():
        return json.loads(path.read_text(encoding="utf-8")), f"{path.name} (make bench)"
    if not sizes:
        size = profile_config(profile).image_size
        sizes = [size] if profile == "smoke" else sorted({size, 224})
    return run_benchmark(profile, sizes, **kwargs), "measured now"


def markdown_table(speed: pd.DataFrame) -> str:
    """The README's complexity table: parameters, GMACs at 224 px and, as the trainer runs,
    training and inference (BatchNorm folded) throughput at each measured size with the ratio
    to MobileNetV3-Small, and ONNX Runtime float32 and int8 inference at the largest size when
    measured; one row per model."""
    rows = speed[speed["channels_last"]]
    sizes = sorted(rows["image_size"].unique())
    top = rows[rows["image_size"] == sizes[-1]].set_index("name")
    header = ["model", "parameters", f"GMACs ({sizes[-1]} px)"]
    for size in sizes:
        header += [f"training img/s ({size} px)", f"inference img/s ({size} px)"]
    ort = [c for c in ("ort_img_s", "ort_int8_img_s") if c in top and top[c].notna().all()]
    header += [f"{'ONNX Runtime' if c == 'ort_img_s' else 'int8'} img/s ({sizes[-1]} px)"
               for c in ort]
    body = []
    for name in rows["name"].unique():
        cells = [name, f"{top.loc[name, 'params_M']:.3g} M", f"{top.loc[name, 'GMACs']:.3g}"]
        for size in sizes:
            r = rows[(rows["image_size"] == size) & (rows["name"] == name)].iloc[0]
            ratio = {col: (f" ({r[f'{col}_x_mobilenetv3small']:.2f}x)"
                           if f"{col}_x_mobilenetv3small" in r else "")
                     for col in ("train_img_s", "infer_fused_img_s")}
            cells += [f"{r['train_img_s']:.0f}{ratio['train_img_s']}",
                      f"{r['infer_fused_img_s']:.0f}{ratio['infer_fused_img_s']}"]
        body.append(cells + [f"{top.loc[name, c]:.0f}" for c in ort])
    return to_markdown(pd.DataFrame(body, columns=header))


def deployment_table(profile: str, runs_dir: str | Path | None = None, *, seed: int = 0,
                     calibration: int = 128, progress: bool = True,
                     **overrides: Any) -> pd.DataFrame:
    """ONNX Runtime float32 and int8 against PyTorch eager for AECNN's two layer tables (the
    first seed of each in :func:`efficiency_grid`, shared with the study; trained if
    missing): one row per table with the validation cells' AUC, the largest probability
    difference to eager and the inference throughput of each
    (:func:`aecnn_utils.deploy.quantize.int8_report`; the ONNX files go to ``<run>/onnx/``)."""
    from aecnn_utils.deploy.quantize import int8_report

    grid = efficiency_grid(profile, LAYER_ROWS, seed=seed)
    runs = G.run_grid(grid, runs_dir, progress=progress, **overrides)
    rows = []
    for name in LAYER_ROWS:
        run = runs["cross", name, ""][0]
        rows.append({"name": name, **int8_report(run.run_dir, run.run_dir / "onnx",
                                                 calibration=calibration,
                                                 data_root=run.config.data_root)})
    table = pd.DataFrame(rows)
    table["int8_x_onnx"] = table["int8_img_s"] / table["onnx_img_s"]
    table["onnx_x_eager"] = table["onnx_img_s"] / table["eager_img_s"]
    return table
