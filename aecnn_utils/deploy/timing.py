"""How the benchmark measures one model: speed, memory and the data pipeline, so that the
figures hold up on a noisy machine (the whole benchmark and its tables:
:mod:`aecnn_utils.deploy.bench`).

Every model is measured in the same process, interleaved (each repetition times every model in
turn), after warm-up, and each figure is the median over the repetitions: a slow spell of the
machine then hits every model alike, and the ratios between models are what the tables report.
Training: images/s of a full forward, backward and SGD step. Inference: batch-1 latency and
batch throughput. Peak memory of a training step comes from a fresh process per model on a CPU
(the resident-set peak it adds) and from the allocator on CUDA. The data pipeline (decode from
the cache, augment, collate) is measured against the model's training throughput, so that one
knows which of the two bounds an epoch.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
import torch.utils.benchmark as benchmark
from tqdm.auto import tqdm

from aecnn_utils.core.device import resolve_device
from aecnn_utils.models import (
    ATTENTION_MODES,
    MODEL_LABELS,
    MODELS,
    build_model,
    count_macs,
    count_params,
    fuse_batchnorm,
    model_defaults,
)
from aecnn_utils.models.baselines import torchvision_model
from aecnn_utils.training.config import RunConfig
from aecnn_utils.training.runs import autocast


@dataclass(frozen=True)
class Candidate:
    """One row of the benchmark: a model name and its factory arguments."""

    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Row name: the model's display name, with AECNN's layer table (unless the default)
        and attention variant, e.g. "AECNN base (parallel)"."""
        label = {**MODEL_LABELS, **EXTRA_LABELS}.get(self.model, self.model)
        if self.model == "aecnn" and self.kwargs.get("layers", DEFAULT_LAYERS) != DEFAULT_LAYERS:
            label = f"{label} {self.kwargs['layers']}"
        return f"{label} ({self.kwargs['attention']})" if "attention" in self.kwargs else label

    def build(self) -> torch.nn.Module:
        """The model with two outputs: a kit model (:data:`aecnn_utils.models.MODELS`), else a
        torchvision reference that only the benchmark measures (e.g. EfficientNet-B0)."""
        if self.model in MODELS:
            return build_model(self.model, 2, **self.kwargs)
        return torchvision_model(self.model, 2, **self.kwargs)


#: AECNN's default layer table (rows of the other table name theirs).
DEFAULT_LAYERS: str = model_defaults("aecnn")["layers"]
#: Display names of the references only the benchmark measures.
EXTRA_LABELS: dict[str, str] = {"efficientnet_b0": "EfficientNet-B0"}


#: What ``make bench`` measures: AECNN in each attention variant (Eq. 4 and its ablations), its
#: other layer table, and the reference models.
BENCH_MODELS: tuple[Candidate, ...] = (
    *(Candidate("aecnn", {"attention": mode}) for mode in ATTENTION_MODES),
    Candidate("aecnn", {"layers": "base", "attention": "parallel"}),
    Candidate("mobilenet_v3_small"), Candidate("efficientnet_b0"),
    Candidate("efficientnet_b3"), Candidate("resnet50"))
#: The models every ratio column is taken against.
REFERENCES: tuple[str, ...] = ("MobileNetV3-Small", "ResNet-50")


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor, amp: bool = False) -> None:
    """One training step: forward (float16 autocast on CUDA with ``amp``), backward, SGD."""
    model.train()
    opt.zero_grad(set_to_none=True)
    with autocast(x.device, amp):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()


