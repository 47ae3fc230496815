"""Benchmark: training and inference speed, memory and size of AECNN against the references.

    python benchmarks/bench_models.py [--profile cpu] [--sizes 96 224] [--data-root DIR]

Every model is measured in one process, interleaved, after warm-up; each figure is the median
of --reps repetitions and is printed with its ratio to MobileNetV3-Small and ResNet-50 measured
in the same run (`aecnn_utils.bench`). On a GPU the table is measured twice: plain, and with
mixed precision and channels_last. The data pipeline's throughput (the profile's training
loader) is printed against AECNN's training throughput. Writes
figures/<profile>/bench_models.json.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import pandas as pd
import torch

from aecnn_utils.bench import BENCH_MODELS, bench_pipeline, bench_speed, train_peak_memory
from aecnn_utils.config import PROFILE_NAMES, profile_config
from aecnn_utils.device import resolve_device
from aecnn_utils.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
SHOWN = ["name", "params_M", "GMACs", "train_img_s", "infer_img_s", "latency_ms", "peak_train_MB",
         "train_img_s_x_mobilenetv3small", "train_img_s_x_resnet50",
         "infer_img_s_x_mobilenetv3small"]


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print its tables, write the JSON; returns what it wrote."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=PROFILE_NAMES,
                        help="whose figures/ folder and training loader (default cpu)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[96, 224])
    parser.add_argument("--models", nargs="+", default=None,
                        help="row names to keep (default: all of aecnn_utils.bench.BENCH_MODELS)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2, help="timed calls per repetition")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None, help="real data for the pipeline")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    parser.add_argument("--out", default=None, help="JSON path (default figures/<profile>/)")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    cands = [c for c in BENCH_MODELS if args.models is None or c.key in args.models
             or c.model in args.models]
    variants = [(False, False)] + ([(True, True)] if device.type == "cuda" else [])
    tables = []
    for amp, channels_last in variants:
        for size in args.sizes:
            table = bench_speed(cands, size, batch=args.batch, reps=args.reps, calls=args.calls,
                                device=str(device), amp=amp, channels_last=channels_last)
            if not args.no_memory and not amp:
                table["peak_train_MB"] = [train_peak_memory(c, size, args.batch, str(device))
                                          for c in cands]
            tables.append(table)
    speed = pd.concat(tables, ignore_index=True)
    config = profile_config(args.profile, device=str(device),
                            **({"data_root": args.data_root} if args.data_root else {}))
    pipeline = bench_pipeline(config)
    aecnn = speed[(speed["name"] == "AECNN (parallel)") & (speed["image_size"] == config.image_size)
                  & ~speed["amp"]]
    if len(aecnn):
        pipeline["x_aecnn_train"] = pipeline["pipeline_img_s"] / float(aecnn["train_img_s"].iloc[0])
    machine = {"platform": platform.platform(), "processor": platform.processor(),
               "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
               "device": device.type,
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    out = {"machine": machine, "settings": vars(args), "speed": speed.to_dict("records"),
           "pipeline": pipeline}
    path = Path(args.out) if args.out else ROOT / "figures" / args.profile / "bench_models.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(out, indent=1, default=str) + "\n")
    with pd.option_context("display.width", 220, "display.max_columns", 30):
        for (size, amp), part in speed.groupby(["image_size", "amp"], sort=False):
            print(f"\n{size} px, batch {args.batch}, {device.type}"
                  f"{', AMP + channels_last' if amp else ''} (median of {args.reps}):")
            print(part[[c for c in SHOWN if c in part]].round(3).to_string(index=False))
    print(f"\ndata pipeline ({config.image_size} px, {pipeline['workers']} workers, "
          f"{pipeline['data']}): {pipeline['pipeline_img_s']:.0f} images/s"
          + (f" = {pipeline['x_aecnn_train']:.2f}x AECNN's training throughput"
             if "x_aecnn_train" in pipeline else ""))
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
