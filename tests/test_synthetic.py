"""Tests of the synthetic dataset generator (aecnn_utils.data.synthetic)."""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from aecnn_utils.data import synthetic
from aecnn_utils.data.synthetic import (
    CLASSES,
    CRIC_CSV_COLUMNS,
    HERLEV_MASK_COLORS,
    MARKER_NAME,
    SYNTHETIC_NOTICE,
    generate_all,
    generate_dataset,
    is_synthetic,
    layouts,
)
from aecnn_utils.data.taxonomy import DATASET_NAMES

FIELD = (320, 240)
N = 7


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synthetic")
    paths = generate_all(root, n_per_class=N, seed=0, field_size=FIELD)
    paths["cric_cropped"] = generate_dataset("cric", root / "cric_cropped", N, 0,
                                             cric_layout="cropped", field_size=FIELD)
    return paths


# ----------------------------------------------------------------------------- layouts
def test_generate_all_returns_marked_roots(data: dict[str, Path]) -> None:
    parent = data["sipakmed"].parent
    for name in DATASET_NAMES:
        assert data[name] == parent / name
        assert is_synthetic(data[name])
        text = (data[name] / MARKER_NAME).read_text()
        assert text.splitlines()[0] == SYNTHETIC_NOTICE
        assert "seed: 0" in text
        assert f"n_per_class: {N}" in text
        assert f"generator_version: {synthetic.GENERATOR_VERSION}" in text
    assert not _leftovers(parent)


def test_sipakmed_layout(data: dict[str, Path]) -> None:
    root = data["sipakmed"]
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [MARKER_NAME] + [f"im_{c}" for c in CLASSES["sipakmed"]])
    for cls in CLASSES["sipakmed"]:
        outer = root / f"im_{cls}"
        assert [p.name for p in outer.iterdir()] == [f"im_{cls}"]
        folder = outer / f"im_{cls}"
        crops = sorted((folder / "CROPPED").iterdir())
        assert len(crops) == N
        clusters: dict[str, list[int]] = defaultdict(list)
        for p in crops:
            m = re.fullmatch(r"(\d{3})_(\d{2})\.bmp", p.name)
            assert m, p.name
            clusters[m.group(1)].append(int(m.group(2)))
            img = cv2.imread(str(p))
            assert img is not None and img.ndim == 3
            assert 70 <= img.shape[0] <= 160 and 70 <= img.shape[1] <= 160
        assert sorted(clusters) == [f"{i:03d}" for i in range(1, len(clusters) + 1)]
        expected_beside = {"CROPPED"}
        for nnn, cells in clusters.items():
            assert 2 <= len(cells) <= 5
            assert sorted(cells) == list(range(1, len(cells) + 1))
            field = cv2.imread(str(folder / f"{nnn}.bmp"))
            assert field.shape == (192, 256, 3)
            expected_beside.add(f"{nnn}.bmp")
            for mm in cells:
                for kind in ("cyt", "nuc"):
                    dat = folder / f"{nnn}_{kind}{mm:02d}.dat"
                    expected_beside.add(dat.name)
                    pts = np.loadtxt(dat, delimiter=",", ndmin=2)
                    assert pts.shape[1] == 2 and len(pts) >= 8
        assert {p.name for p in folder.iterdir()} == expected_beside


def test_herlev_layout(data: dict[str, Path]) -> None:
    root = data["herlev"]
    assert sorted(p.name for p in root.iterdir()) == sorted([MARKER_NAME, *CLASSES["herlev"]])
    colours = {tuple(reversed(c)) for c in HERLEV_MASK_COLORS.values()}  # BGR as read by cv2
    all_slides: set[str] = set()
    for cls in CLASSES["herlev"]:
        files = sorted(p.name for p in (root / cls).iterdir())
        images = [f for f in files if not f.endswith("-d.bmp")]
        masks = [f for f in files if f.endswith("-d.bmp")]
        assert len(images) == N and len(masks) == N
        slides = Counter()
        for name in images:
            m = re.fullmatch(r"(\d{9})-(\d{9})-(\d{3})\.BMP", name)
            assert m, name
            slides[m.group(1)] += 1
            stem = name[: -len(".BMP")]
            assert f"{stem}-d.bmp" in masks
            img = cv2.imread(str(root / cls / name))
            mask = cv2.imread(str(root / cls / f"{stem}-d.bmp"))
            assert 80 <= img.shape[0] <= 200 and 80 <= img.shape[1] <= 200
            assert mask.shape == img.shape
            found = {tuple(int(v) for v in c) for c in np.unique(mask.reshape(-1, 3), axis=0)}
            assert found == colours  # background, cytoplasm and nucleus, nothing else
        assert all(2 <= k <= 4 for k in slides.values()), slides
        assert not all_slides & set(slides)  # slide numbers are not reused across classes
        all_slides |= set(slides)


