"""The price sheet: the article's prices, every row valid, malformed user sheets, price terms as typed, and
`select`, the filtering `llmecon prices` does."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from llmecon.costmodel.hardware import COLUMNS as HW_COLUMNS
from llmecon.costmodel.hardware import get_accelerator, load_hardware
from llmecon.costmodel.prices import COLUMNS, PRICE_SHEET, Price, get_price, load_prices, parse_term, select
from llmecon.errors import UserError
from llmecon.vocab import PRICE_TERMS as TERMS
from llmecon.vocab import PRICE_TERM_ALIASES

# a valid user price sheet: one 8 x H100 offer
HEADER, GOOD = (Path(__file__).parents[1] / "data" / "user_prices.csv").read_text(encoding="utf-8").splitlines()


def write(tmp_path, lines, name="user-prices.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- the article's prices (docs/article.md §2, §3.3)


def test_prices_article_aws_p4d_price():
    p = get_price("aws-p4d.24xlarge-1yr-2023")
    assert (p.provider, p.instance, p.accelerator_id, p.count, p.term) == ("aws", "p4d.24xlarge", "a100-sxm4-40gb", 8, "1_year")
    assert p.usd_per_hour == 19.22
    assert p.usd_per_accelerator_hour == pytest.approx(2.4025)


@pytest.mark.parametrize("price_id, term, usd", [
    ("gcp-tpu-v4-od-2023", "on_demand", 3.22),
    ("gcp-tpu-v4-1yr-2023", "1_year", 2.03),
    ("gcp-tpu-v4-3yr-2023", "3_year", 1.45),
])
def test_prices_article_tpu_v4_prices(price_id, term, usd):
    p = get_price(price_id)
    assert (p.accelerator_id, p.count, p.term, p.usd_per_hour) == ("tpu-v4", 1, term, usd)


def test_prices_the_article_tpu_price_is_marked_inferred():
    assert "INFERRED" in get_price("gcp-tpu-v4-1yr-2023").note


def test_prices_sheets_reproduce_the_article_inference_cost():
    """docs/article.md §3.3: GPT-3 (2 x 175e9 FLOPs/token) at 21.3 % MFU costs $0.0035 per 1k tokens on a p4d."""
    p = get_price("aws-p4d.24xlarge-1yr-2023")
    peak = get_accelerator(p.accelerator_id).peak("bf16")
    seconds = 2 * 175e9 * 1000 / (p.count * peak * 0.213)
    assert seconds / 3600 * p.usd_per_hour == pytest.approx(0.003515, rel=1e-3)
    tpu = get_price("gcp-tpu-v4-1yr-2023")
    chip_seconds = 2 * 175e9 * 1000 / (get_accelerator("tpu-v4").peak("bf16") * 0.213)
    assert chip_seconds / 3600 * tpu.usd_per_accelerator_hour == pytest.approx(0.00337, rel=2e-3)


# ---------------------------------------------------------------- every row


def test_prices_every_builtin_row_is_valid():
    with open(PRICE_SHEET, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(COLUMNS)
    prices = load_prices()
    assert len(prices) == len(rows)
    assert len({p.id for p in prices}) == len(prices)
    hw = load_hardware()
    for p in prices:
        assert p.accelerator_id in hw and p.term in TERMS and p.count >= 1 and p.usd_per_hour > 0
        assert p.source and p.date[:2] in ("19", "20")
        if p.count > 1 and "derived" in p.note:  # per-GPU quotes multiplied out: the note says by what
            assert f"x {p.count}" in p.note, p.id


def test_prices_current_offers_cover_the_main_accelerators():
    priced = {p.accelerator_id for p in load_prices()}
    for hw_id in ("t4", "a10g", "l4", "l40s", "a100-sxm4-40gb", "a100-sxm4-80gb", "a100-pcie-80gb", "h100-sxm",
                  "h100-pcie", "h200", "b200", "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e"):
        assert hw_id in priced, hw_id


def test_prices_price_post_init_validates():
    ok = dict(id="x", provider="p", instance="i", accelerator_id="h100-sxm", count=8, term="spot",
              usd_per_hour=10.0, region="", date="2026", source="s")
    assert Price(**ok).usd_per_accelerator_hour == 1.25
    for bad in ({"count": 0}, {"count": 1.5}, {"term": "weekly"}, {"usd_per_hour": float("nan")},
                {"usd_per_hour": -1.0}, {"id": "Bad Id"}, {"source": ""}):
        with pytest.raises(UserError):
            Price(**{**ok, **bad})


def test_prices_get_price_unknown_suggests():
    with pytest.raises(UserError, match=r"unknown price 'aws-p4d-1yr-2023'; did you mean: aws-p4d\.24xlarge"):
        get_price("aws-p4d-1yr-2023")


# ---------------------------------------------------------------- user sheets


def test_prices_user_price_sheet(tmp_path, monkeypatch):
    path = write(tmp_path, [HEADER, GOOD])
    assert get_price("my-h100-od-2026", [path]).usd_per_accelerator_hour == 3.0
    monkeypatch.setenv("LLMECON_PRICES", str(path))
    assert get_price("my-h100-od-2026").count == 8


def test_prices_user_price_for_a_user_accelerator(tmp_path):
    hw = tmp_path / "hw.csv"
    hw.write_text(",".join(HW_COLUMNS) + "\n" + "\n".join(
        f"h20,{f},{d},{v},{u},my notes,2026-11-29," for f, d, v, u in [
            ("name", "", "NVIDIA H20", ""), ("vendor", "", "NVIDIA", ""),
            ("peak_flops_per_s", "bf16", "148", "TFLOP/s"), ("memory_bytes", "", "96", "GB"),
            ("memory_bytes_per_s", "", "4", "TB/s")]) + "\n", encoding="utf-8")
    path = write(tmp_path, [HEADER, GOOD.replace("h100-sxm", "h20")])
    with pytest.raises(UserError, match="unknown accelerator 'h20'"):
        load_prices([path])
    assert load_prices([path], hardware_paths=[hw])[-1].accelerator_id == "h20"


MALFORMED = {
    "missing column": ([HEADER.replace(",region", ""), GOOD.replace(",eu-west", "")], 1, "region", "missing column"),
    "non-numeric": ([HEADER, GOOD.replace("24.00", "24 USD")], 2, "usd_per_hour", "not a number"),
    "negative": ([HEADER, GOOD.replace("24.00", "-24")], 2, "usd_per_hour", "> 0"),
    "zero": ([HEADER, GOOD.replace("24.00", "0")], 2, "usd_per_hour", "> 0"),
    "nan": ([HEADER, GOOD.replace("24.00", "NaN")], 2, "usd_per_hour", "finite"),
    "count zero": ([HEADER, GOOD.replace(",8,", ",0,")], 2, "accelerator_count", ">= 1"),
    "count fraction": ([HEADER, GOOD.replace(",8,", ",1.5,")], 2, "accelerator_count", "whole number"),
    "unknown term": ([HEADER, GOOD.replace("on_demand", "monthly")], 2, "term", "unknown term 'monthly'"),
    "unknown accelerator": ([HEADER, GOOD.replace("h100-sxm", "h20")], 2, "accelerator_id", "unknown accelerator 'h20'"),
    "bad date": ([HEADER, GOOD.replace("2026-11-01", "2026-13-01")], 2, "date", "not a date"),
    "empty provider": ([HEADER, GOOD.replace(",acme,", ",,")], 2, "provider", "required"),
    "bad id": ([HEADER, GOOD.replace("my-h100-od-2026", "My H100")], 2, "id", "slug"),
    "conflicting duplicate": ([HEADER, GOOD, GOOD.replace("24.00", "25.00")], 3, "id", "at line 2 of"),
    "conflict with built-in": ([HEADER, "aws-p4d.24xlarge-1yr-2023,aws,p4d.24xlarge,a100-sxm4-40gb,8,1_year,20,"
                                        "us-east-1,2023-01-21,me,"], 2, "id", "prices.csv"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_prices_malformed_sheet_names_file_line_and_field(tmp_path, case):
    lines, line, field, text = MALFORMED[case]
    path = write(tmp_path, lines)
    with pytest.raises(UserError) as err:
        load_prices([path])
    msg = str(err.value)
    assert str(path) in msg and f"line {line}" in msg and f"field '{field}'" in msg and text in msg, msg
    assert not any(p.id.startswith("my-") for p in load_prices())


def test_prices_identical_duplicate_is_fine(tmp_path):
    path = write(tmp_path, [HEADER, GOOD, GOOD])
    assert sum(p.id == "my-h100-od-2026" for p in load_prices([path])) == 1


def test_prices_empty_and_badly_encoded_sheets(tmp_path):
    path = write(tmp_path, [""])
    with pytest.raises(UserError, match="empty sheet"):
        load_prices([path])
    bad = tmp_path / "bad.csv"
    bad.write_bytes((HEADER + "\n" + GOOD.replace("acme", "acm\xe9") + "\n").encode("cp1252"))
    with pytest.raises(UserError, match=r"line 2: not UTF-8"):
        load_prices([bad])


# ---------------------------------------------------------------- price terms as people type them


@pytest.mark.parametrize("typed, term", [
    ("1yr", "1_year"), ("3yr", "3_year"), ("on-demand", "on_demand"), ("On-Demand", "on_demand"),
    ("on_demand", "on_demand"), ("1_year", "1_year"), ("3-year", "3_year"), ("spot", "spot"), (" 1YR ", "1_year"),
])
def test_prices_parse_term_accepts_the_usual_spellings(typed, term):
    assert parse_term(typed) == term


def test_prices_parse_term_knows_every_alias_and_term():
    assert {parse_term(t) for t in TERMS} == set(TERMS)
    assert all(parse_term(alias) == term for alias, term in PRICE_TERM_ALIASES.items())


@pytest.mark.parametrize("junk", ["weekly", "", "1", "yr", "on demand!", "reserved"])
def test_prices_parse_term_refuses_junk_in_one_line_naming_the_terms(junk):
    with pytest.raises(UserError) as err:
        parse_term(junk)
    msg = str(err.value)
    assert msg.startswith(f"unknown --term {junk!r}; known: on_demand, 1_year, 3_year, spot") and "\n" not in msg


# ---------------------------------------------------------------- select: the filtering of `llmecon prices`


def test_prices_select_without_filters_is_every_price():
    assert sorted(p.id for p in select()) == sorted(p.id for p in load_prices())


def test_prices_select_orders_by_accelerator_then_term_then_price():
    order = {hw_id: i for i, hw_id in enumerate(load_hardware())}
    keys = [(order[p.accelerator_id], TERMS.index(p.term), p.usd_per_accelerator_hour) for p in select()]
    assert keys == sorted(keys)
    assert [(p.term, p.usd_per_hour) for p in select(accelerator="tpu-v4", provider="gcp")] == [
        ("on_demand", 3.22), ("1_year", 2.03), ("3_year", 1.45)]


def test_prices_select_by_accelerator_and_typed_term_cheapest_first():
    h100 = select(accelerator="h100-sxm", term="on-demand")
    assert h100 and all(p.accelerator_id == "h100-sxm" and p.term == "on_demand" for p in h100)
    per = [p.usd_per_accelerator_hour for p in h100]
    assert per == sorted(per)


def test_prices_select_by_provider_ignores_case():
    aws = select(provider="AWS")
    assert aws and {p.provider for p in aws} == {"aws"}


def test_prices_select_by_id_gives_that_one_price():
    assert select(price_id="aws-p4d.24xlarge-1yr-2023") == [get_price("aws-p4d.24xlarge-1yr-2023")]
    assert select(price_id="aws-p4d.24xlarge-1yr-2023", term="spot") == []


def test_prices_select_reads_user_sheets(tmp_path):
    path = write(tmp_path, [HEADER, GOOD])
    assert [p.id for p in select(provider="acme", extra_paths=[path])] == ["my-h100-od-2026"]
    assert not any(p.provider == "acme" for p in select())          # nothing leaks into later calls


@pytest.mark.parametrize("filters, message", [
    ({"price_id": "nope"}, "unknown price 'nope'"),
    ({"accelerator": "h20"}, "unknown accelerator 'h20'"),
    ({"provider": "nope"}, "unknown provider 'nope'; known: aws"),
    ({"term": "weekly"}, "unknown --term 'weekly'"),
])
def test_prices_select_refuses_unknown_filters_in_one_line(filters, message):
    with pytest.raises(UserError, match=message) as err:
        select(**filters)
    assert "\n" not in str(err.value)
