"""The benchmark along the user's path (make bench -> script -> aecnn_utils.deploy.bench -> JSON);
it checks what is measured and how it is reported, never how fast anything is."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aecnn_utils.deploy.timing import (
    BENCH_MODELS,
    Candidate,
    add_ratios,
    bench_speed,
    train_peak_memory,
)
from aecnn_utils.experiments import paired as P
from aecnn_utils.experiments import scores as S
from aecnn_utils.models import ATTENTION_MODES, count_params

ROOT = Path(__file__).resolve().parents[1]
SMALL = [Candidate("aecnn", {"attention": "none"}), Candidate("mobilenet_v3_small")]


def test_the_benchmark_covers_every_attention_variant_and_the_references() -> None:
    keys = [c.key for c in BENCH_MODELS]
    assert [k for k in keys if k.startswith("AECNN")] == [
        *(f"AECNN ({m})" for m in ATTENTION_MODES), "AECNN base (parallel)"]
    assert {"MobileNetV3-Small", "EfficientNet-B0", "EfficientNet-B3", "ResNet-50"} <= set(keys)


def test_speed_rows_are_medians_with_ratios_to_the_references() -> None:
    table = bench_speed(SMALL, 32, batch=4, reps=2, calls=1, progress=False)
    assert table["name"].tolist() == ["AECNN (none)", "MobileNetV3-Small"]
    for col in ("train_img_s", "infer_img_s", "infer_fused_img_s", "latency_ms", "GMACs"):
        assert (table[col] > 0).all(), col
    mobile = table.set_index("name").loc["MobileNetV3-Small"]
    assert mobile["train_img_s_x_mobilenetv3small"] == pytest.approx(1.0)
    assert "train_img_s_x_resnet50" not in table  # no ResNet-50 row: no ratio to it
    from aecnn_utils.models import build_model
    assert table.loc[0, "params_M"] == pytest.approx(
        count_params(build_model("aecnn", 2, attention="none")) / 1e6)
    with pytest.raises(ValueError, match="reps, calls and batch must be >= 1"):
        bench_speed(SMALL, 32, reps=0, progress=False)


def test_ratios_are_against_the_rows_measured_in_the_same_run() -> None:
    table = pd.DataFrame({"name": ["A", "MobileNetV3-Small", "ResNet-50"],
                          "train_img_s": [100.0, 50.0, 10.0], "infer_img_s": [1.0, 2.0, 4.0],
                          "latency_ms": [1.0, 2.0, 4.0], "params_M": [0.5, 1.5, 25.0],
                          "GMACs": [0.1, 0.05, 4.0]})
    out = add_ratios(table).set_index("name")
    assert out.loc["A", "train_img_s_x_mobilenetv3small"] == 2.0
    assert out.loc["A", "train_img_s_x_resnet50"] == 10.0
    assert out.loc["A", "infer_img_s_x_mobilenetv3small"] == 0.5


def test_peak_memory_of_a_training_step_grows_with_the_batch() -> None:
    small = train_peak_memory(SMALL[0], 64, batch=2)
    large = train_peak_memory(SMALL[0], 64, batch=64)
    assert 0 <= small < large


def test_make_bench_script_prints_the_table_and_writes_json(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("bench_models",
                                                  ROOT / "benchmarks" / "bench_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "bench.json"
    module.main(["--profile", "smoke", "--sizes", "64", "--models", "AECNN (parallel)",
                 "mobilenet_v3_small", "--batch", "4", "--reps", "1", "--calls", "1",
                 "--no-memory", "--no-onnx", "--data-root", str(synthetic_root), "--out", str(out)])
    written = json.loads(out.read_text())
    # measured plain and as the trainer runs (channels_last), each with both rows
    assert [(r["name"], r["channels_last"]) for r in written["speed"]] == [
        ("AECNN (parallel)", False), ("MobileNetV3-Small", False),
        ("AECNN (parallel)", True), ("MobileNetV3-Small", True)]
    assert written["pipeline"]["pipeline_img_s"] > 0
    assert written["pipeline"]["x_train AECNN (parallel)"] > 0  # at the profile's size (64)
    assert written["machine"]["device"] == "cpu"
    text = capsys.readouterr().out
    assert "64 px, batch 4, cpu, plain" in text and "64 px, batch 4, cpu, channels_last" in text
    assert "data pipeline" in text and str(out) in text
    assert "benchmarks/bench_models.py" in (ROOT / "Makefile").read_text()


def test_profile_script_names_the_blocks_that_spend_the_time(
        capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("profile_model",
                                                  ROOT / "benchmarks" / "profile_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--size", "32", "--batch", "2", "--steps", "1", "--rows", "5", "--layers",
                 "fast", "--channels-last"])
    text = capsys.readouterr().out
    assert "Self CPU" in text and "forward time by module class" in text
    for block in ("DepthwiseSeparableConv", "AttentionFusion", "BatchNorm2d"):
        assert block in text, block


def _speed() -> pd.DataFrame:
    """Two AECNN rows and the references, as the trainer runs, at 224 px."""
    names = ["AECNN base (parallel)", "AECNN (parallel)", "MobileNetV3-Small", "ResNet-50"]
    table = pd.DataFrame({"name": names, "params_M": [0.49, 0.17, 1.52, 23.5],
                          "GMACs": [0.11, 0.027, 0.056, 4.1], "train_img_s": [30, 90, 40, 3.0],
                          "infer_img_s": [120, 400, 200, 8],
                          "infer_fused_img_s": [150, 450, 220, 9],
                          "latency_ms": [9, 5, 7, 60], "image_size": 224, "batch": 32,
                          "channels_last": True})
    return add_ratios(table)


def test_targets_are_checked_on_the_ratios_measured_at_224() -> None:
    from aecnn_utils.deploy.bench import target_table

    targets = target_table(_speed()).set_index(["model", "target"])
    fast, base = "AECNN (parallel)", "AECNN base (parallel)"
    assert targets.loc[(fast, "training >= 2x MobileNetV3-Small"), "measured"] == 90 / 40
    assert targets.loc[(fast, "training >= 2x MobileNetV3-Small"), "met"]
    assert not targets.loc[(base, "training >= 2x MobileNetV3-Small"), "met"]
    assert targets.loc[(base, "training >= 5x ResNet-50"), "met"]  # 10x
    assert not targets.loc[(base, "inference (eager) >= MobileNetV3-Small"), "met"]
    assert targets.loc[(fast, "parameters < 1 M (millions)"), "met"]
    assert target_table(_speed(), image_size=96).empty  # not measured there


def _auc(name: str, value: float, low: float, high: float, seeds: int) -> S.Estimate:
    return S.Estimate("cross", name, "roc_auc", value, 0.02, 0.01, low, high, low - 0.1,
                      high + 0.1, seeds, 20)


def _layers(diff: float, low: float, high: float, shown: bool) -> P.Comparison:
    return P.Comparison("cross", "AECNN (parallel)", "AECNN base (parallel)", "roc_auc", diff,
                        low, high, low - 0.01, high + 0.01, 0.2, 0.2, 8, 20, 1, shown)


def test_efficiency_table_and_summary_word_the_paired_comparison() -> None:
    from aecnn_utils.deploy.bench import efficiency_summary, efficiency_table, target_table

    aucs = [_auc("AECNN base (parallel)", 0.70, 0.60, 0.80, 3),
            _auc("AECNN (parallel)", 0.68, 0.58, 0.78, 3), _auc("ResNet-50", 0.75, 0.65,
                                                                0.85, 1)]
    table = efficiency_table(_speed(), aucs, 224)
    assert table.set_index("name")["auc"].isna().tolist() == [False, False, True, False]
    from aecnn_utils.reporting import plots

    legend = [t.get_text() for t in plots.plot_speed_vs_auc(table).legends[0].get_texts()]
    assert legend == ["AECNN base (parallel) (3 seeds)", "AECNN (parallel) (3 seeds)",
                      "ResNet-50 (1 seed)"]  # one seed's AUC says so
    machine = {"processor": "x86_64", "cpu_threads": 2, "torch": "2.x", "device": "cpu"}
    text = efficiency_summary(target_table(_speed()), table, machine,
                              layers=_layers(-0.02, -0.05, 0.01, False))
    assert ("AECNN AUC 0.680 [0.580, 0.780] (3 seeds) against AECNN base 0.700 [0.600, 0.800]"
            " (3 seeds)") in text
    assert "paired: AECNN (parallel) vs AECNN base (parallel), AUC: -0.020 [-0.050, +0.010]" \
        in text
    assert text.splitlines()[-1].endswith(": a difference is not shown.")
    # the verdict is the paired test's, not whether the intervals overlap (here they do)
    shown = efficiency_summary(target_table(_speed()), table, machine,
                               layers=_layers(-0.02, -0.03, -0.01, True))
    assert "a trade-off: the fast table is worse" in shown
    assert "Accuracy across datasets" not in efficiency_summary(target_table(_speed()), table,
                                                                machine)
    deployment = pd.DataFrame({"name": ["AECNN (parallel)"], "cells": [206],
                               "eager_auc": [0.70], "onnx_auc": [0.70], "int8_auc": [0.69],
                               "onnx_max_abs_diff": [2e-7], "int8_max_abs_diff": [0.02],
                               "onnx_x_eager": [1.5], "int8_x_onnx": [0.8]})
    text = efficiency_summary(target_table(_speed()), table, machine, deployment)
    assert ("AECNN (parallel) in ONNX Runtime (206 validation cells): validation AUC 0.700 "
            "in PyTorch, 0.700 float32, 0.690 int8 (-0.010)") in text
    assert "int8 0.80x float32" in text
    with pytest.raises(ValueError, match="no channels_last rows at 96 px"):
        efficiency_table(_speed(), aucs, 96)


def test_readme_table_has_throughput_and_ratios_per_size() -> None:
    from aecnn_utils.deploy.bench import markdown_table

    text = markdown_table(_speed())
    assert text.splitlines()[0] == ("| model | parameters | GMACs (224 px) | training img/s "
                                    "(224 px) | inference img/s (224 px) |")
    assert "| AECNN (parallel) | 0.17 M | 0.027 | 90 (2.25x) | 450 (2.05x) |" in text


def test_notebook_benchmark_reuses_make_bench_output_or_measures(
        synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aecnn_utils.deploy.bench import load_or_measure

    monkeypatch.setenv("AECNN_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "bench_models.json"
    kwargs = {"models": ["AECNN (none)", "mobilenet_v3_small"], "batch": 2, "reps": 1,
              "calls": 1, "memory": False, "onnx": False, "data_root": str(synthetic_root),
              "progress": False}
    result, origin = load_or_measure(path, "auto", "smoke", [32], **kwargs)
    assert origin == "measured now"
    assert {r["image_size"] for r in result["speed"]} == {32}
    path.write_text(json.dumps({"machine": {}, "speed": [], "pipeline": {}}))
    assert load_or_measure(path, "auto")[1] == "bench_models.json (make bench)"
    assert load_or_measure(path, "now", "smoke", [32], **kwargs)[1] == "measured now"
    with pytest.raises(ValueError, match="measure='later' is not valid"):
        load_or_measure(path, "later")
    with pytest.raises(ValueError, match="no benchmark row matches"):
        load_or_measure(path, "now", "smoke", [32], models=["vgg"])


def test_model_aucs_come_from_the_profiles_runs(synthetic_root: Path, tmp_path: Path) -> None:
    """Every row is an arm of one grid (trained here), scored nested and compared paired."""
    from aecnn_utils.experiments import efficiency
    from aecnn_utils.training.runs import load_run

    names = ["AECNN (parallel)", "AECNN base (parallel)", "MobileNetV3-Small"]
    result = efficiency.model_aucs("smoke", tmp_path, names=names, progress=False,
                                   data_root=str(synthetic_root), epochs=1, n_boot=20,
                                   num_workers=0)
    assert [e.arm for e in result.estimates()] == names
    (fast,) = result.runs["cross", "AECNN (parallel)", ""]
    assert fast.config.model_kwargs == {}  # the default table
    (base,) = result.runs["cross", "AECNN base (parallel)", ""]
    assert base.config.model_kwargs == {"layers": "base"}
    assert result.runs["cross", "MobileNetV3-Small", ""][0].config.model == "mobilenet_v3_small"
    metrics = load_run(fast.run_dir).metrics
    stored = (np.mean([s["test"]["roc_auc"] for s in metrics["splits"]["per_split"]])
              if "splits" in metrics else metrics["test"]["roc_auc"])
    assert result.estimate("AECNN (parallel)", "roc_auc").value == pytest.approx(stored)
    layers = efficiency.layer_comparison(result)
    assert (layers.first, layers.second, layers.family) == (names[0], names[1], 1)
    assert layers.low <= layers.diff <= layers.high
    assert efficiency.layer_comparison(efficiency.model_aucs(
        "smoke", tmp_path, names=names[2:], progress=False, data_root=str(synthetic_root),
        epochs=1, n_boot=20, num_workers=0)) is None


def test_onnx_runtime_is_measured_beside_eager_float32_and_int8() -> None:
    from aecnn_utils.deploy.bench import markdown_table

    table = bench_speed(SMALL, 32, batch=4, reps=1, calls=1, onnx=True, channels_last=True,
                        progress=False)
    for col in ("ort_img_s", "ort_int8_img_s", "ort_x_eager", "ort_int8_x_ort"):
        assert (table[col] > 0).all(), col
    assert table["ort_x_eager"].tolist() == pytest.approx(
        (table["ort_img_s"] / table["infer_img_s"]).tolist())
    header = markdown_table(table).splitlines()[0]
    assert header.endswith("| ONNX Runtime img/s (32 px) | int8 img/s (32 px) |")


def test_profile_script_falls_back_to_eager_when_compilation_fails(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    spec = importlib.util.spec_from_file_location("profile_model",
                                                  ROOT / "benchmarks" / "profile_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def no_compiler(model: torch.nn.Module) -> torch.nn.Module:
        def fail(*_args: object) -> None:
            raise RuntimeError("no C++ compiler found\nmore")
        return fail  # type: ignore[return-value]

    monkeypatch.setattr(torch, "compile", no_compiler)
    module.main(["--size", "32", "--batch", "2", "--steps", "1", "--rows", "3", "--compile"])
    assert "torch.compile failed here (RuntimeError: no C++ compiler found); eager step" in \
        capsys.readouterr().out