def _read_cric_csv(root: Path) -> tuple[list[str], list[dict[str, str]]]:
    with (root / "classifications.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def test_cric_official_layout(data: dict[str, Path]) -> None:
    root = data["cric"]
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [MARKER_NAME, "base", "classifications.csv", "classifications.json"])
    columns, rows = _read_cric_csv(root)
    assert tuple(columns) == CRIC_CSV_COLUMNS
    assert len(rows) == N * len(CLASSES["cric"])
    assert Counter(r["bethesda_system"] for r in rows) == {c: N for c in CLASSES["cric"]}
    assert len({r["cell_id"] for r in rows}) == len(rows)

    images = json.loads((root / "classifications.json").read_text())
    from_json = [
        {"image_id": str(img["image_id"]), "image_filename": img["image_name"],
         "image_doi": img["image_doi"], "cell_id": str(c["cell_id"]),
         "bethesda_system": c["bethesda_system"], "nucleus_x": str(c["nucleus_x"]),
         "nucleus_y": str(c["nucleus_y"])}
        for img in images for c in img["classifications"]
    ]
    assert from_json == rows

    assert sorted(p.name for p in (root / "base").iterdir()) == sorted(
        img["image_name"] for img in images)
    near_border = 0
    mixed = 0
    for img in images:
        assert 3 <= len(img["classifications"]) <= 6
        mixed += len({c["bethesda_system"] for c in img["classifications"]}) > 1
        path = root / "base" / img["image_name"]
        assert path.suffix == ".png"
        field = cv2.imread(str(path))
        assert (field.shape[1], field.shape[0]) == FIELD
        for c in img["classifications"]:
            x, y = c["nucleus_x"], c["nucleus_y"]
            assert isinstance(x, int) and isinstance(y, int)
            assert 0 <= x < FIELD[0] and 0 <= y < FIELD[1]
            half = synthetic.CRIC_CROP_SIZE // 2
            near_border += min(x, y, FIELD[0] - 1 - x, FIELD[1] - 1 - y) < half
    assert near_border >= 2  # crop clamping gets exercised
    assert mixed >= len(images) // 2


