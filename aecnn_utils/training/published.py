"""Published runs: the records of a profile's runs, committed with the kit, used in place of
training.

``published_runs/<profile>/`` of the checkout holds finished run folders (their records,
:data:`RECORD_FILES`: no ``last.pt``; ``best.pt`` only of the small models trained on
SIPaKMeD, :data:`CHECKPOINTED`) and ``MANIFEST.json``: the kit version, the datasets the runs
were trained on (each one's cells, classes, file types and fingerprint:
:func:`dataset_inventory`), the runs each notebook used, and every file of every run with its
sha256. When a grid asks for a run that this machine has not trained, and the published folder
holds it, the run is copied into ``runs/<profile>/`` after its checksums are checked
(:func:`adopt`), and reused like a run trained here. Nothing is written into the published
folder but by :func:`publish_runs` (the ``publish-runs`` command).

A run is found by its id, which hashes the config, the data fingerprint and the kit version:
another user's data (the official SIPaKMeD BMP files, the full Herlev release) give other ids,
so they are never mistaken for ours; :func:`check_data` says what differs before a
reproduction starts, and what to run. ``$AECNN_PUBLISHED_RUNS`` names another published folder,
or ``none`` to train everything (``reproduce --retrain``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aecnn_utils import __version__
from aecnn_utils.core.errors import ConfigError
from aecnn_utils.core.io import atomic_write_text
from aecnn_utils.core.names import MODEL_NAMES
from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.data.sources import project_dir, resolve_data_source
from aecnn_utils.training.runs import default_runs_dir

#: The manifest's name in a published folder.
MANIFEST = "MANIFEST.json"
#: The files of a run folder that are published (not ``last.pt``, the resumable state, nor
#: what commands wrote into the folder later); ``best.pt`` only of :data:`CHECKPOINTED` models.
RECORD_FILES = ("config.yaml", "metrics.json", "epochs.npz", "history.csv", "splits.csv",
                "norm.json", "predictions_val.csv", "predictions_test.csv", "best.pt")
#: The models whose best.pt is published (small), for their runs trained on SIPaKMeD (not the
#: fine-tunes); the others' runs are records only.
CHECKPOINTED = ("aecnn", "mobilenet_v3_small")


class PublishedMismatch(ConfigError):
    """Published runs that do not fit: a changed file, or other data than theirs."""


def published_runs_dir(profile: str) -> Path | None:
    """The published runs of ``profile``: ``$AECNN_PUBLISHED_RUNS/<profile>`` if set (``none``:
    no published runs), else ``published_runs/<profile>`` of the checkout; ``None`` if absent."""
    env = os.environ.get("AECNN_PUBLISHED_RUNS", "")
    if env.lower() == "none":
        return None
    folder = (Path(env) if env else project_dir() / "published_runs") / profile
    return folder if (folder / MANIFEST).is_file() else None


def output_dir(run_dir: Path) -> Path:
    """Where a command writes what it makes of a run (``evaluate``, ``export``): the run's own
    folder, or for a published run its namesake under ``runs/<profile>/``, so that nothing is
    written into the published folder."""
    if not (run_dir.parent / MANIFEST).is_file():
        return run_dir
    return default_runs_dir() / run_dir.parent.name / run_dir.name


def sha256(path: Path) -> str:
    """The sha256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_inventory(name: str, root: str | Path) -> dict[str, Any]:
    """What a dataset folder holds, as the readers see it: cells, cells per class, file types
    and a fingerprint of every cell's class, file name and size (moving the folder keeps it)."""
    frame = scan_dataset(name, root)
    digest = hashlib.sha256()
    for row in frame[["source_class", "path"]].sort_values("path").itertuples(index=False):
        path = Path(row.path)
        digest.update(f"{row.source_class}|{path.name}|{path.stat().st_size}\n".encode())
    return {"cells": len(frame),
            "classes": {str(k): int(v) for k, v in frame["source_class"].value_counts()
                        .sort_index().items()},
            "file_types": sorted({Path(p).suffix.lower() for p in frame["path"]}),
            "fingerprint": digest.hexdigest()[:16]}


def publish_runs(runs: Path, folder: Path, profile: str, data_root: str | Path | None) -> Path:
    """Copy the :data:`RECORD_FILES` of every finished run folder of ``runs`` into the published
    ``folder``, each run copied beside and renamed into place, then write the manifest."""
    import yaml

    for run in sorted(p for p in runs.iterdir() if (p / "metrics.json").is_file()):
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
        weights = config["model"] in CHECKPOINTED and config["protocol"] == "cross"
        partial = folder / (run.name + ".publishing")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for name in RECORD_FILES:
            if (run / name).is_file() and (name != "best.pt" or weights):
                shutil.copy2(run / name, partial / name)
        shutil.rmtree(folder / run.name, ignore_errors=True)
        partial.rename(folder / run.name)
    return write_manifest(folder, profile, data_root, runs / "notebooks")


def _notebook_runs(folder: Path, published: set[str]) -> dict[str, list[str]]:
    """Notebook -> the published runs it used, from the run logs ``reproduce`` left in
    ``folder`` (``<notebook>.runs.tsv``, :func:`aecnn_utils.training.runs.note_run`)."""
    out = {}
    for log in sorted(folder.glob("*.runs.tsv")):
        names = {line.split("\t")[0] for line in log.read_text(encoding="utf-8").splitlines()}
        out[log.name.removesuffix(".runs.tsv")] = sorted(names & published)
    return out


