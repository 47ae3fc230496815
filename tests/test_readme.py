"""The README's published numbers are the ones our code wrote, not typed in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _block(text: str, name: str) -> str | None:
    m = re.search(rf"<!-- begin {name} -->\n(.*?)<!-- end {name} -->", text, re.S)
    return m.group(1) if m else None


@pytest.mark.parametrize(("block", "source"), [
    ("cpu-table2", "figures/cpu/04_table2.md"),
])
def test_readme_results_match_the_files_our_runs_wrote(block: str, source: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = _block(readme, block)
    assert shown is not None, f"README lacks the block <!-- begin {block} -->"
    assert shown.strip() == (ROOT / source).read_text(encoding="utf-8").strip(), \
        f"README block {block} differs from {source}: copy the file's content into the README"