def test_cric_cropped_layout_matches_official_fields(data: dict[str, Path]) -> None:
    root, official = data["cric_cropped"], data["cric"]
    assert sorted(p.name for p in root.iterdir()) == sorted([MARKER_NAME, *CLASSES["cric"]])
    _, rows = _read_cric_csv(official)
    by_cell = {(r["image_id"], r["cell_id"]): r for r in rows}
    size = synthetic.CRIC_CROP_SIZE
    for cls in CLASSES["cric"]:
        files = sorted((root / cls).iterdir())
        assert len(files) == N
        for p in files:
            m = re.fullmatch(r"(\d+)_(\d+)\.png", p.name)
            assert m, p.name
            row = by_cell[(m.group(1), m.group(2))]
            assert row["bethesda_system"] == cls
            crop = cv2.imread(str(p))
            assert crop.shape == (size, size, 3)
            # The crop is the official field cut around the nucleus, clamped inside the field.
            field = cv2.imread(str(official / "base" / row["image_filename"]))
            x0 = min(max(int(row["nucleus_x"]) - size // 2, 0), FIELD[0] - size)
            y0 = min(max(int(row["nucleus_y"]) - size // 2, 0), FIELD[1] - size)
            assert np.array_equal(crop, field[y0:y0 + size, x0:x0 + size])


def test_readers_parse_the_generated_layouts(data: dict[str, Path]) -> None:
    readers = pytest.importorskip("aecnn_utils.data.readers")
    for key, name in (("sipakmed", "sipakmed"), ("herlev", "herlev"), ("cric", "cric"),
                      ("cric_cropped", "cric")):
        df = readers.scan_dataset(name, data[key], scheme="native")
        assert len(df) == N * len(CLASSES[name]), key
        assert set(df["source_class"]) == set(CLASSES[name])
        assert df["patient_or_slide"].nunique() < len(df)  # cells share groups


# ----------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", DATASET_NAMES)
def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path: Path, name: str) -> None:
    a = generate_dataset(name, tmp_path / "a", 3, seed=5, field_size=FIELD)
    b = generate_dataset(name, tmp_path / "b", 3, seed=5, field_size=FIELD)
    c = generate_dataset(name, tmp_path / "c", 3, seed=6, field_size=FIELD)
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert ha == hb
    images = [k for k in ha if k.lower().endswith((".bmp", ".png"))]
    differing = [k for k in images if ha[k] != hc.get(k)]
    assert len(differing) > 0.8 * len(images)


@pytest.mark.parametrize("name", ["sipakmed", "herlev"])
def test_cell_images_do_not_depend_on_generation_order(tmp_path: Path, name: str) -> None:
    small = _hashes(generate_dataset(name, tmp_path / "small", 3, seed=2))
    large = _hashes(generate_dataset(name, tmp_path / "large", 6, seed=2))

    def cells(h: dict[str, str]) -> set[str]:
        return {v for k, v in h.items() if re.search(r"(CROPPED/.*\.bmp|\.BMP)$", k)}

    assert cells(small) <= cells(large)


# ----------------------------------------------------------------------------- file safety
def test_second_call_is_a_no_op(tmp_path: Path) -> None:
    root = generate_dataset("herlev", tmp_path / "herlev", 2, seed=1)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert generate_dataset("herlev", root, 2, seed=1) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    assert not _leftovers(tmp_path)


def test_refuses_unmarked_non_empty_folder(tmp_path: Path) -> None:
    root = tmp_path / "sipakmed"
    root.mkdir()
    (root / "my_real_image.bmp").write_bytes(b"precious")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match=MARKER_NAME):
            generate_dataset("sipakmed", root, 2, overwrite=overwrite)
        assert (root / "my_real_image.bmp").read_bytes() == b"precious"
        assert [p.name for p in root.iterdir()] == ["my_real_image.bmp"]
    assert not _leftovers(tmp_path)


def test_refuses_a_file_as_root(tmp_path: Path) -> None:
    target = tmp_path / "cric"
    target.write_text("not a folder")
    with pytest.raises(FileExistsError, match="not a folder"):
        generate_dataset("cric", target, 1, field_size=FIELD)
    assert target.read_text() == "not a folder"


def test_empty_existing_folder_is_filled(tmp_path: Path) -> None:
    root = tmp_path / "herlev"
    root.mkdir()
    generate_dataset("herlev", root, 1)
    assert is_synthetic(root)
    assert len(list(root.rglob("*.BMP"))) == len(CLASSES["herlev"])


def test_other_parameters_need_overwrite(tmp_path: Path) -> None:
    root = generate_dataset("cric", tmp_path / "cric", 1, seed=0, field_size=FIELD)
    first = _hashes(root)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate_dataset("cric", root, 1, seed=1, field_size=FIELD)
    assert _hashes(root) == first
    generate_dataset("cric", root, 1, seed=1, field_size=FIELD, overwrite=True)
    assert "seed: 1" in (root / MARKER_NAME).read_text()
    assert _hashes(root) != first
    generate_dataset("cric", root, 1, seed=1, field_size=FIELD, cric_layout="cropped",
                     overwrite=True)
    assert not (root / "classifications.csv").exists()
    assert (root / "SCC").is_dir()
    assert not _leftovers(tmp_path)


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real_encode = layouts._encode

    def failing_encode(path: Path, img: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        real_encode(path, img)

    monkeypatch.setattr(layouts, "_encode", failing_encode)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset("herlev", tmp_path / "herlev", 3)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "mendeley"}, "sipakmed, herlev, cric"),
        ({"n_per_class": 0}, "n_per_class"),
        ({"n_per_class": 2.5}, "n_per_class"),
        ({"seed": -1}, "seed"),
        ({"cric_layout": "tiles"}, "official, cropped"),
        ({"field_size": (64, 64)}, "field_size"),
        ({"field_size": (320,)}, "field_size"),
    ],
)
def test_bad_parameters(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"name": "cric", "root": tmp_path / "x", "n_per_class": 1, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_dataset(**args)
    assert list(tmp_path.iterdir()) == []


def test_module_does_not_import_torch() -> None:
    files = sorted(Path(synthetic.__file__).parent.glob("*.py"))  # every module of the package
    assert len(files) > 1
    for path in files:
        tree = ast.parse(path.read_text())
        modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                   for a in n.names}
        modules |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                    if isinstance(n, ast.ImportFrom)}
        assert "torch" not in modules and "torchvision" not in modules, path.name


