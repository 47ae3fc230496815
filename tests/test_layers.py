"""The package's layers: every import of the kit runs down (or within a layer), never up, and no
module takes another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aecnn_utils"
#: The layers, bottom first: a module may import its own layer and those below it.
LAYERS: tuple[str, ...] = ("core", "data", "models", "evaluation", "training", "experiments",
                           "deploy", "reporting", "__main__")


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported kit module, imported names) of every import of the kit in ``path``,
    those inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: a relative import"
            if (node.module or "").startswith("aecnn_utils"):
                found.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names
                      if a.name.startswith("aecnn_utils")]
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer() -> None:
    rooms = {_layer(_module(p)) for p in MODULES}
    assert rooms - {"__init__"} == set(LAYERS), "a folder of the package is not a layer"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module(p))
def test_imports_run_down(path: Path) -> None:
    own = _layer(_module(path))
    for line, module, names in _imports(path):
        if own == "__init__":  # the package itself: its version only
            raise AssertionError(f"{path}:{line}: aecnn_utils/__init__.py imports {module}")
        target = _layer(module)
        if target == "__init__":
            assert names == ["__version__"], f"{path}:{line}: imports {names} from the package"
            continue
        assert LAYERS.index(target) <= LAYERS.index(own), (
            f"{_module(path)} ({own}) imports {module} ({target}), a layer above it "
            f"(line {line}): move the shared part down")
        private = [n for n in names if n.startswith("_")]
        assert not private, f"{path}:{line}: imports private {private} from {module}"


def test_the_command_line_answers_without_torch() -> None:
    """``--help`` of every command, an argument error and a bad ``predict`` folder load no
    torch (they answer in well under a second)."""
    code = """
import sys, contextlib, io
from aecnn_utils.__main__ import build_parser, main
parser = build_parser()
commands = parser._subparsers._group_actions[0].choices
for name, sub in commands.items():
    sub.format_help()
with contextlib.redirect_stderr(io.StringIO()) as err:
    assert main(["predict", ".", "no/such/folder"]) == 2
    try:
        main(["train", "--models", "no_such_model"])
    except SystemExit:
        pass
heavy = sorted(m for m in ("torch", "torchvision", "onnx", "albumentations") if m in sys.modules)
assert not heavy, heavy
assert "no/such/folder does not exist" in err.getvalue(), err.getvalue()
assert "invalid choice: 'no_such_model'" in err.getvalue(), err.getvalue()
with contextlib.redirect_stderr(io.StringIO()) as err:  # the study's methods load its module
    try:
        main(["study", "--methods", "no such method"])
    except SystemExit:
        pass
assert "'no such method' is not one of METHODS: 'plain'" in err.getvalue(), err.getvalue()
"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr


def test_the_command_lines_names_are_their_tables() -> None:
    """The choices of :mod:`aecnn_utils.core.names` are the keys of the tables they name."""
    from aecnn_utils.core import names
    from aecnn_utils.experiments import grid
    from aecnn_utils.models import MODELS
    from aecnn_utils.training.config import PROFILES

    assert names.MODEL_NAMES == tuple(MODELS)
    assert names.PROFILE_NAMES == tuple(PROFILES)
    assert names.SETTINGS == tuple(grid.SETTINGS)


def test_a_warning_on_the_command_line_is_one_line_without_code(tmp_path: Path) -> None:
    """``scan`` of a folder with an odd file name warns in one line that names the folder, with
    no file and line of ours and no source line."""
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    (tmp_path / "normal_columnar").mkdir()
    image = np.full((30, 40, 3), 200, np.uint8)
    Image.fromarray(image).save(tmp_path / "normal_columnar" / "x.bmp")
    done = subprocess.run([sys.executable, "-m", "aecnn_utils", "scan", "herlev", str(tmp_path)],
                          capture_output=True, text=True, cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines and all(line.startswith("DataWarning: ") for line in lines), lines
    assert ".py:" not in done.stderr and "normal_columnar" in done.stderr
