"""What a run keeps to resume exactly: the RNG states and the atomic checkpoint file
(``last.pt``, ``best.pt``), and the readable copies of its history (``history.csv``,
``epochs.npz``)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from aecnn_utils.core.io import atomic_path, atomic_write_text


def rng_state() -> dict[str, Any]:
    """The python, numpy, torch (and CUDA) RNG states, as ``last.pt`` stores them."""
    _, keys, pos, *_ = np.random.get_state()  # noqa: NPY002
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": torch.from_numpy(keys.astype(np.int64)), "numpy_pos": int(pos)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNG states of :func:`rng_state`."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32),  # noqa: NPY002
                         state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` to ``path`` atomically (a temporary file, then a rename)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_history(run_dir: Path, history: list[dict[str, Any]],
                  outputs: list[np.ndarray]) -> None:
    """``history.csv`` and ``epochs.npz`` (pool logits per epoch): readable copies of what
    ``last.pt`` keeps."""
    atomic_write_text(run_dir / "history.csv", pd.DataFrame(history).to_csv(index=False))
    with atomic_path(run_dir / "epochs.npz") as tmp, tmp.open("wb") as f:
        np.savez(f, logits=np.stack(outputs))
