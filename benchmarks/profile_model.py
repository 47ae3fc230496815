"""Profile: where one model's training step spends its time, by operator and by block kind.

    python benchmarks/profile_model.py [--model aecnn] [--layers base|fast] [--size 224]
        [--attention parallel] [--channels-last] [--compile]

Runs a few training steps (forward, backward, SGD) under torch.profiler after warm-up and prints
the operators with the most self CPU time, then the time of each kind of block (the model's
modules by class: depthwise-separable convolutions, attention, BatchNorm, ...) as the share of
the forward pass, measured with hooks. ``--compile`` also times the training step under
``torch.compile`` against eager (median of --steps steps after the compiling one), and says so
when compilation fails on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from aecnn_utils.deploy.timing import Candidate


def main(argv: list[str] | None = None) -> None:
    """Profile and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="aecnn")
    parser.add_argument("--attention", default=None, help="AECNN's attention variant")
    parser.add_argument("--layers", default=None, help="AECNN's layer table (base, fast)")
    parser.add_argument("--channels-last", action="store_true",
                        help="channels_last memory format, as the trainer runs")
    parser.add_argument("--compile", action="store_true",
                        help="also time the training step under torch.compile")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args(argv)

    kwargs = {key: value for key, value in (("attention", args.attention),
                                            ("layers", args.layers)) if value}
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = Candidate(args.model, kwargs).build().to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(memory_format=fmt)
    y = torch.randint(0, 2, (args.batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))

    # forward time per module class (leaf-most named blocks), by hooks
    spent: dict[str, float] = defaultdict(float)
    starts: dict[int, float] = {}
    handles = []
    for module in model.modules():
        if isinstance(module, torch.nn.Sequential):  # containers: their blocks are counted
            continue
        handles.append(module.register_forward_pre_hook(
            lambda m, _i: starts.__setitem__(id(m), time.perf_counter())))
        handles.append(module.register_forward_hook(
            lambda m, _i, _o: spent.__setitem__(
                type(m).__name__, spent[type(m).__name__] + time.perf_counter() - starts[id(m)])))
    model.train()
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(args.steps):
            model(x)
    total = time.perf_counter() - start
    for h in handles:
        h.remove()
    print(f"forward time by module class (inclusive; {args.steps} forwards, {total:.2f} s):")
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {name:28s} {seconds:7.3f} s  {100 * seconds / total:5.1f}%")
    if args.compile:
        compare_compile(model, opt, x, y, args.steps)


def compare_compile(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
                    y: torch.Tensor, steps: int) -> None:
    """Print the training step's median time in eager mode and under ``torch.compile`` (the
    first compiled step, which compiles, timed apart), or why compilation failed."""
    def timed(net: torch.nn.Module) -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
        return time.perf_counter() - start

    model.train()
    eager = statistics.median(timed(model) for _ in range(steps))
    compiled = torch.compile(model)
    try:
        first = timed(compiled)
    except Exception as exc:  # no C++ compiler, unsupported backend, ...: eager it is
        print(f"torch.compile failed here ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
              f"eager step {eager:.3f} s")
        return
    step = statistics.median(timed(compiled) for _ in range(steps))
    print(f"training step: eager {eager:.3f} s, compiled {step:.3f} s "
          f"({eager / step:.2f}x eager) after a first, compiling step of {first:.1f} s")


if __name__ == "__main__":
    main()