def _seconds(fn: Callable[[], None], calls: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls, timed as ``Timer.timeit`` times (its
    ``timeit`` loop and clock, which synchronises the accelerator, here ``device``) but without
    the two untimed calls it adds to each measurement (they nearly double the benchmark's time)."""
    with torch.accelerator.device_index(None if device.type == "cpu" else device.index):
        return timeit.Timer(fn, timer=benchmark.timer).timeit(calls) / calls


def bench_speed(candidates: Sequence[Candidate] = BENCH_MODELS, image_size: int = 224, *,
                batch: int = 32, reps: int = 5, calls: int = 2, warmup: int = 1,
                device: str = "cpu", amp: bool = False, channels_last: bool = False,
                onnx: bool = False, progress: bool = True) -> pd.DataFrame:
    """One row per candidate at ``image_size``: training and inference throughput (images/s;
    inference also with BatchNorm folded into the convolutions, :func:`fuse_batchnorm`, as
    ``predict`` runs it), batch-1 latency (ms, folded), parameters and MACs; the medians of
    ``reps`` interleaved repetitions of ``calls`` calls each, after ``warmup`` untimed calls
    per model and task. ``onnx`` adds ONNX Runtime's inference throughput on the CPU, float32
    (``ort_img_s``) and statically quantised int8 (``ort_int8_img_s``; calibrated on the
    benchmark's random batch, which is enough for timing, not for accuracy), in sessions with
    as many threads as torch uses."""
    if reps < 1 or calls < 1 or batch < 1:
        raise ValueError(f"reps, calls and batch must be >= 1, got {reps}, {calls}, {batch}")
    dev = resolve_device(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, 3, image_size, image_size, device=dev).contiguous(memory_format=fmt)
    y = torch.randint(0, 2, (batch,), device=dev)
    tasks: dict[str, dict[str, Callable[[], None]]] = {}
    info: dict[str, dict[str, Any]] = {}
    folder = tempfile.TemporaryDirectory()  # the exported models, while they are timed
    for cand in candidates:
        model = cand.build()
        info[cand.key] = {"model": cand.model, "params_M": count_params(model) / 1e6,
                          "GMACs": count_macs(model, image_size) / 1e9}
        model = model.to(dev, memory_format=fmt)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def infer(model: torch.nn.Module = model, n: int = batch) -> None:
            model.eval()
            with torch.inference_mode(), autocast(dev, amp):
                model(x[:n])

        fused = fuse_batchnorm(model)
        tasks[cand.key] = {"train": lambda m=model, o=opt: train_step(m, o, x, y, amp),
                           "infer": infer,
                           "infer_fused": lambda infer=infer, fused=fused: infer(fused),
                           "latency": lambda infer=infer, fused=fused: infer(fused, n=1)}
        if onnx:
            tasks[cand.key].update(_onnx_tasks(model, x, image_size, folder.name))
    for fns in tasks.values():
        for fn in fns.values():
            for _ in range(warmup):
                fn()
    times: dict[tuple[str, str], list[float]] = {}
    bar = tqdm(total=reps * len(tasks), desc=f"bench {image_size}px", disable=not progress)
    for _ in range(reps):
        for key, fns in tasks.items():
            for task, fn in fns.items():
                times.setdefault((key, task), []).append(_seconds(fn, calls, dev))
            bar.update()
    bar.close()
    folder.cleanup()
    rows = []
    for key in tasks:
        median = {task: statistics.median(times[(key, task)]) for task in tasks[key]}
        ort = {f"{task.removeprefix('infer_')}_img_s": batch / median[task]
               for task in ("infer_ort", "infer_ort_int8") if task in median}
        rows.append({"name": key, **info[key], "image_size": image_size, "batch": batch,
                     "device": dev.type, "amp": amp and dev.type == "cuda",
                     "channels_last": channels_last,
                     "train_img_s": batch / median["train"],
                     "infer_img_s": batch / median["infer"],
                     "infer_fused_img_s": batch / median["infer_fused"],
                     "latency_ms": 1000 * median["latency"], **ort})
    table = pd.DataFrame(rows)
    if onnx:
        table["ort_x_eager"] = table["ort_img_s"] / table["infer_img_s"]
        table["ort_int8_x_ort"] = table["ort_int8_img_s"] / table["ort_img_s"]
    return add_ratios(table)


def _onnx_tasks(model: torch.nn.Module, x: torch.Tensor, image_size: int, folder: str
                ) -> dict[str, Callable[[], None]]:
    """ONNX Runtime inference of ``model`` on ``x`` (float32 and int8), for :func:`bench_speed`."""
    import copy

    from aecnn_utils.deploy.export import OnnxClassifier, export_module
    from aecnn_utils.deploy.quantize import quantize_int8

    if x.device.type != "cpu":
        raise ValueError("ONNX Runtime is measured on the CPU: run the benchmark on the CPU")
    cpu = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    path = export_module(cpu, Path(folder) / f"{id(model)}.onnx", {"image_size": image_size})
    batch = x.contiguous().numpy()
    int8 = quantize_int8(path, batch[:8])
    threads = torch.get_num_threads()
    fp32, q8 = OnnxClassifier(path, threads=threads), OnnxClassifier(int8, threads=threads)
    return {"infer_ort": lambda: fp32.probs(batch), "infer_ort_int8": lambda: q8.probs(batch)}


def add_ratios(table: pd.DataFrame, references: Sequence[str] = REFERENCES) -> pd.DataFrame:
    """Ratio columns ``<figure>_x_<reference>`` (throughputs: higher is faster; latency and
    size: lower is smaller) against each reference row measured in the same run."""
    out = table.copy()
    rows = out.set_index("name")
    for ref in references:
        if ref not in rows.index:
            continue
        tag = ref.lower().replace("-", "").replace(" ", "_")
        for col in ("train_img_s", "infer_img_s", "infer_fused_img_s", "latency_ms", "params_M",
                    "GMACs"):
            if col not in out:
                continue
            out[f"{col}_x_{tag}"] = out[col] / rows.loc[ref, col]
    return out


_MEMORY_PROBE = """
import json, sys, torch
from aecnn_utils.deploy.timing import Candidate, train_step
def status(key):  # kB, from /proc/self/status (Linux)
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
model, kwargs = sys.argv[1], json.loads(sys.argv[2])
size, batch = int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
net = Candidate(model, kwargs).build()
opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
x, y = torch.randn(batch, 3, size, size), torch.randint(0, 2, (batch,))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the resident-set peak starts again from here
before = status("VmRSS")
for _ in range(2):
    train_step(net, opt, x, y)
print(json.dumps({"peak_MB": (status("VmHWM") - before) / 1024}))
"""


def train_peak_memory(candidate: Candidate, image_size: int = 224, batch: int = 32,
                      device: str = "cpu") -> float:
    """Peak memory (MB) a training step at ``batch`` adds to the model and its input: on CUDA
    the allocator's peak; on a CPU, the resident-set peak of a fresh process over its current
    size (Linux, else NaN: the peak is reset through ``/proc/self/clear_refs`` just before
    the steps; two steps, so that the optimizer's state is included)."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        model = candidate.build().to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        x = torch.randn(batch, 3, image_size, image_size, device=dev)
        y = torch.randint(0, 2, (batch,), device=dev)
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        for _ in range(2):
            train_step(model, opt, x, y)
        torch.cuda.synchronize(dev)
        return (torch.cuda.max_memory_allocated(dev) - base) / 2**20
    if not Path("/proc/self/clear_refs").exists():  # not Linux: no resettable peak
        return float("nan")
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, candidate.model,
                          json.dumps(candidate.kwargs), str(image_size), str(batch)],
                         capture_output=True, text=True, check=True, timeout=1800)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_MB"])


def bench_pipeline(config: RunConfig, batches: int = 20, progress: bool = True
                   ) -> dict[str, Any]:
    """Images/s of the training loader exactly as the trainer builds it for ``config``
    (decode from the cache, augment, collate, with its workers), over ``batches`` batches
    after one untimed batch (which starts the workers)."""
    from aecnn_utils.training.build import make_loaders
    from aecnn_utils.training.prepare import prepare_data

    data = prepare_data(config, progress=progress)
    device = resolve_device(config.device)
    loader = make_loaders(config, data, device)["train"]
    if len(loader) == 0:
        raise ValueError("the training loader is empty: no training cells in this config")
    seen, start, done = 0, 0.0, -1  # batch 0 (workers starting) is not timed
    with tqdm(total=batches, desc="pipeline", disable=not progress) as bar:
        while done < batches:  # a small training set is read again, as epochs would
            for images, _labels in loader:
                if done == -1:
                    start = time.perf_counter()
                else:
                    seen += len(images)
                    bar.update()
                done += 1
                if done == batches:
                    break
    return {"pipeline_img_s": seen / (time.perf_counter() - start), "image_size":
            config.image_size, "workers": loader.num_workers, "data": data.source.notice}
