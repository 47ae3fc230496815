"""The kit's own exceptions, kept in one light module so that the command line can name them
without importing torch. Data errors live with the data layer (:mod:`aecnn_utils.data.errors`).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A run configuration that cannot work; the message names the field and the fix."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunInterrupted(RuntimeError):
    """Raised by a callback (or Ctrl-C) to stop a run after a finished epoch; resumable."""


class RunBusy(RuntimeError):
    """Another process holds the run's lock (it is training the run); asked not to wait."""


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the error."""


class MissingDependency(ImportError):
    """A package of the kit's ``deploy`` extra (onnx, onnxruntime, onnxscript) is missing."""


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside the kit, so that the warning
    shows the user's own line (a notebook cell, a script), never one of ours."""
    import sys
    import warnings
    from pathlib import Path

    package = Path(__file__).resolve().parents[1]
    frame, level = sys._getframe(1), 1
    while frame is not None and Path(frame.f_code.co_filename).resolve().is_relative_to(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)
