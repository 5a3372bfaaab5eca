"""The article's tables at calibrated efficiency, beside the article's own."""

from __future__ import annotations

import pytest

from llmecon.calibration.fit import fit_calibration
from llmecon.errors import UserError
from llmecon.estimate.article import article, calibrated_article


@pytest.fixture(scope="module")
def cpu_calib(plant):
    return fit_calibration(plant.report_frame())


def test_article_calibrated_needs_transfer_from_another_device(cpu_calib):
    with pytest.raises(UserError, match="need --transfer"):
        calibrated_article(cpu_calib)


def test_article_calibrated_tables_keep_the_article_formula(cpu_calib):
    doc = calibrated_article(cpu_calib, transfer=True)
    assert {t["key"] for t in doc["tables"]} == {"inference", "training"}
    aws = next(r for t in doc["tables"] for r in t["rows"] if r["key"] == "inference.aws.usd_per_1k_tokens")
    assert aws["article"] == pytest.approx(0.0035, rel=0.01) and aws["transferred"]   # docs/article.md §3.3
    # only the utilization changes: the article's $ x its MFU / the calibrated MFU
    assert aws["calibrated"] == pytest.approx(aws["article"] * aws["mfu_article"] / aws["mfu_calibrated"])
    assert doc["basis"] and all("transferred from Synthetic CPU" in line for line in doc["basis"])


def test_article_document_matches_the_cli_json(cpu_calib):
    plain = article()
    assert "calibrated" not in plain and len(plain["tables"]) == 9
    with pytest.raises(UserError, match="--transfer only applies with --calibration"):
        article(transfer=True)
    assert article(cpu_calib, transfer=True)["calibrated"]["tables"]
