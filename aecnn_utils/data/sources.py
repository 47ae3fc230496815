"""Where the data comes from: a configured real-data root, or the synthetic default.

A data root holds one folder per dataset, each in its publisher's layout::

    <root>/sipakmed/im_<Class>/...      <root>/herlev/<class>/...      <root>/cric/classifications.csv

Configure it with ``data_root=`` or the ``AECNN_DATA_ROOT`` environment variable. With neither,
the kit generates its synthetic stand-in (:mod:`aecnn_utils.data.synthetic`) under
``data/synthetic`` of the checkout (or ``$AECNN_SYNTHETIC_DIR``) and says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aecnn_utils.data.errors import DatasetNotFoundError
from aecnn_utils.data.readers import READERS
from aecnn_utils.data.synthetic import SYNTHETIC_NOTICE, generate_all, is_synthetic


def project_dir() -> Path:
    """The checkout the kit runs from (the folder holding ``pyproject.toml``), else the cwd."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def default_synthetic_dir() -> Path:
    """``$AECNN_SYNTHETIC_DIR``, else ``<checkout>/data/synthetic``."""
    env = os.environ.get("AECNN_SYNTHETIC_DIR")
    return Path(env).expanduser() if env else project_dir() / "data" / "synthetic"


def synthetic_root(n_per_class: int, seed: int) -> Path:
    """Where the synthetic data of one size and seed lives: ``<synthetic dir>/n<N>-seed<S>``."""
    return default_synthetic_dir() / f"n{n_per_class}-seed{seed}"


@dataclass(frozen=True)
class DataSource:
    """A resolved data root: its folder, the datasets found in it, and whether it is synthetic."""

    root: Path
    datasets: dict[str, Path]
    synthetic: bool

    @property
    def notice(self) -> str:
        """The line every output made from this data must carry."""
        if self.synthetic:
            return SYNTHETIC_NOTICE
        return f"real data: {', '.join(self.datasets)}"

    def path(self, dataset: str) -> Path:
        """Root folder of ``dataset``; a clear error if this source lacks it."""
        if dataset not in self.datasets:
            raise DatasetNotFoundError(
                f"dataset {dataset!r} is not available under {self.root} (found: "
                f"{', '.join(self.datasets) or 'none'}). Place it at {self.root / dataset} in "
                "its published layout (see data/README.md).")
        return self.datasets[dataset]


def resolve_data_source(data_root: str | Path | None = None, *, n_per_class: int = 24,
                        seed: int = 0, roots: Mapping[str, str | Path] | None = None
                        ) -> DataSource:
    """Resolve ``data_root`` (or ``$AECNN_DATA_ROOT``), or generate the synthetic default.

    Args:
        data_root: a folder with ``sipakmed/``, ``herlev/`` and/or ``cric/`` inside; ``None`` or
            ``""`` to use ``$AECNN_DATA_ROOT`` or, failing that, synthetic data.
        n_per_class, seed: size and seed of the synthetic data when it is generated.
        roots: dataset -> its own folder (a lab's cells), beside or instead of ``data_root``.
    """
    own = {name: Path(path).expanduser() for name, path in (roots or {}).items()}
    for name, path in own.items():
        if not path.is_dir():
            raise DatasetNotFoundError(f"the {name} folder {path} does not exist: point roots."
                                       f"{name} (or --root) at the folder of its cells")
    configured = str(data_root) if data_root not in (None, "") else os.environ.get(
        "AECNN_DATA_ROOT", "")
    if own and not configured:  # a lab's folders only: nothing to generate
        return DataSource(next(iter(own.values())).parent, own,
                          all(is_synthetic(p) for p in own.values()))
    if configured:
        root = Path(configured).expanduser()
        if not root.is_dir():
            raise DatasetNotFoundError(
                f"data root {root} does not exist. Point data_root / AECNN_DATA_ROOT at a folder "
                "holding sipakmed/, herlev/ and/or cric/ (see data/README.md).")
    else:
        root = synthetic_root(n_per_class, seed)
        # the kit's own folder: data of another generator version is replaced
        generate_all(root, n_per_class=n_per_class, seed=seed, overwrite=True)
    datasets = {**{name: root / name for name in READERS if (root / name).is_dir()}, **own}
    if not datasets:
        raise DatasetNotFoundError(
            f"no dataset folder under {root}: expected one or more of "
            f"{', '.join(READERS)} (see data/README.md)")
    synthetic = all(is_synthetic(p) for p in datasets.values())
    return DataSource(root, datasets, synthetic)
