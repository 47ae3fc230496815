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
