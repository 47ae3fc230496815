"""Benchmark: one epoch of image reading, decoding every file vs the memory-mapped cache.

    python benchmarks/bench_cache.py [--data-root ../shared/data] [--dataset sipakmed] [--size 224]

Prints images/second for both paths and their ratio, measured in the same run on this machine.
With no data root it uses the synthetic data (and says so).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from aecnn_utils.data.cache import cache_images, prepare_cell, row_box
from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.data.sources import resolve_data_source


def main() -> None:
    """Run the benchmark and print a small table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="")
    parser.add_argument("--dataset", default="sipakmed")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--limit", type=int, default=1000, help="cells read per epoch")
    args = parser.parse_args()

    source = resolve_data_source(args.data_root)
    df = scan_dataset(args.dataset, source.path(args.dataset)).iloc[: args.limit]
    print(f"data: {source.notice}; {len(df)} {args.dataset} cells at {args.size}px; "
          f"{os.cpu_count()} CPU cores")

    start = time.perf_counter()
    for row in df.itertuples(index=False):
        prepare_cell(row.path, row_box(row), args.size)
    decode = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cached = cache_images(df, args.size, tmp, progress=False)
        build = time.perf_counter() - start
        cached = cache_images(df, args.size, tmp, progress=False)  # reopen, as a new epoch does
        start = time.perf_counter()
        arr = cached.array()
        checksum = 0
        for i in np.random.default_rng(0).permutation(len(arr)):
            checksum += int(np.asarray(arr[i])[0, 0, 0])
        read = time.perf_counter() - start

    n = len(df)
    print(f"{'path':<28}{'seconds':>10}{'images/s':>12}")
    print(f"{'decode + resize each epoch':<28}{decode:>10.2f}{n / decode:>12.0f}")
    print(f"{'build cache (once)':<28}{build:>10.2f}{n / build:>12.0f}")
    print(f"{'cached epoch (memmap)':<28}{read:>10.3f}{n / read:>12.0f}")
    print(f"ratio cached/decode throughput: {decode / read:.0f}x")


if __name__ == "__main__":
    main()