# ----------------------------------------------------------------------------- morphology
def _dark_fraction(path: Path, threshold: int = 100) -> float:
    grey = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
    return float((grey < threshold).mean())


def _mean_dark(files: list[Path]) -> float:
    return float(np.mean([_dark_fraction(p) for p in files]))


def test_abnormal_cells_have_more_dark_nuclear_area(data: dict[str, Path]) -> None:
    herlev = data["herlev"]
    dark = {c: _mean_dark(sorted((herlev / c).glob("*.BMP"))) for c in CLASSES["herlev"]}
    for abnormal in ("carcinoma_in_situ", "severe_dysplastic", "moderate_dysplastic"):
        for normal in ("normal_superficiel", "normal_intermediate"):
            assert dark[abnormal] > 3 * dark[normal], dark

    cric = data["cric_cropped"]
    hsil = _mean_dark(sorted((cric / "HSIL").glob("*.png")))
    nilm = _mean_dark(sorted((cric / "Negative for intraepithelial lesion").glob("*.png")))
    assert hsil > nilm

    sip = data["sipakmed"]
    crops = {c: sorted((sip / f"im_{c}" / f"im_{c}" / "CROPPED").glob("*.bmp"))
             for c in CLASSES["sipakmed"]}
    # koilocytes: enlarged, hyperchromatic nucleus vs the small nucleus of mature squamous cells
    assert _mean_dark(crops["Koilocytotic"]) > _mean_dark(crops["Superficial-Intermediate"])


def test_nucleus_to_cytoplasm_ratio_grows_with_grade(data: dict[str, Path]) -> None:
    nucleus = np.array(HERLEV_MASK_COLORS["nucleus"][::-1])
    cytoplasm = np.array(HERLEV_MASK_COLORS["cytoplasm"][::-1])
    order = ("normal_superficiel", "normal_intermediate", "light_dysplastic",
             "moderate_dysplastic", "severe_dysplastic", "carcinoma_in_situ")
    ratios = []
    for cls in order:
        per_cell = []
        for p in sorted((data["herlev"] / cls).glob("*-d.bmp")):
            mask = cv2.imread(str(p))
            n = np.all(mask == nucleus, axis=2).sum()
            c = np.all(mask == cytoplasm, axis=2).sum()
            per_cell.append(n / (n + c))
        ratios.append(float(np.mean(per_cell)))
    assert ratios == sorted(ratios), dict(zip(order, ratios, strict=True))


def test_every_class_is_drawn_as_its_own_cell_type() -> None:
    """Normal classes are drawn from normal archetypes only, abnormal classes from abnormal ones
    (generator version 1 drew SIPaKMeD's rows in reverse class order)."""
    from aecnn_utils.data.synthetic.styles import CLASS_ARCHETYPES
    from aecnn_utils.data.taxonomy import map_label

    normal = {"superficial", "intermediate", "parabasal", "metaplastic", "columnar"}
    for dataset in DATASET_NAMES:
        assert list(CLASS_ARCHETYPES[dataset]) == list(CLASSES[dataset])
        for cls, mixture in CLASS_ARCHETYPES[dataset].items():
            drawn_normal = set(mixture) <= normal
            assert drawn_normal == (map_label(dataset, cls, "binary") == "normal"), (dataset, cls)
    sipakmed = CLASS_ARCHETYPES["sipakmed"]
    assert set(sipakmed["Koilocytotic"]) == {"koilocyte"}
    assert set(sipakmed["Dyskeratotic"]) == {"dyskeratotic"}
    assert set(sipakmed["Parabasal"]) == {"parabasal"}
