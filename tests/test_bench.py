"""The benchmark along the user's path (make bench -> script -> aecnn_utils.bench -> JSON); it
checks what is measured and how it is reported, never how fast anything is."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from aecnn_utils.bench import (
    BENCH_MODELS,
    Candidate,
    add_ratios,
    bench_speed,
    train_peak_memory,
)
from aecnn_utils.models import ATTENTION_MODES, count_params

ROOT = Path(__file__).resolve().parents[1]
SMALL = [Candidate("aecnn", {"attention": "none"}), Candidate("mobilenet_v3_small")]


def test_the_benchmark_covers_every_attention_variant_and_the_references() -> None:
    keys = [c.key for c in BENCH_MODELS]
    assert [k for k in keys if k.startswith("AECNN")] == [
        *(f"AECNN ({m})" for m in ATTENTION_MODES), "AECNN fast (parallel)"]
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
                 "--no-memory", "--data-root", str(synthetic_root), "--out", str(out)])
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
    module.main(["--size", "32", "--batch", "2", "--steps", "1", "--rows", "5"])
    text = capsys.readouterr().out
    assert "Self CPU" in text and "forward time by module class" in text
    for block in ("DepthwiseSeparableConv", "AttentionFusion", "BatchNorm2d"):
        assert block in text, block
