"""The one table of usual modality names and its two lookups."""

from __future__ import annotations

import pytest

from scmamba._constants import find_modality, modality_kind


def test_find_modality_takes_the_first_usual_name_present():
    mods = {"GEX": None, "rna": None, "adt": None, "peaks": None}
    assert find_modality(mods, "rna") == "rna"
    assert find_modality(mods, "rna", exclude=["rna"]) == "GEX"
    assert find_modality(mods, "protein") == "adt"
    assert find_modality(mods, "atac") == "peaks"
    assert find_modality({"x": None}, "atac") is None


@pytest.mark.parametrize(
    ("name", "kind"),
    [("RNA", "rna"), (" gex ", "rna"), ("Peaks", "atac"), ("ADT", "protein"), ("antibody capture", "protein")],
)
def test_modality_kind_ignores_case(name, kind):
    assert modality_kind(name) == kind


def test_modality_kind_of_an_unknown_name_is_none():
    assert modality_kind("spatial") is None
