"""The shared label taxonomy: every dataset's classes mapped into common label spaces.

The paper trains on SIPaKMeD (5 classes), validates on Herlev (7 classes) and tests on CRIC
(6 Bethesda classes). A cross-dataset protocol only makes sense in a label space that all three
share, so the mapping is kept here as data (:data:`MAPPINGS`), one row per publisher class, with
the reason for each choice. Three schemes:

``binary`` (primary)
    normal vs abnormal, the question screening asks and the one sensitivity/specificity are about.
``three_tier``
    normal / low-grade / high-grade, following the Bethesda split LSIL vs HSIL. It is defensible
    for Herlev (CIN grades) and CRIC (Bethesda classes). It is *not* defensible for SIPaKMeD's
    Dyskeratotic class: dyskeratocytes occur in low- and high-grade lesions alike, so that class
    has no three-tier label and is dropped (with a warning) under this scheme.
``native``
    each dataset's own classes, for within-dataset experiments only (label spaces differ).

A label of ``None`` means "no defensible mapping": readers drop such cells and say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from aecnn_utils.data.errors import LabelError

SCHEMES: tuple[str, ...] = ("binary", "three_tier", "native")

BINARY_CLASSES: tuple[str, ...] = ("normal", "abnormal")
THREE_TIER_CLASSES: tuple[str, ...] = ("normal", "low_grade", "high_grade")


@dataclass(frozen=True)
class LabelMapping:
    """One publisher class, its labels in the shared schemes, and the cell lineage it belongs
    to (a class is *unseen* by a model trained on datasets without its lineage)."""

    dataset: str
    source_class: str
    binary: str
    three_tier: str | None
    reason: str
    lineage: str = "squamous"


NILM = "Negative for intraepithelial lesion"

MAPPINGS: tuple[LabelMapping, ...] = (
    # --- SIPaKMeD (Plissiti et al. 2018): the publishers' own normal/abnormal grouping.
    LabelMapping("sipakmed", "Superficial-Intermediate", "normal", "normal",
                 "mature squamous cells; the SIPaKMeD authors group them as normal"),
    LabelMapping("sipakmed", "Parabasal", "normal", "normal",
                 "immature squamous cells of normal epithelium; grouped as normal by SIPaKMeD"),
    LabelMapping("sipakmed", "Metaplastic", "normal", "normal",
                 "benign squamous metaplasia of the transformation zone; SIPaKMeD calls it benign"),
    LabelMapping("sipakmed", "Koilocytotic", "abnormal", "low_grade",
                 "koilocytes are the HPV cytopathic effect that defines LSIL (Bethesda)"),
    LabelMapping("sipakmed", "Dyskeratotic", "abnormal", None,
                 "abnormal keratinisation seen in HPV infection; occurs in LSIL and HSIL alike, "
                 "so no defensible grade"),
    # --- Herlev (Jantzen et al. 2005): normal_* vs the CIN grades and carcinoma in situ.
    LabelMapping("herlev", "normal_superficiel", "normal", "normal",
                 "normal superficial squamous cells"),
    LabelMapping("herlev", "normal_intermediate", "normal", "normal",
                 "normal intermediate squamous cells"),
    LabelMapping("herlev", "normal_columnar", "normal", "normal",
                 "normal endocervical columnar cells", lineage="glandular"),
    LabelMapping("herlev", "light_dysplastic", "abnormal", "low_grade",
                 "mild dysplasia = CIN 1, reported as LSIL in Bethesda"),
    LabelMapping("herlev", "moderate_dysplastic", "abnormal", "high_grade",
                 "moderate dysplasia = CIN 2, reported as HSIL in Bethesda"),
    LabelMapping("herlev", "severe_dysplastic", "abnormal", "high_grade",
                 "severe dysplasia = CIN 3, HSIL"),
    LabelMapping("herlev", "carcinoma_in_situ", "abnormal", "high_grade",
                 "carcinoma in situ = CIN 3, HSIL"),
    # --- CRIC Cervix (Rezende et al. 2021): Bethesda system classes.
    LabelMapping("cric", NILM, "normal", "normal",
                 "NILM: negative for intraepithelial lesion or malignancy"),
    LabelMapping("cric", "ASC-US", "abnormal", "low_grade",
                 "atypical squamous cells of undetermined significance; managed like LSIL "
                 "(an equivocal call, not a proven lesion)"),
    LabelMapping("cric", "LSIL", "abnormal", "low_grade", "low-grade squamous intraepithelial lesion"),
    LabelMapping("cric", "ASC-H", "abnormal", "high_grade",
                 "atypical squamous cells, cannot exclude HSIL; managed like HSIL"),
    LabelMapping("cric", "HSIL", "abnormal", "high_grade", "high-grade squamous intraepithelial lesion"),
    LabelMapping("cric", "SCC", "abnormal", "high_grade",
                 "squamous cell carcinoma; grouped with high grade here (three tiers have no "
                 "separate 'invasive' level)"),
)

DATASET_NAMES: tuple[str, ...] = tuple(dict.fromkeys(m.dataset for m in MAPPINGS))
#: Cells per class of each dataset's full public release, as its publishers count them
#: (SIPaKMeD: Plissiti et al. 2018; Herlev: Jantzen et al. 2005). ``scan`` compares a folder
#: with them; a partial copy (e.g. the 412 Herlev cells of ../shared/data) holds fewer.
PUBLISHED_COUNTS: dict[str, dict[str, int]] = {
    "sipakmed": {"Superficial-Intermediate": 831, "Parabasal": 787, "Metaplastic": 793,
                 "Koilocytotic": 825, "Dyskeratotic": 813},
    "herlev": {"normal_superficiel": 74, "normal_intermediate": 70, "normal_columnar": 98,
               "light_dysplastic": 182, "moderate_dysplastic": 146, "severe_dysplastic": 197,
               "carcinoma_in_situ": 150},
}
#: Display names of the datasets, for tables and figures.
DATASET_LABELS: dict[str, str] = {"sipakmed": "SIPaKMeD", "herlev": "Herlev", "cric": "CRIC"}


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASET_NAMES:
        raise LabelError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASET_NAMES)}")


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise LabelError(f"unknown label scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")


def source_classes(dataset: str) -> tuple[str, ...]:
    """The publisher's class names of ``dataset``, in the publisher's order."""
    _check_dataset(dataset)
    return tuple(m.source_class for m in MAPPINGS if m.dataset == dataset)


def class_names(scheme: str, dataset: str | None = None) -> tuple[str, ...]:
    """The ordered class names of a label scheme; index ``i`` is integer label ``i``.

    ``native`` needs ``dataset`` (each dataset has its own classes).
    """
    _check_scheme(scheme)
    if scheme == "binary":
        return BINARY_CLASSES
    if scheme == "three_tier":
        return THREE_TIER_CLASSES
    if dataset is None:
        raise LabelError("the 'native' scheme has one class list per dataset: pass dataset=...")
    return source_classes(dataset)


def map_label(dataset: str, source_class: str, scheme: str) -> str | None:
    """Name of the label of ``source_class`` under ``scheme``; None where no mapping is defensible."""
    _check_scheme(scheme)
    _check_dataset(dataset)
    for m in MAPPINGS:
        if m.dataset == dataset and m.source_class == source_class:
            if scheme == "native":
                return m.source_class
            return m.binary if scheme == "binary" else m.three_tier
    raise LabelError(
        f"unknown {dataset} class {source_class!r}; expected one of: "
        f"{', '.join(source_classes(dataset))}"
    )


def unseen_classes(dataset: str, train: tuple[str, ...]) -> tuple[str, ...]:
    """Classes of ``dataset`` whose cell lineage none of the ``train`` datasets has (e.g.
    Herlev's columnar cells for a model trained on SIPaKMeD's squamous cells)."""
    seen = {m.lineage for m in MAPPINGS if m.dataset in train}
    return tuple(m.source_class for m in MAPPINGS if m.dataset == dataset
                 and m.lineage not in seen)


def taxonomy_table() -> pd.DataFrame:
    """The whole mapping as a table (one row per publisher class), for the README and notebooks."""
    return pd.DataFrame([{"dataset": m.dataset, "source_class": m.source_class, "binary": m.binary,
                          "three_tier": m.three_tier or "(excluded)", "lineage": m.lineage,
                          "reason": m.reason} for m in MAPPINGS])


def dataset_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Cells and split groups per dataset, publisher class and label, beside the count of the
    full public release where it is known (``published``; for ``scan`` and the notebooks)."""
    table = (df.groupby(["dataset", "source_class", "label_name"], sort=False)
             .agg(n_cells=("path", "size"), n_groups=("patient_or_slide", "nunique"))
             .reset_index())
    published = [PUBLISHED_COUNTS.get(d, {}).get(c) for d, c in
                 zip(table["dataset"], table["source_class"], strict=True)]
    return table.assign(published=pd.array(published, dtype="Int64"))
