"""Readers on synthetic layouts, on hand-made odd layouts, and on the real data when configured."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from aecnn_utils.data import taxonomy
from aecnn_utils.data.errors import DatasetNotFoundError, DataWarning, LabelError, LayoutError
from aecnn_utils.data.readers import (
    COLUMNS,
    CRIC_CSV_COLUMNS,
    crop_box,
    detect_layout,
    scan_dataset,
)
from aecnn_utils.data.taxonomy import PUBLISHED_COUNTS, dataset_summary

from .conftest import SYNTHETIC_PER_CLASS


def _img(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 200, np.uint8)).save(path)
    return path


# ----------------------------------------------------------------------------- synthetic layouts
@pytest.mark.parametrize("name", ["sipakmed", "herlev", "cric"])
def test_synthetic_layout_reads_every_class(synthetic_root: Path, name: str) -> None:
    df = scan_dataset(name, synthetic_root / name, scheme="native")
    assert list(df.columns) == list(COLUMNS)
    counts = df["source_class"].value_counts()
    assert set(counts.index) == set(taxonomy.source_classes(name))
    assert (counts == SYNTHETIC_PER_CLASS).all()
    assert df["path"].map(lambda p: Path(p).is_file()).all()
    assert df["label"].between(0, len(taxonomy.source_classes(name)) - 1).all()
    assert df["patient_or_slide"].nunique() < len(df)  # groups hold several cells


def test_sipakmed_ignores_fields_and_dat_files_and_groups_by_cluster(synthetic_root: Path) -> None:
    df = scan_dataset("sipakmed", synthetic_root / "sipakmed")
    assert df["path"].str.contains("/CROPPED/").all()
    assert not df["path"].str.endswith(".dat").any()
    # group = <Class>/NNN taken from NNN_MM
    row = df.iloc[0]
    stem = Path(row["path"]).stem
    assert row["patient_or_slide"] == f"{row['source_class']}/{stem.split('_')[0]}"
    assert (df["crop_x0"] == -1).all()


def test_herlev_skips_masks_and_groups_by_slide(synthetic_root: Path) -> None:
    df = scan_dataset("herlev", synthetic_root / "herlev")
    assert not df["path"].str.lower().str.endswith("-d.bmp").any()
    assert all(Path(p).name.startswith(g) for p, g in zip(df["path"], df["patient_or_slide"],
                                                         strict=True))
    assert len(list((synthetic_root / "herlev").rglob("*-d.bmp"))) == len(df)


def test_cric_official_crops_lie_inside_fields(synthetic_root: Path) -> None:
    df = scan_dataset("cric", synthetic_root / "cric", crop_size=64)
    assert (df["crop_x0"] >= 0).all() and (df["crop_y0"] >= 0).all()
    assert ((df["crop_x1"] - df["crop_x0"]) == 64).all()
    assert ((df["crop_y1"] - df["crop_y0"]) == 64).all()
    assert (df["crop_x1"] <= 320).all() and (df["crop_y1"] <= 240).all()
    csv = pd.read_csv(synthetic_root / "cric" / "classifications.csv")
    assert len(df) == len(csv)
    assert set(df["patient_or_slide"]) == set(csv["image_id"].astype(str))


def test_cric_json_equals_csv(synthetic_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "cric"
    shutil.copytree(synthetic_root / "cric", copy)
    from_csv = scan_dataset("cric", copy)
    (copy / "classifications.csv").unlink()
    from_json = scan_dataset("cric", copy)
    pd.testing.assert_frame_equal(
        from_csv.sort_values(["path", "crop_x0", "crop_y0"]).reset_index(drop=True),
        from_json.sort_values(["path", "crop_x0", "crop_y0"]).reset_index(drop=True))


def test_cric_cropped_layout(tmp_path: Path) -> None:
    from aecnn_utils.data.synthetic import generate_dataset

    root = generate_dataset("cric", tmp_path / "cric", n_per_class=3, cric_layout="cropped")
    df = scan_dataset("cric", root)
    assert len(df) == 18 and (df["crop_x0"] == -1).all()
    assert df.groupby("source_class").size().eq(3).all()


@pytest.mark.parametrize(
    ("cx", "cy", "box"),
    [(50, 40, (0, 0, 100, 100)),       # top-left corner: shifted inside
     (300, 300, (250, 250, 350, 350)),  # inside: centred
     (395, 395, (300, 300, 400, 400))],  # bottom-right corner
)
def test_crop_box_is_clamped(cx: int, cy: int, box: tuple[int, int, int, int]) -> None:
    assert crop_box(cx, cy, 400, 400, 100) == box


def test_crop_box_small_image() -> None:
    assert crop_box(10, 10, 60, 200, 100) == (0, 0, 60, 100)


def test_schemes_relabel(synthetic_root: Path) -> None:
    binary = scan_dataset("herlev", synthetic_root / "herlev", scheme="binary")
    assert set(binary["label_name"]) == {"normal", "abnormal"}
    assert (binary["label"] == (binary["label_name"] == "abnormal")).all()
    with pytest.warns(DataWarning, match="Dyskeratotic.*three_tier"):
        tiers = scan_dataset("sipakmed", synthetic_root / "sipakmed", scheme="three_tier")
    assert "Dyskeratotic" not in set(tiers["source_class"])


def test_dataset_summary(synthetic_root: Path) -> None:
    df = pd.concat([scan_dataset(n, synthetic_root / n) for n in ("sipakmed", "herlev", "cric")])
    summary = dataset_summary(df)
    assert summary["n_cells"].sum() == len(df)
    assert len(summary) == 5 + 7 + 6
    assert (summary["n_groups"] <= summary["n_cells"]).all()


def test_detect_layout(synthetic_root: Path, tmp_path: Path) -> None:
    for name in ("sipakmed", "herlev", "cric"):
        assert detect_layout(synthetic_root / name) == name
    assert detect_layout(tmp_path) is None


def test_zip_wrapper_folder_is_followed(synthetic_root: Path, tmp_path: Path) -> None:
    wrapped = tmp_path / "download" / "smear2005"
    shutil.copytree(synthetic_root / "herlev", wrapped / "New database pictures")
    df = scan_dataset("herlev", tmp_path / "download")
    assert len(df) == 7 * SYNTHETIC_PER_CLASS


# ----------------------------------------------------------------------------- bad layouts
def test_missing_root_names_path_and_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"sipakmed root not found: .*nope.*im_<Class>"):
        scan_dataset("sipakmed", tmp_path / "nope")


def test_wrong_layout_says_what_was_expected_and_found(synthetic_root: Path) -> None:
    with pytest.raises(LayoutError, match=r"not in the sipakmed layout.*found: .*carcinoma_in_situ/"
                                          r".*looks like the herlev layout"):
        scan_dataset("sipakmed", synthetic_root / "herlev")


def test_unknown_dataset_name() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        scan_dataset("mnist", ".")


def test_unknown_sipakmed_class_folder(tmp_path: Path) -> None:
    _img(tmp_path / "im_Parabasal" / "CROPPED" / "001_01.bmp")
    _img(tmp_path / "im_Basal" / "CROPPED" / "001_01.bmp")
    with pytest.raises(LabelError, match=r"im_Basal.*'Basal' is not one of"):
        scan_dataset("sipakmed", tmp_path)


def test_sipakmed_class_without_cropped_folder(tmp_path: Path) -> None:
    _img(tmp_path / "im_Parabasal" / "001.bmp")
    with pytest.raises(LayoutError, match="has no CROPPED/ folder"):
        scan_dataset("sipakmed", tmp_path)


def test_empty_and_missing_class_folders_warn(tmp_path: Path) -> None:
    _img(tmp_path / "im_Parabasal" / "CROPPED" / "001_01.bmp")
    (tmp_path / "im_Metaplastic" / "CROPPED").mkdir(parents=True)
    with pytest.warns(DataWarning) as record:
        df = scan_dataset("sipakmed", tmp_path)
    messages = " | ".join(str(w.message) for w in record)
    assert "im_Metaplastic/CROPPED holds no images" in messages
    assert "no folder for the classes: Superficial-Intermediate, Koilocytotic, Dyskeratotic" \
        in messages
    assert len(df) == 1


def test_all_empty_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "normal_columnar").mkdir()
    with pytest.warns(DataWarning), pytest.raises(LayoutError, match="no herlev images found"):
        scan_dataset("herlev", tmp_path)


def test_odd_file_names_warn_and_become_own_group(tmp_path: Path) -> None:
    _img(tmp_path / "normal_columnar" / "cell_a.bmp")
    _img(tmp_path / "normal_columnar" / "123-456-001.BMP")
    with pytest.warns(DataWarning, match="do not follow the herlev naming") as caught:
        df = scan_dataset("herlev", tmp_path)
    assert sorted(df["patient_or_slide"]) == ["123", "normal_columnar/cell_a"]
    # each warning names the caller's line (here, this test's), never a line of the kit
    assert {Path(w.filename).resolve() for w in caught} == {Path(__file__).resolve()}


def test_unknown_herlev_folder(tmp_path: Path) -> None:
    _img(tmp_path / "normal_columnar" / "1-1-1.bmp")
    _img(tmp_path / "metaplastic" / "1-1-2.bmp")
    with pytest.raises(LabelError, match="unknown Herlev class folder .*metaplastic"):
        scan_dataset("herlev", tmp_path)


def _cric_csv(root: Path, rows: list[str], header: str | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    header = header or ",".join(CRIC_CSV_COLUMNS)
    (root / "classifications.csv").write_text("\n".join([header, *rows]) + "\n")


def test_cric_missing_columns(tmp_path: Path) -> None:
    _cric_csv(tmp_path, ["1,a.png,x,1,LSIL"], header="image_id,image_filename,image_doi,cell_id,"
                                                     "bethesda_system")
    with pytest.raises(LayoutError, match="lacks the columns nucleus_x, nucleus_y"):
        scan_dataset("cric", tmp_path)


def test_cric_unknown_class_names_row(tmp_path: Path) -> None:
    _img(tmp_path / "a.png", (200, 100))
    _cric_csv(tmp_path, ["1,a.png,x,1,LSIL,10,10", "1,a.png,x,2,AGC,20,20"])
    with pytest.raises(LabelError, match=r"classifications.csv:3: unknown bethesda_system 'AGC'"):
        scan_dataset("cric", tmp_path)


def test_cric_missing_field_image(tmp_path: Path) -> None:
    _cric_csv(tmp_path, ["7,missing.png,x,1,LSIL,10,10"])
    with pytest.raises(DatasetNotFoundError, match="field image 'missing.png' not found"):
        scan_dataset("cric", tmp_path)


def test_cric_nucleus_outside_field(tmp_path: Path) -> None:
    _img(tmp_path / "img" / "a.png", (200, 100))
    _cric_csv(tmp_path, ["1,a.png,x,1,HSIL,250,10"])
    with pytest.raises(LayoutError, match="outside the 200x100 field image"):
        scan_dataset("cric", tmp_path)


def test_cric_unknown_cropped_folder(tmp_path: Path) -> None:
    _img(tmp_path / "LSIL" / "1_1.png")
    _img(tmp_path / "AGC" / "1_2.png")
    with pytest.raises(LabelError, match="unknown CRIC class folder .*AGC"):
        scan_dataset("cric", tmp_path)


def test_cric_bad_crop_size(synthetic_root: Path) -> None:
    with pytest.raises(ValueError, match="crop_size"):
        scan_dataset("cric", synthetic_root / "cric", crop_size=2)


# ----------------------------------------------------------------------------- real data
@pytest.mark.real_data
def test_real_sipakmed_exact_counts(real_root: Path) -> None:
    df = scan_dataset("sipakmed", real_root / "sipakmed", scheme="native")
    assert len(df) == 4049
    assert df["source_class"].value_counts().to_dict() == PUBLISHED_COUNTS["sipakmed"]
    binary = scan_dataset("sipakmed", real_root / "sipakmed")
    assert binary["label_name"].value_counts().to_dict() == {"normal": 2411, "abnormal": 1638}
    # no cluster straddles two classes: groups are (class, NNN)
    assert df.groupby("patient_or_slide")["source_class"].nunique().max() == 1


#: The 412-cell Herlev copy in ../shared/data (the kit's CI data).
SHARED_HERLEV = {"severe_dysplastic": 89, "light_dysplastic": 86, "moderate_dysplastic": 73,
                 "carcinoma_in_situ": 59, "normal_columnar": 38, "normal_superficiel": 36,
                 "normal_intermediate": 31}


@pytest.mark.real_data
def test_real_herlev_exact_counts(real_root: Path) -> None:
    """The full release (917 cells, the publishers' table) or the 412-cell shared copy."""
    df = scan_dataset("herlev", real_root / "herlev", scheme="native")
    counts = df["source_class"].value_counts().to_dict()
    if len(df) == sum(PUBLISHED_COUNTS["herlev"].values()):  # 917
        assert counts == PUBLISHED_COUNTS["herlev"]
    else:
        assert counts == SHARED_HERLEV and len(df) == 412
    summary = dataset_summary(df)
    assert (summary["n_cells"] <= summary["published"]).all()
    assert df["patient_or_slide"].str.fullmatch(r"\d+").all()
    assert detect_layout(real_root / "herlev") == "herlev"
