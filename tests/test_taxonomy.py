from __future__ import annotations

import pytest

from aecnn_utils.data import taxonomy
from aecnn_utils.data.errors import LabelError


def test_every_dataset_class_has_binary_label_and_reason() -> None:
    for m in taxonomy.MAPPINGS:
        assert m.binary in taxonomy.BINARY_CLASSES
        assert m.three_tier is None or m.three_tier in taxonomy.THREE_TIER_CLASSES
        assert len(m.reason) > 10


@pytest.mark.parametrize(
    ("dataset", "normal", "abnormal"),
    [
        ("sipakmed", {"Superficial-Intermediate", "Parabasal", "Metaplastic"},
         {"Koilocytotic", "Dyskeratotic"}),
        ("herlev", {"normal_superficiel", "normal_intermediate", "normal_columnar"},
         {"light_dysplastic", "moderate_dysplastic", "severe_dysplastic", "carcinoma_in_situ"}),
        ("cric", {taxonomy.NILM}, {"ASC-US", "LSIL", "ASC-H", "HSIL", "SCC"}),
    ],
)
def test_binary_mapping_is_the_one_the_protocol_needs(dataset, normal, abnormal) -> None:
    assert set(taxonomy.source_classes(dataset)) == normal | abnormal
    for c in normal:
        assert taxonomy.map_label(dataset, c, "binary") == "normal"
    for c in abnormal:
        assert taxonomy.map_label(dataset, c, "binary") == "abnormal"


def test_class_counts_per_dataset() -> None:
    assert len(taxonomy.source_classes("sipakmed")) == 5
    assert len(taxonomy.source_classes("herlev")) == 7
    assert len(taxonomy.source_classes("cric")) == 6


def test_three_tier_is_consistent_with_binary() -> None:
    for m in taxonomy.MAPPINGS:
        if m.three_tier is not None:
            assert (m.three_tier == "normal") == (m.binary == "normal")
    assert taxonomy.map_label("sipakmed", "Dyskeratotic", "three_tier") is None
    assert taxonomy.map_label("herlev", "light_dysplastic", "three_tier") == "low_grade"
    assert taxonomy.map_label("cric", "HSIL", "three_tier") == "high_grade"


def test_native_scheme_needs_dataset_and_keeps_classes() -> None:
    with pytest.raises(LabelError, match="dataset"):
        taxonomy.class_names("native")
    assert taxonomy.class_names("native", "herlev") == taxonomy.source_classes("herlev")
    assert taxonomy.map_label("cric", "LSIL", "native") == "LSIL"


def test_unknown_names_are_clear_errors() -> None:
    with pytest.raises(LabelError, match="unknown label scheme 'tiers'"):
        taxonomy.class_names("tiers")
    with pytest.raises(LabelError, match="unknown herlev class 'normal_basal'.*normal_columnar"):
        taxonomy.map_label("herlev", "normal_basal", "binary")
    with pytest.raises(LabelError, match="unknown dataset 'mendeley'"):
        taxonomy.source_classes("mendeley")


def test_taxonomy_table_has_a_row_per_class() -> None:
    table = taxonomy.taxonomy_table()
    assert len(table) == 5 + 7 + 6
    assert list(table.columns) == ["dataset", "source_class", "binary", "three_tier", "lineage",
                                   "reason"]
    assert table.loc[table["lineage"] == "glandular", "source_class"].tolist() == [
        "normal_columnar"]
    assert (table["three_tier"] == "(excluded)").sum() == 1


def test_unseen_classes_follow_the_training_lineages() -> None:
    assert taxonomy.unseen_classes("herlev", ("sipakmed",)) == ("normal_columnar",)
    assert taxonomy.unseen_classes("cric", ("sipakmed",)) == ()
    assert taxonomy.unseen_classes("herlev", ("herlev",)) == ()


def test_published_counts_match_the_releases_totals() -> None:
    """4,049 SIPaKMeD crops (Plissiti et al. 2018), 917 Herlev cells (Jantzen et al. 2005)."""
    totals = {name: sum(counts.values()) for name, counts in taxonomy.PUBLISHED_COUNTS.items()}
    assert totals == {"sipakmed": 4049, "herlev": 917}
    for name, counts in taxonomy.PUBLISHED_COUNTS.items():
        assert set(counts) == set(taxonomy.source_classes(name))
