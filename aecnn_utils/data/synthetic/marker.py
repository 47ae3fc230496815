"""The ``SYNTHETIC.txt`` marker that every generated dataset root carries.

Its first line is :data:`SYNTHETIC_NOTICE`; the following ``key: value`` lines record how the
dataset was generated (generator version, dataset, seed, size and CRIC options), so that a second
call with the same parameters can leave the folder alone, and readers, notebooks and reports can
tell synthetic data from real data (:func:`is_synthetic`).
"""

from __future__ import annotations

from pathlib import Path

SYNTHETIC_NOTICE = "synthetic data: these are not the paper's numbers"
GENERATOR_VERSION = "2"
MARKER_NAME = "SYNTHETIC.txt"


def marker_fields(name: str, n_per_class: int, seed: int, cric_layout: str,
                   field_size: tuple[int, int]) -> dict[str, str]:
    """The marker fields of one generated dataset (CRIC adds its layout and field size)."""
    fields = {
        "generator": "aecnn_utils.data.synthetic",
        "generator_version": GENERATOR_VERSION,
        "dataset": name,
        "seed": str(seed),
        "n_per_class": str(n_per_class),
    }
    if name == "cric":
        fields["cric_layout"] = cric_layout
        fields["field_size"] = f"{field_size[0]}x{field_size[1]}"
    return fields


def read_marker(root: str | Path) -> dict[str, str] | None:
    """The ``key: value`` fields of a dataset root's ``SYNTHETIC.txt``, or None if it has none."""
    path = Path(root) / MARKER_NAME
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()
    if not lines or lines[0].strip() != SYNTHETIC_NOTICE:
        return None
    fields = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def is_synthetic(root: str | Path) -> bool:
    """True if ``root`` holds a dataset written by this generator (it has the SYNTHETIC marker)."""
    return read_marker(root) is not None



def write_marker(root: Path, fields: dict[str, str]) -> None:
    """Write ``root/SYNTHETIC.txt``: the notice, then one ``key: value`` line per field."""
    text = SYNTHETIC_NOTICE + "\n" + "".join(f"{k}: {v}\n" for k, v in fields.items())
    (root / MARKER_NAME).write_text(text, encoding="utf-8")
