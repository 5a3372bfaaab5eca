"""The article's tables at calibrated efficiency, beside the article's own."""

from __future__ import annotations

import pytest

from llmecon.calibration.fit import fit_calibration
from llmecon.errors import UserError
from llmecon.calibration import reference
from llmecon.calibration.published import write_shipped
from llmecon.estimate.article import article, calibrated_article

from llmecon_test_published_points import decode_point, sheet


@pytest.fixture(scope="module")
def cpu_calib(plant):
    return fit_calibration(plant.report_frame())


def test_article_calibrated_needs_transfer_from_another_device(cpu_calib):
    with pytest.raises(UserError, match="need --transfer"):
        calibrated_article(cpu_calib)


def test_article_calibrated_tables_keep_the_article_formula(cpu_calib):
    doc = calibrated_article(cpu_calib, transfer=True)
    assert {t["key"] for t in doc["tables"]} == {"inference", "training", "training_a100"}
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


def test_article_a100_training_prices_the_article_formula_at_1024_a100s(cpu_calib):
    doc = calibrated_article(cpu_calib, transfer=True)
    rows = {r["key"]: r for t in doc["tables"] if t["key"] == "training_a100" for r in t["rows"]}
    days, usd = rows["training_a100.gpt3.wall_clock_days"], rows["training_a100.gpt3.usd_total"]
    # 6 x 175e9 x 300e9 FLOPs / (312e12 x 46.2 %) / 1024 A100s / 86,400 s = 24.7 days; x $19.22 / 8 per A100-hour
    assert days["article"] == pytest.approx(6 * 175e9 * 300e9 / (312e12 * 0.462) / 1024 / 86400)
    assert usd["article"] == pytest.approx(days["article"] * 24 * 1024 * 19.22 / 8)
    assert days["calibrated"] == pytest.approx(days["article"] * 0.462 / days["mfu_calibrated"])


@pytest.fixture
def published_refs(tmp_path, monkeypatch):
    points = [decode_point(b, c) for b, c in ((1, 128), (8, 1024), (32, 2048), (64, 4096))]
    points += [{"phase": "train", "accelerator_count": 8, "batch_size": b, "seq_len": s, "value": v, "unit": "%MFU"}
               for b, s, v in ((16, 4096, 40), (32, 8192, 42), (64, 2048, 38))]
    monkeypatch.setenv(reference.ENV_VAR, str(write_shipped(tmp_path / "refs.json", [sheet(tmp_path, points)])))


def test_article_at_published_efficiency_labels_every_row_and_lists_the_sources(published_refs):
    doc = article("published")["calibrated"]
    assert {t["key"] for t in doc["tables"]} == {"inference", "training", "training_a100", "search"}
    assert not doc["skipped"]
    rows = [r for t in doc["tables"] for r in t["rows"]]
    assert all(r["source"].startswith("published ") and r["transferred"] and r["sources"] for r in rows)
    aws = [r for r in rows if r["key"].startswith("inference.aws.")]   # the nearest decode fit: an 80 GB A100's
    assert aws and all(" on a100-sxm4-80gb (" in r["source"] for r in aws)
    assert doc["calibration"] == {"basis": "published", "sources": sorted({s for r in rows for s in r["sources"]})}
    gpt3 = [p for p in doc["published_mfu"] if p["model"] == "GPT-3"]
    assert gpt3 and gpt3[0]["mfu"] == pytest.approx(0.514) and gpt3[0]["engine"] == "megatron-lm"
    with pytest.raises(UserError, match="--transfer does not go with --calibration published"):
        article("published", transfer=True)


def test_article_search_query_is_priced_by_the_serving_plan(cpu_calib):
    doc = calibrated_article(cpu_calib, transfer=True, search_tpot_slo_s=0.5)
    (row,) = [r for t in doc["tables"] if t["key"] == "search" for r in t["rows"]]
    # the article's flat figure: 2,733 billed tokens x its $0.0035 per 1K tokens (docs/article.md §3.1, §3.3)
    assert row["article"] == pytest.approx(2733.33 / 1000 * 0.0035148, rel=1e-3)
    assert row["tpot_s"] <= 0.5 and row["binding"] == "tpot" and row["transferred"]
    assert "5 requests of 67 + 533 tokens" in row["label"] and "on the 8-A100 node" in row["label"]
    tight = calibrated_article(cpu_calib, transfer=True, search_tpot_slo_s=1e-6)
    assert "search" not in {t["key"] for t in tight["tables"]}
    assert any(s.startswith("the search query on an A100: no concurrency meets a 0.001 ms TPOT on an 8-A100 node")
               for s in tight["skipped"])


def test_article_gpt3_on_1024_a100s_gives_communication_a_share_beside_the_flat_mfu():
    from llmecon.estimate.article import gpt3_a100_communication
    c = gpt3_a100_communication()
    assert c["accelerators"] == 1024 and c["mfu_article"] == 0.462 and c["overlap"] == 0
    assert c["compute_share"] + c["comm_share"] + c["bubble_share"] == pytest.approx(1)
    assert c["bubble_fraction"] == pytest.approx(15 / 192)
    assert c["terms"]["tp all-reduce"]["link"] == "nvlink" and c["terms"]["dp all-reduce"]["link"] == "network"
    assert 0 < c["comm_share"] < 1 and c["mfu_at_k"] == pytest.approx(0.462 * c["compute_share"])
    hidden = gpt3_a100_communication(overlap=1.0)
    assert hidden["comm_share"] == 0 and hidden["mfu_at_k"] > c["mfu_at_k"]
