"""The cost table (costs.csv and the report's cost section): the cheapest offer of one term per accelerator,
priced at the predicted step time, transfers labelled."""

from __future__ import annotations

import numpy as np
import pytest

from llmecon.calibration.fit import fit_calibration
from llmecon.costmodel.hardware import get_accelerator
from llmecon.costmodel.prices import Price, load_prices, parse_term
from llmecon.errors import UserError
from llmecon.estimate.costs import COLUMNS, cheapest_offers, cost_rows, cost_table, reference_workload, wide


@pytest.fixture(scope="module")
def h100_calib(plant):
    h100 = get_accelerator("h100-sxm")
    frame = plant.report_frame(hardware_id="h100-sxm", device_name="NVIDIA H100 80GB HBM3", peak=h100.peak("fp32"),
                               peak_bw=h100.memory_bytes_per_s)
    return fit_calibration(frame)


@pytest.fixture(scope="module")
def cpu_calib(plant):
    return fit_calibration(plant.report_frame())


def test_costs_rows_price_the_predicted_time_and_label_transfer(h100_calib):
    prices = load_prices()
    mine = [p for p in prices if p.accelerator_id == "h100-sxm"][:1]
    other = [p for p in prices if p.accelerator_id == "a100-sxm4-80gb"][:1]
    assert mine and other
    costs, skipped = cost_rows(h100_calib, ["tiny"], mine + other)
    assert not skipped and set(costs["phase"]) == {"prefill", "decode"} and list(costs.columns) == list(COLUMNS)
    assert reference_workload(h100_calib, "decode") == (8, 128)   # the largest batch and length measured
    # measured accelerator: no transfer; another accelerator: transfer, labelled by the calibration
    assert not costs[costs.accelerator_id == "h100-sxm"]["transfer"].any()
    moved = costs[costs.accelerator_id == "a100-sxm4-80gb"]
    assert moved["transfer"].all() and moved["basis"].str.startswith("transferred from h100-sxm").all()
    # $ per 1M tokens = the predicted seconds per token x the price per accelerator-second
    expect = costs["usd_per_accelerator_hour"] / 3600 / costs["tokens_per_s_per_accelerator"] * 1e6
    np.testing.assert_allclose(costs["usd_per_1m_tokens"], expect, rtol=1e-9)


def test_costs_cheapest_offer_per_accelerator_of_one_term():
    def offer(i, acc, term, usd):
        return Price(f"p{i}", "acme", f"box{i}", acc, 1, term, usd, "", "2026", "test")

    offers = [offer(1, "h100-sxm", "on_demand", 3.0), offer(2, "h100-sxm", "on_demand", 2.0),
              offer(3, "h100-sxm", "spot", 1.0), offer(4, "l4", "on_demand", 0.5)]
    assert sorted(p.id for p in cheapest_offers(offers, "on_demand")) == ["p2", "p4"]
    assert [p.id for p in cheapest_offers(offers, "spot")] == ["p3"]


def test_costs_table_has_one_row_per_model_accelerator_and_phase_with_its_term(cpu_calib):
    costs, notes = cost_table(cpu_calib, ["tiny"])
    assert len(costs) and set(costs["term"]) == {"on_demand"}
    assert not costs.duplicated(["model", "accelerator_id", "phase"]).any()
    assert costs["transfer"].all()                         # a CPU is on no price sheet
    # a CPU calibration prices no 8B / 70B preset on GPUs: said, not done
    assert set(costs["model"]) == {"tiny"} and any(n.startswith("presets not priced") for n in notes)
    spot, _ = cost_table(cpu_calib, ["tiny"], term="spot")
    assert set(spot["term"]) == {"spot"} and set(spot["price_id"]).isdisjoint(costs["price_id"])
    yearly, _ = cost_table(cpu_calib, ["tiny"], term="1yr")
    assert set(yearly["term"]) == {"1_year"}
    with pytest.raises(UserError, match="unknown --term"):
        cost_table(cpu_calib, ["tiny"], term="weekly")


def test_costs_table_prices_presets_when_the_device_is_on_the_sheet(h100_calib):
    costs, _ = cost_table(h100_calib, ["tiny"])
    assert {"tiny", "llama-3-8b", "llama-2-70b"} <= set(costs["model"])
    assert set(costs[costs.model == "llama-3-8b"]["accelerator_id"]) <= {"a100-sxm4-80gb", "h100-sxm", "h200", "l4",
                                                                        "tpu-v5e"}


def test_costs_wide_puts_prefill_and_decode_side_by_side(cpu_calib):
    costs, _ = cost_table(cpu_calib, ["tiny"])
    table = wide(costs)
    assert len(table) == costs["accelerator_id"].nunique()
    decode = costs[costs.phase == "decode"].set_index("accelerator_id")["usd_per_1m_tokens"]
    assert table.set_index("accelerator_id")["usd_per_1m_decode_tokens"].to_dict() == pytest.approx(decode.to_dict())
    assert list(table["usd_per_1m_decode_tokens"]) == sorted(table["usd_per_1m_decode_tokens"])


@pytest.mark.parametrize("term", ["on_demand", "spot", "1yr"])
def test_costs_table_prices_only_the_cheapest_offer_of_the_asked_term(cpu_calib, term):
    """--term picks which offers are priced: every row is an offer of that term, the cheapest of that term for its
    accelerator, and says its term."""
    costs, _ = cost_table(cpu_calib, ["tiny"], term=term)
    term_id = parse_term(term)
    offers = [p for p in load_prices() if p.term == term_id]
    assert len(costs) and set(costs["term"]) == {term_id}
    by_id = {p.id: p for p in offers}
    assert set(costs["price_id"]) <= set(by_id)               # no offer of another term is priced
    cheapest = {}
    for p in offers:
        cheapest[p.accelerator_id] = min(cheapest.get(p.accelerator_id, float("inf")), p.usd_per_accelerator_hour)
    for row in costs.itertuples():
        assert by_id[row.price_id].accelerator_id == row.accelerator_id
        assert row.usd_per_accelerator_hour == cheapest[row.accelerator_id], row.price_id
    # every accelerator with an offer of that term (and a datasheet peak to transfer to) has its rows
    assert costs.groupby("accelerator_id")["phase"].apply(set).map(len).eq(2).all()

