"""Named configurations: every key is an SCMAMBA argument, and the paper's objective is the contrastive one alone."""

from __future__ import annotations

import inspect

import pytest

from scmamba import SCMAMBA


@pytest.mark.parametrize("modalities", [("rna", "atac"), ("rna", "protein")])
def test_paper_config_names_only_scmamba_arguments(modalities):
    config = SCMAMBA.paper_config(modalities)
    params = inspect.signature(SCMAMBA.__init__).parameters
    assert set(config) <= set(params), sorted(set(config) - set(params))
    # the paper trains the contrastive terms only: no reconstruction and no batch classifier, whatever the defaults
    assert config["lambda_rec"] == 0.0 and config["lambda_adv"] == 0.0
    assert params["lambda_adv"].default > 0  # the package default differs, so the preset must say it


def test_small_config_names_only_scmamba_arguments():
    assert set(SCMAMBA.small_config()) <= set(inspect.signature(SCMAMBA.__init__).parameters)
