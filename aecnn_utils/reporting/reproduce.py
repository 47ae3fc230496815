"""Headless reproduction: run the numbered notebooks in order with papermill.

Source notebooks stay clean; executed copies go to ``runs/<profile>/notebooks/``. A failing
notebook is reported with the cell that failed and the error, and the run stops there.

``publish`` also writes a copy for readers (:func:`publish_notebook`, ``executed/<profile>/``
of the checkout, committed for the ``cpu`` profile): machine paths replaced by placeholders,
progress bars, widgets and timings dropped, figures re-encoded small.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aecnn_utils.core.errors import ConfigError, NotebookFailed
from aecnn_utils.core.io import atomic_write_text
from aecnn_utils.core.names import PROFILE_NAMES
from aecnn_utils.data.sources import project_dir
from aecnn_utils.training.published import check_reproducible
from aecnn_utils.training.runs import default_runs_dir


@dataclass(frozen=True)
class NotebookRun:
    """The outcome of one executed notebook."""

    name: str
    output: Path
    seconds: float


def notebook_paths(folder: Path | None = None) -> list[Path]:
    """The kit's notebooks (``NN_name.ipynb``), in order."""
    folder = folder or project_dir() / "notebooks"
    paths = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    return paths


#: Where ``reproduce --publish`` writes the readers' copies, under the checkout.
PUBLISHED = "executed"
#: Widest figure kept in a published notebook (pixels), and its JPEG quality.
PUBLISH_WIDTH, PUBLISH_QUALITY = 900, 80
#: What a published notebook must not contain: a home, temporary or machine folder.
MACHINE_PATH = re.compile(r"(?<![\w.<])/(?:root|home|Users|tmp|work|mnt|private|var)/")


def _small_image(png_b64: str) -> tuple[str, str]:
    """A base64 PNG as the smaller of itself and a JPEG at most :data:`PUBLISH_WIDTH` wide:
    ``(mime type, base64)``."""
    import cv2
    import numpy as np

    raw = base64.b64decode(png_b64)
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return "image/png", png_b64
    if image.shape[1] > PUBLISH_WIDTH:
        height = round(image.shape[0] * PUBLISH_WIDTH / image.shape[1])
        image = cv2.resize(image, (PUBLISH_WIDTH, height), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, PUBLISH_QUALITY])
    if ok and len(jpeg) < len(raw):
        return "image/jpeg", base64.b64encode(jpeg.tobytes()).decode()
    return "image/png", png_b64


