"""Chromosome names and region strings (``scmamba.data._regions``)."""

from __future__ import annotations

import numpy as np
import pytest

from scmamba.data import chromosome_rank, parse_region


def test_chromosome_rank_natural_order():
    names = ["chrM", "chrX", "chr10", "chr2", "chrY", "chr1", "chr22", "chr19"]
    assert sorted(names, key=chromosome_rank) == ["chr1", "chr2", "chr10", "chr19", "chr22", "chrX", "chrY", "chrM"]
    assert chromosome_rank("chr1") == chromosome_rank("1") == chromosome_rank("Chr1") == chromosome_rank(1)
    assert chromosome_rank("chrX") == chromosome_rank("X")
    assert chromosome_rank("chrM") == chromosome_rank("MT") == chromosome_rank("chrMT") == chromosome_rank("M")
    assert chromosome_rank("chr19") < chromosome_rank("chrX") < chromosome_rank("chrY") < chromosome_rank("chrM")
    assert chromosome_rank("chr2") < chromosome_rank("chr10")
    for bad in ["GL456233.1", "chrUn_GL000220v1", "chr1_KI270706v1_random", "", "  ", np.nan, None, "chr0", "foo"]:
        assert chromosome_rank(bad) is None, bad


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("chr1:100-200", ("chr1", 100, 200)),
        ("chr1-100-200", ("chr1", 100, 200)),
        ("chr1_100_200", ("chr1", 100, 200)),
        ("1:100-200", ("chr1", 100, 200)),
        ("1-100-200", ("chr1", 100, 200)),
        ("X_5_10", ("chrX", 5, 10)),
        ("MT:1-20", ("chrM", 1, 20)),
        ("chr12:3000000-3000500", ("chr12", 3000000, 3000500)),
        ("GL456233.1:10-20", ("GL456233.1", 10, 20)),
        ("Gapdh", None),
        ("HLA-A", None),
        ("chr1:100", None),
        ("chr1:200-100", None),
    ],
)
def test_parse_region(name, expected):
    assert parse_region(name) == expected
