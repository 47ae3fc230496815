"""Headless reproduction: run the numbered notebooks in order with papermill.

Source notebooks stay clean; executed copies go to ``runs/<profile>/notebooks/``. A failing
notebook is reported with the cell that failed and the error, and the run stops there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import PROFILE_NAMES, ConfigError
from .data.sources import project_dir
from .runs import default_runs_dir


@dataclass(frozen=True)
class NotebookRun:
    """The outcome of one executed notebook."""

    name: str
    output: Path
    seconds: float


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the error."""


def notebook_paths(folder: Path | None = None) -> list[Path]:
    """The kit's notebooks (``NN_name.ipynb``), in order."""
    folder = folder or project_dir() / "notebooks"
    paths = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    return paths


def run_notebooks(profile: str = "smoke", data_root: str | Path | None = None, *,
                  seed: int = 0, device: str = "auto", runs_dir: Path | None = None,
                  figures_dir: Path | None = None, only: Sequence[str] | None = None,
                  kernel_name: str = "python3",
                  log: Callable[[str], None] = print) -> list[NotebookRun]:
    """Execute the notebooks in order, passing each the parameters it declares.

    Args:
        profile: ``smoke`` | ``cpu`` | ``paper``.
        data_root: real data folder (``sipakmed/``, ``herlev/``, ``cric/`` inside); None or ""
            for ``$AECNN_DATA_ROOT`` or, failing that, synthetic data.
        only: notebook name prefixes to run (e.g. ``["01"]``); default all.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    if profile not in PROFILE_NAMES:
        raise ConfigError(f"profile={profile!r} is not valid; choose one of: "
                          f"{', '.join(PROFILE_NAMES)}")
    root = project_dir()
    runs_dir = Path(runs_dir or default_runs_dir())
    figures_dir = Path(figures_dir or root / "figures")
    out_dir = runs_dir / profile / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    candidates = {
        "profile": profile,
        # the notebooks run in notebooks/: a relative folder is the caller's, so resolve it here
        "data_root": str(Path(data_root).resolve()) if data_root else "",
        "figures_dir": str(figures_dir.resolve()),
        "runs_dir": str(runs_dir.resolve()),
        "seed": seed,
        "device": device,
    }
    paths = [p for p in notebook_paths(root / "notebooks")
             if not only or any(p.name.startswith(o) for o in only)]
    if not paths:
        raise ValueError(f"no notebook matches {list(only or [])}")
    results: list[NotebookRun] = []
    start_all = time.perf_counter()
    for k, path in enumerate(paths, start=1):
        declared = pm.inspect_notebook(str(path))
        params = {key: value for key, value in candidates.items() if key in declared}
        output = out_dir / path.name
        log(f"[{k}/{len(paths)}] {path.name} ({profile}) ...")
        start = time.perf_counter()
        try:
            pm.execute_notebook(str(path), str(output), parameters=params,
                                kernel_name=kernel_name, cwd=str(path.parent),
                                progress_bar=False)
        except PapermillExecutionError as exc:
            raise NotebookFailed(
                f"{path.name} failed in cell {exc.cell_index} (execution count "
                f"{exc.exec_count}): {exc.ename}: {exc.evalue}\n"
                f"The executed copy with the full traceback is {output}") from exc
        seconds = time.perf_counter() - start
        log(f"[{k}/{len(paths)}] {path.name} done in {seconds:.1f} s -> {output}")
        results.append(NotebookRun(path.name, output, seconds))
    log(f"{len(results)} notebook(s) in {time.perf_counter() - start_all:.1f} s; "
        f"figures in {figures_dir / profile}")
    return results
