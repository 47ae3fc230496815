"""Speed and memory of the models, measured so that the figures hold up on a noisy machine.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
import torch.utils.benchmark as benchmark
from tqdm.auto import tqdm

from aecnn_utils.core.device import resolve_device
from aecnn_utils.core.formatting import to_markdown
from aecnn_utils.experiments import grid as G
from aecnn_utils.experiments.efficiency import LAYER_ROWS, efficiency_grid
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


def _train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
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
        tasks[cand.key] = {"train": lambda m=model, o=opt: _train_step(m, o, x, y, amp),
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

    from aecnn_utils.deploy.export import OnnxClassifier, export_module, quantize_int8

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
from aecnn_utils.deploy.bench import Candidate, _train_step
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
    _train_step(net, opt, x, y)
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
            _train_step(model, opt, x, y)
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
    from aecnn_utils.training.engine import make_loaders
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


def efficiency_table(speed: pd.DataFrame, aucs: Iterable[G.Estimate],
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
                       layers: G.Comparison | None = None) -> str:
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
            f"{G.words(layers, verdict=False)}: {verdict}.")
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
    (:func:`aecnn_utils.deploy.export.int8_report`; the ONNX files go to ``<run>/onnx/``)."""
    from aecnn_utils.deploy.export import int8_report

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