def publish_notebook(executed: Path, out: Path, replacements: dict[str, str]) -> Path:
    """A reader's copy of an executed notebook: every text has the ``replacements`` (machine
    path -> placeholder, longest first) applied; stderr (progress bars, warnings), widgets and
    papermill's timings and paths are dropped; figures are re-encoded (:func:`_small_image`).
    Raises ``ValueError`` if a machine path (:data:`MACHINE_PATH`) is left; written
    atomically."""
    import nbformat

    order = sorted(((old, new) for old, new in replacements.items() if old),  # "" = unset
                   key=lambda kv: -len(kv[0]))

    def clean(text: Any) -> Any:
        if isinstance(text, list):
            return [clean(t) for t in text]
        if isinstance(text, dict):
            return {k: clean(v) for k, v in text.items()}
        if not isinstance(text, str):
            return text
        for old, new in order:
            text = text.replace(old, new)
        return text

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        cell.source = clean(cell.source)
        kept = []
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stderr":
                continue
            data = output.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                continue
            if "image/png" in data:
                mime, small = _small_image(data.pop("image/png"))
                data[mime] = small
            for key in ("text", "traceback", "evalue"):
                if key in output:
                    output[key] = clean(output[key])
            for mime in [m for m in data if m.startswith("text/")]:
                data[mime] = clean(data[mime])
            kept.append(output)
        cell.outputs = kept
    nb.metadata.pop("widgets", None)
    paper = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {"parameters": clean(paper.get("parameters", {})),
                                "input_path": f"notebooks/{Path(executed).name}"}
    text = nbformat.writes(nb)
    left = MACHINE_PATH.search(text)
    if left:
        raise ValueError(f"{executed.name}: a machine path is left after cleaning "
                         f"({text[max(0, left.start() - 40):left.end() + 40]!r}); add it to "
                         "the replacements")
    return atomic_write_text(out, text)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Environment variables set for the duration (the notebooks' kernels inherit them)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def published_dir(profile: str) -> Path:
    """Where the readers' copies of a profile's notebooks live: ``executed/<profile>/``."""
    return project_dir() / PUBLISHED / profile


def run_notebooks(profile: str = "smoke", data_root: str | Path | None = None, *,
                  seed: int = 0, device: str = "auto", runs_dir: Path | None = None,
                  figures_dir: Path | None = None, only: Sequence[str] | None = None,
                  kernel_name: str = "python3", publish: str | Path | None = None,
                  params: dict[str, Any] | None = None,
                  executor: dict[str, Any] | None = None, retrain: bool = False,
                  log: Callable[[str], None] = print) -> list[NotebookRun]:
    """Execute the notebooks in order, passing each the parameters it declares.

    Args:
        profile: ``smoke`` | ``cpu`` | ``paper``.
        data_root: real data folder (``sipakmed/``, ``herlev/``, ``cric/`` inside); None or ""
            for ``$AECNN_DATA_ROOT`` or, failing that, synthetic data.
        only: notebook name prefixes to run (e.g. ``["01"]``); default all.
        publish: a folder for each executed notebook's reader copy (:func:`publish_notebook`;
            the CLI's ``--publish``: :func:`published_dir`).
        params: further notebook parameters (the CLI's ``--param``, e.g. ``ablations``), each
            passed to the notebooks that declare it; one that no selected notebook declares
            is refused.
        executor: where the notebooks that train a grid train it (the fields of
            :class:`aecnn_utils.training.workers.Executor`; the CLI's ``--executor``,
            ``--workers`` and SLURM options), passed to each notebook that declares it.
        retrain: train every run here instead of using the published runs
            (:mod:`aecnn_utils.training.published`); without it, data other than the
            published runs' are refused before any notebook starts.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    if profile not in PROFILE_NAMES:
        raise ConfigError(f"profile={profile!r} is not valid; choose one of: "
                          f"{', '.join(PROFILE_NAMES)}")
    if retrain:
        with _environ(AECNN_PUBLISHED_RUNS="none"):  # the notebooks' kernels inherit it
            return run_notebooks(profile, data_root, seed=seed, device=device,
                                 runs_dir=runs_dir, figures_dir=figures_dir, only=only,
                                 kernel_name=kernel_name, publish=publish, params=params,
                                 executor=executor, log=log)
    check_reproducible(profile, data_root)
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
        **({"executor": executor} if executor else {}),
        **(params or {}),
    }
    paths = [p for p in notebook_paths(root / "notebooks")
             if not only or any(p.name.startswith(o) for o in only)]
    if not paths:
        raise ValueError(f"no notebook matches {list(only or [])}")
    # the overview last: its claims ledger reads the records the other notebooks write
    paths.sort(key=lambda p: p.name.startswith("00_"))
    declared_by = {p: pm.inspect_notebook(str(p)) for p in paths}
    unknown = sorted(set(params or {}) - {k for d in declared_by.values() for k in d})
    if unknown:
        raise ConfigError(f"parameter(s) {', '.join(unknown)} are declared by none of "
                          f"{', '.join(p.name for p in paths)}; see each notebook's "
                          "parameters cell")
    placeholders = {candidates["data_root"]: "<data_root>",  # for the published copies
                    candidates["figures_dir"]: "<figures_dir>",
                    candidates["runs_dir"]: "<runs_dir>", str(root): "<kit>",
                    str(Path.home()): "~"}
    results: list[NotebookRun] = []
    start_all = time.perf_counter()
    for k, path in enumerate(paths, start=1):
        passed = {key: value for key, value in candidates.items() if key in declared_by[path]}
        output = out_dir / path.name
        log(f"[{k}/{len(paths)}] {path.name} ({profile}) ...")
        start = time.perf_counter()
        try:
            pm.execute_notebook(str(path), str(output), parameters=passed,
                                kernel_name=kernel_name, cwd=str(path.parent),
                                progress_bar=False)
        except PapermillExecutionError as exc:
            raise NotebookFailed(
                f"{path.name} failed in cell {exc.cell_index} (execution count "
                f"{exc.exec_count}): {exc.ename}: {exc.evalue}\n"
                f"The executed copy with the full traceback is {output}") from exc
        seconds = time.perf_counter() - start
        log(f"[{k}/{len(paths)}] {path.name} done in {seconds:.1f} s -> {output}")
        if publish:
            published = publish_notebook(output, Path(publish) / path.name, placeholders)
            log(f"[{k}/{len(paths)}] published -> {published}")
        results.append(NotebookRun(path.name, output, seconds))
    log(f"{len(results)} notebook(s) in {time.perf_counter() - start_all:.1f} s; "
        f"figures in {figures_dir / profile}")
    return results
