"""Shared fixtures: synthetic datasets written once per session, the real data when configured."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aecnn_utils.data.synthetic import generate_all

SYNTHETIC_PER_CLASS = 6


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sipakmed/, herlev/ and cric/ (official layout) written by the generator, small fields."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_all(root, n_per_class=SYNTHETIC_PER_CLASS, seed=0, field_size=(320, 240))
    return root


@pytest.fixture(scope="session")
def real_root() -> Path:
    """The real data folder named by AECNN_REAL_DATA (e.g. ../shared/data); skip when unset."""
    env = os.environ.get("AECNN_REAL_DATA")
    if not env:
        pytest.skip("AECNN_REAL_DATA is not set: real-data tests skipped")
    root = Path(env)
    if not root.is_dir():
        pytest.fail(f"AECNN_REAL_DATA={env} is not a folder")
    return root


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A private cache folder per test."""
    return tmp_path / "cache"