def write_manifest(folder: Path, profile: str, data_root: str | Path | None,
                   notebooks: Path | None = None) -> Path:
    """Write ``MANIFEST.json`` of a published folder: every run's files with their sha256,
    the kit version, the inventory of each dataset the runs used (from ``data_root``), and
    the runs each notebook used (from the run logs in ``notebooks``, else as recorded
    before)."""
    runs = {}
    used: set[str] = set()
    for run in sorted(p for p in folder.iterdir() if (p / "metrics.json").is_file()):
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        used.update(_datasets(run))
        runs[run.name] = {
            "data_fingerprint": metrics.get("data_fingerprint", ""),
            "train_seconds": float(metrics.get("train_seconds", 0.0)),
            "files": {name: sha256(run / name) for name in RECORD_FILES
                      if (run / name).is_file()}}
    source = resolve_data_source(data_root)
    manifest = {"profile": profile, "kit_version": __version__,
                "data": {name: dataset_inventory(name, source.path(name))
                         for name in sorted(used)},
                "notebooks": _notebook_runs(notebooks, set(runs)) if notebooks else
                read_manifest(folder).get("notebooks", {}) if (folder / MANIFEST).is_file()
                else {},
                "runs": runs}
    return atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def _datasets(run: Path) -> set[str]:
    import yaml

    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    return {*config.get("train", ()), *config.get("val", ()), *config.get("test", ())}


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a published folder."""
    return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


def adopt(run_dir: Path, profile: str) -> bool:
    """Copy the published run named like ``run_dir`` into ``run_dir`` when this machine has no
    such folder: its files checked against the manifest first, copied beside and renamed into
    place. ``False`` when nothing is published under that name."""
    folder = published_runs_dir(profile)
    if folder is None or run_dir.exists():
        return False
    entry = read_manifest(folder)["runs"].get(run_dir.name)
    if entry is None:
        return False
    source = folder / run_dir.name
    for name, digest in entry["files"].items():
        if not (source / name).is_file() or sha256(source / name) != digest:
            raise PublishedMismatch(
                f"the published run {source} has a missing or changed {name} (its sha256 is "
                f"not the manifest's): restore it (`git checkout -- {folder.name}`), or train "
                "it here with `reproduce --retrain`")
    partial = run_dir.with_name(run_dir.name + ".adopting")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    partial.rename(run_dir)
    return True


def check_data(profile: str, data_root: str | Path | None,
               datasets: Mapping[str, Any] | None = None) -> list[str]:
    """What differs between the data at ``data_root`` and the data the published runs of
    ``profile`` were trained on (empty: the same cells); each line names the dataset."""
    folder = published_runs_dir(profile)
    if folder is None:
        return []
    published = datasets if datasets is not None else read_manifest(folder)["data"]
    source = resolve_data_source(data_root)
    lines = []
    for name, theirs in published.items():
        if name not in source.datasets:
            continue  # a notebook that needs it says so
        ours = dataset_inventory(name, source.path(name))
        if ours["fingerprint"] == theirs["fingerprint"]:
            continue
        what = [f"{ours['cells']} cells (published runs: {theirs['cells']})"]
        if ours["file_types"] != theirs["file_types"]:
            what.append(f"files {', '.join(ours['file_types'])} (published runs: "
                        f"{', '.join(theirs['file_types'])})")
        changed = {k for k in {*ours["classes"], *theirs["classes"]}
                   if ours["classes"].get(k) != theirs["classes"].get(k)}
        if changed:
            what.append(f"other counts in {', '.join(sorted(changed))}")
        elif len(what) == 1 and ours["cells"] == theirs["cells"]:
            what = ["the same counts, but other files (names or sizes)"]
        lines.append(f"{name}: {'; '.join(what)}")
    return lines


def check_reproducible(profile: str, data_root: str | Path | None) -> None:
    """Refuse, before anything runs, a reproduction from published runs on other data: the
    message says what differs and what to run (:func:`check_data`)."""
    lines = check_data(profile, data_root)
    if not lines:
        return
    folder = published_runs_dir(profile)
    seconds = sum(r["train_seconds"] for r in read_manifest(folder)["runs"].values())
    took = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
    raise PublishedMismatch(
        f"your data differ from those the published {profile} runs were trained on, so none "
        "of them can be reused:\n  " + "\n  ".join(lines) + "\n"
        f"Train every run on your data with `reproduce --profile {profile} --retrain` (the "
        f"published runs took {took} of training on a 2-core CPU; see --executor), or point "
        f"--data-root at the data that {folder / MANIFEST} describes.")


def training_plan(profile: str, notebooks: Sequence[str], runs_dir: Path) -> list[str]:
    """What each notebook will train before it starts, from the runs it used when the runs
    were published: a published run whose config and data give another id under this kit
    (a new kit version, a changed default) is stale and is trained again, for about the time
    it recorded. One line per notebook (``runs_dir``: where the notebooks look)."""
    from aecnn_utils.training.config import RunConfig

    folder = published_runs_dir(profile)
    if folder is None:
        return [f"{name}: no published runs; it trains what {runs_dir} lacks"
                for name in notebooks]
    manifest = read_manifest(folder)
    lines = []
    for name in notebooks:
        used = manifest.get("notebooks", {}).get(name)
        if used is None:
            lines.append(f"{name}: its runs are not recorded; it trains what it lacks")
            continue
        stale = 0.0, 0
        for run in used:
            config = RunConfig.load(folder / run / "config.yaml")
            fingerprint = manifest["runs"][run]["data_fingerprint"]
            if config.model in MODEL_NAMES and config.run_id(fingerprint) != run:
                stale = stale[0] + manifest["runs"][run]["train_seconds"], stale[1] + 1
        if stale[1]:
            lines.append(f"{name}: {stale[1]} of {len(used)} runs to train (stale or missing), "
                         f"about {stale[0] / 3600:.1f} h as they recorded on a 2-core CPU")
        else:
            lines.append(f"{name}: {len(used)} runs, all published: nothing to train")
    return lines
