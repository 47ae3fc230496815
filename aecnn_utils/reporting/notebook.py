"""The cells every notebook repeats: its start (style, output folder, data notice) and its end
(tables written, the list of saved files)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aecnn_utils.core.io import atomic_write_text
from aecnn_utils.data.sources import DataSource
from aecnn_utils.reporting import plots


def start(profile: str, figures_dir: str | Path, source: DataSource | None = None) -> Path:
    """Set the figure style, create ``figures_dir/<profile>/`` and show where the data comes
    from (with the synthetic-data warning when it is synthetic); return the folder."""
    from IPython.display import Markdown, display

    plots.set_style()
    out = Path(figures_dir) / profile
    out.mkdir(parents=True, exist_ok=True)
    if source is not None:
        display(Markdown(f"**Data:** {source.notice}  \n**Datasets:** "
                         f"{', '.join(source.datasets)}  \n**Figures:** `{out.name}/`"))
        if source.synthetic:
            display(Markdown("> **Synthetic data: these are not the paper's numbers.** Point "
                             "`data_root` (or `AECNN_DATA_ROOT`) at the real datasets."))
    return out


def save_outputs(out: Path, written: list[Path],
                 tables: dict[str, pd.DataFrame] | None = None,
                 notice: str | None = None) -> list[Path]:
    """Write ``tables`` as CSV into ``out`` (atomically, with a ``data`` column holding
    ``notice`` when given), check that every file of ``written`` exists and is not empty, and
    print the list. Returns all files written."""
    written = list(written)
    for name, frame in (tables or {}).items():
        if notice is not None:
            frame = frame.assign(data=notice)
        written.append(atomic_write_text(out / name, frame.to_csv(index=False)))
    empty = [str(p) for p in written if not Path(p).is_file() or Path(p).stat().st_size == 0]
    if empty:
        raise RuntimeError(f"these outputs were not written: {', '.join(empty)}")
    print(f"{len(written)} files written to {out.name}/:",
          ", ".join(sorted(Path(p).name for p in written)))
    return written
