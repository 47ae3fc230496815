"""Benchmark: training and inference speed, memory and size of AECNN against the references.

    python benchmarks/bench_models.py [--profile cpu] [--sizes 96 224] [--data-root DIR]

Every model is measured in one process, interleaved, after warm-up; each figure is the median
of --reps repetitions and is printed with its ratio to MobileNetV3-Small and ResNet-50 measured
in the same run (`aecnn_utils.deploy.bench`). The table is measured twice: plain, and as the trainer
runs (channels_last, plus mixed precision on a GPU). The data pipeline's throughput (the
profile's training loader) is printed against AECNN's training throughput (both layer tables),
ONNX Runtime (float32 and int8) is measured against PyTorch eager on a CPU,
and the issue's targets are checked at 224 px. Writes figures/<profile>/bench_models.json and
bench_models.md (the README's complexity table).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from aecnn_utils.core.io import atomic_write_json, atomic_write_text
from aecnn_utils.deploy.bench import markdown_table, run_benchmark, target_table
from aecnn_utils.training.config import PROFILE_NAMES

ROOT = Path(__file__).resolve().parents[1]
SHOWN = ["name", "params_M", "GMACs", "train_img_s", "infer_img_s", "infer_fused_img_s",
         "latency_ms", "peak_train_MB", "train_img_s_x_mobilenetv3small", "train_img_s_x_resnet50",
         "infer_img_s_x_mobilenetv3small", "infer_fused_img_s_x_mobilenetv3small", "ort_img_s",
         "ort_x_eager", "ort_int8_img_s", "ort_int8_x_ort"]


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print its tables, write the JSON; returns what it wrote."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=PROFILE_NAMES,
                        help="whose figures/ folder and training loader (default cpu)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[96, 224])
    parser.add_argument("--models", nargs="+", default=None,
                        help="row names to keep (default: all of "
                             "aecnn_utils.deploy.timing.BENCH_MODELS)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2, help="timed calls per repetition")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None, help="real data for the pipeline")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    parser.add_argument("--no-onnx", action="store_true",
                        help="skip ONNX Runtime (float32 and int8 exports of every model)")
    parser.add_argument("--out", default=None, help="JSON path (default figures/<profile>/)")
    args = parser.parse_args(argv)

    out = run_benchmark(args.profile, args.sizes, models=args.models, batch=args.batch,
                        reps=args.reps, calls=args.calls, device=args.device,
                        data_root=args.data_root, memory=not args.no_memory,
                        onnx=not args.no_onnx)
    out["settings"] = vars(args)
    path = Path(args.out) if args.out else ROOT / "figures" / args.profile / "bench_models.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, out)
    speed, pipeline = pd.DataFrame(out["speed"]), out["pipeline"]
    table = atomic_write_text(path.with_suffix(".md"), markdown_table(speed))
    with pd.option_context("display.width", 220, "display.max_columns", 30):
        for (size, amp, cl), part in speed.groupby(["image_size", "amp", "channels_last"],
                                                   sort=False):
            mode = " + ".join(name for name, on in (("AMP", amp), ("channels_last", cl)) if on)
            print(f"\n{size} px, batch {args.batch}, {out['machine']['device']}, "
                  f"{mode or 'plain'} (median of {args.reps}):")
            print(part[[c for c in SHOWN if c in part]].round(3).to_string(index=False))
        targets = target_table(speed)
        if len(targets):
            print("\ntargets (as the trainer runs):")
            print(targets.round(3).to_string(index=False))
    ratios = [f"{v:.2f}x {k.removeprefix('x_train ')} training"
              for k, v in pipeline.items() if k.startswith("x_train ")]
    print(f"\ndata pipeline ({pipeline['image_size']} px, {pipeline['workers']} workers, "
          f"{pipeline['data']}): {pipeline['pipeline_img_s']:.0f} images/s"
          + (f" = {', '.join(ratios)}" if ratios else ""))
    print(f"wrote {path} and {table.name}")
    return out


if __name__ == "__main__":
    main()
