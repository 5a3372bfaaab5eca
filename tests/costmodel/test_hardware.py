"""The accelerator sheet: every row valid, exact device-name matching, malformed user sheets, and `select`, the
filtering `llmecon hardware` does."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from llmecon.costmodel.hardware import (
    COLUMNS,
    HARDWARE_SHEET,
    Accelerator,
    get_accelerator,
    load_hardware,
    match_device_name,
    normalize_device_name,
    select,
)
from llmecon.errors import UserError
from llmecon.vocab import DTYPES

REQUIRED_IDS = [
    "v100-sxm2-16gb", "v100-sxm2-32gb", "v100-pcie-16gb", "v100-pcie-32gb", "t4", "a10g", "l4", "l40s",
    "a100-sxm4-40gb", "a100-sxm4-80gb", "a100-pcie-40gb", "a100-pcie-80gb", "h100-sxm", "h100-pcie", "h200",
    "b200", "mi300x", "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e",
]

# a complete, valid user sheet for one new accelerator (the H20 is deliberately absent from the built-in sheet)
HEADER, *GOOD_ROWS = (Path(__file__).parents[1] / "data" / "h20_hardware.csv").read_text(encoding="utf-8").splitlines()
SRC = "my notes,2026-11-29,"


def write(tmp_path, lines, name="user-hw.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- the built-in sheet


def test_hardware_builtin_sheet_loads_with_every_required_accelerator():
    hw = load_hardware()
    assert set(REQUIRED_IDS) <= set(hw)
    for acc in hw.values():
        assert acc.peak_flops_per_s and acc.memory_bytes > 0 and acc.memory_bytes_per_s > 0
        assert set(acc.peak_flops_per_s) <= set(DTYPES)


def test_hardware_every_builtin_row_has_a_source_and_date():
    with open(HARDWARE_SHEET, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == list(COLUMNS)
    for i, row in enumerate(rows, start=2):
        assert row["source"].strip(), f"line {i}: no source"
        assert row["retrieved_on"][:2] == "20", f"line {i}: no retrieved_on"


def test_hardware_builtin_peaks_are_dense_and_ordered():
    for acc in load_hardware().values():
        p = acc.peak_flops_per_s
        for dtype, sparse in acc.vendor_sparse_headline_flops_per_s.items():
            assert math.isclose(sparse, 2 * p[dtype], rel_tol=0.05), (acc.id, dtype)
        # tensor-core half precision beats tf32 beats plain fp32; fp8 doubles half precision
        half = p.get("bf16") or p.get("fp16")
        assert half is not None, acc.id
        if "tf32" in p:
            assert p["fp32"] < p["tf32"] < half, acc.id
        if "fp8" in p:
            assert math.isclose(p["fp8"], 2 * half, rel_tol=0.03), acc.id


@pytest.mark.parametrize(
    "hw_id, dtype, tflops",
    [
        ("a100-sxm4-40gb", "bf16", 312), ("a100-sxm4-40gb", "fp16", 312),  # the article's A100 figure
        ("a100-pcie-80gb", "bf16", 312), ("tpu-v4", "bf16", 275),            # the article's TPU v4 figure
        ("h100-sxm", "bf16", 989), ("h100-pcie", "bf16", 756), ("h200", "fp8", 1979), ("b200", "bf16", 2250),
        ("mi300x", "bf16", 1307.4), ("v100-sxm2-16gb", "fp16", 125), ("a10g", "bf16", 70), ("l40s", "bf16", 362),
    ],
)
def test_hardware_peaks_from_the_reference(hw_id, dtype, tflops):
    assert get_accelerator(hw_id).peak(dtype) == pytest.approx(tflops * 1e12)


def test_hardware_units_convert_to_si():
    h100 = get_accelerator("h100-sxm")
    assert h100.memory_bytes == 80e9 and h100.memory_bytes_per_s == pytest.approx(3.35e12) and h100.tdp_w == 700
    assert get_accelerator("tpu-v4").memory_bytes == 32 * 2**30  # the TPU v4 docs give GiB
    assert get_accelerator("tpu-v4").tdp_w is None  # no published TDP: None, not a guess
    assert get_accelerator("a100-sxm4-40gb").peak("fp8") is None  # no fp8 on Ampere


def test_hardware_a10g_dispute_is_recorded():
    a10g = get_accelerator("a10g")
    assert a10g.disputed and "125" in a10g.disputed[0]
    assert not get_accelerator("h100-sxm").disputed


def test_hardware_peak_rejects_unknown_dtype():
    with pytest.raises(UserError, match="unknown dtype 'bf32'"):
        get_accelerator("h100-sxm").peak("bf32")


def test_hardware_get_accelerator_unknown_lists_known():
    with pytest.raises(UserError, match=r"unknown accelerator 'h20'; known: .*h100-sxm"):
        get_accelerator("h20")


def test_hardware_accelerator_post_init_validates():
    ok = dict(id="x1", name="X", vendor="V", peak_flops_per_s={"bf16": 1e14}, memory_bytes=1e9,
              memory_bytes_per_s=1e11, tdp_w=None, nvml_names=(), torch_names=())
    assert Accelerator(**ok).peak("bf16") == 1e14
    for bad in ({"memory_bytes": -1.0}, {"peak_flops_per_s": {"bf32": 1e14}}, {"peak_flops_per_s": {}},
                {"tdp_w": float("nan")}, {"id": "X 1"},
                {"vendor_sparse_headline_flops_per_s": {"bf16": 1e14}}):
        with pytest.raises(UserError):
            Accelerator(**{**ok, **bad})


# ---------------------------------------------------------------- exact name matching


@pytest.mark.parametrize(
    "reported, expected",
    [
        ("NVIDIA H200", "h200"),
        ("NVIDIA H20", None),                     # not the H200
        ("NVIDIA H200 NVL", None),                # a different part (600 W)
        ("NVIDIA A10", "a10"),                    # not the A10G, not an A100
        ("NVIDIA A10G", "a10g"),
        ("NVIDIA A100", None),                    # which one? never a guess
        ("NVIDIA A100-SXM4-40GB", "a100-sxm4-40gb"),
        ("NVIDIA A100-SXM4-80GB", "a100-sxm4-80gb"),
        ("NVIDIA A100-PCIE-40GB", "a100-pcie-40gb"),
        ("NVIDIA A100 80GB PCIe", "a100-pcie-80gb"),
        ("NVIDIA A100-SXM4-40GB MIG 1g.5gb", None),  # a MIG slice has a fraction of the peak
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),        # PCIe is not SXM
        ("NVIDIA H100 NVL", None),
        ("NVIDIA H100", None),
        ("Tesla V100-SXM2-16GB", "v100-sxm2-16gb"),
        ("Tesla V100-SXM2-32GB", "v100-sxm2-32gb"),
        ("Tesla V100-PCIE-16GB", "v100-pcie-16gb"),
        ("Tesla V100-PCIE-32GB", "v100-pcie-32gb"),
        ("Tesla T4", "t4"),
        ("NVIDIA L4", "l4"),
        ("NVIDIA L40", None),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA B200", "b200"),
        ("AMD Instinct MI300X", "mi300x"),
        ("AMD Instinct MI325X", None),
        # normalisation: case, whitespace, '-' vs ' ', the NVIDIA prefix
        ("nvidia  h100   pcie", "h100-pcie"),
        ("NVIDIA A100 SXM4 40GB", "a100-sxm4-40gb"),
        ("A10G", "a10g"),
        (" NVIDIA H200 ", "h200"),
        ("", None),
        ("cpu", None),
    ],
)
def test_hardware_match_device_name_is_exact(reported, expected):
    acc, reason = match_device_name(reported)
    assert (acc.id if acc else None) == expected, reason
    assert reason


def test_hardware_unknown_device_reason_names_it_and_the_fix():
    acc, reason = match_device_name("NVIDIA H20")
    assert acc is None
    assert reason == "'NVIDIA H20' is not in the hardware sheet; add it with --hardware-sheet"


def test_hardware_normalize_device_name():
    assert normalize_device_name("NVIDIA  A100-SXM4_40GB") == "a100 sxm4 40gb"
    assert normalize_device_name("NVIDIA H20") != normalize_device_name("NVIDIA H200")


# ---------------------------------------------------------------- user sheets


def test_hardware_user_sheet_adds_an_accelerator(tmp_path):
    path = write(tmp_path, [HEADER] + GOOD_ROWS)
    hw = load_hardware([path])
    assert hw["h20"].peak("bf16") == 148e12 and hw["h20"].memory_bytes == 96e9
    acc, _ = match_device_name("NVIDIA H20", [path])
    assert acc.id == "h20"
    assert "h20" not in load_hardware()  # nothing leaks into later loads without the sheet


def test_hardware_user_sheet_from_env_var(tmp_path, monkeypatch):
    path = write(tmp_path, [HEADER] + GOOD_ROWS)
    monkeypatch.setenv("LLMECON_HARDWARE", str(path))
    assert get_accelerator("h20").tdp_w == 400


def test_hardware_user_sheet_may_repeat_an_identical_fact_and_add_a_missing_one(tmp_path):
    path = write(tmp_path, [
        HEADER,
        "h100-sxm,peak_flops_per_s,bf16,989,TFLOP/s," + SRC,            # same value as built in: fine
        "tpu-v4,tdp_w,,192,W,my measurement,2026-11-29,max measured",  # a fact the sheet lacks
    ])
    hw = load_hardware([path])
    assert hw["tpu-v4"].tdp_w == 192 and hw["h100-sxm"].peak("bf16") == 989e12


def test_hardware_changed_user_sheet_is_reloaded(tmp_path):
    path = write(tmp_path, [HEADER] + GOOD_ROWS)
    assert load_hardware([path])["h20"].tdp_w == 400
    write(tmp_path, [HEADER] + GOOD_ROWS[:-1] + ["h20,tdp_w,,350,W," + SRC])
    assert load_hardware([path])["h20"].tdp_w == 350


def _replace(rows, i, text):
    out = list(rows)
    out[i] = text
    return out


# (lines of the sheet, line number the error must name, field it must name, text it must contain)
MALFORMED = {
    "missing column": ([HEADER.replace(",retrieved_on", "")] + [r.replace(",2026-11-29", "") for r in GOOD_ROWS],
                       1, "retrieved_on", "missing column"),
    "unknown column": ([HEADER + ",comment"] + [r + "," for r in GOOD_ROWS], 1, "comment", "unknown column"),
    "non-numeric": ([HEADER] + _replace(GOOD_ROWS, 4, "h20,peak_flops_per_s,bf16,1.48e2x,TFLOP/s," + SRC),
                    6, "value", "not a number"),
    "thousands separator": ([HEADER] + _replace(GOOD_ROWS, 4, 'h20,peak_flops_per_s,bf16,"1,480",TFLOP/s,' + SRC),
                            6, "value", "not a number"),
    "negative": ([HEADER] + _replace(GOOD_ROWS, 5, "h20,memory_bytes,,-96,GB," + SRC), 7, "value", "> 0"),
    "zero": ([HEADER] + _replace(GOOD_ROWS, 7, "h20,tdp_w,,0,W," + SRC), 9, "value", "> 0"),
    "nan": ([HEADER] + _replace(GOOD_ROWS, 6, "h20,memory_bytes_per_s,,nan,TB/s," + SRC), 8, "value", "finite"),
    "unknown dtype": ([HEADER] + _replace(GOOD_ROWS, 4, "h20,peak_flops_per_s,bf32,148,TFLOP/s," + SRC),
                      6, "dtype", "unknown dtype 'bf32'"),
    "missing dtype": ([HEADER] + _replace(GOOD_ROWS, 4, "h20,peak_flops_per_s,,148,TFLOP/s," + SRC),
                      6, "dtype", "dtype is required"),
    "dtype on memory": ([HEADER] + _replace(GOOD_ROWS, 5, "h20,memory_bytes,bf16,96,GB," + SRC), 7, "dtype", "no dtype"),
    "unknown unit": ([HEADER] + _replace(GOOD_ROWS, 4, "h20,peak_flops_per_s,bf16,148,TFLOPS," + SRC),
                     6, "unit", "unknown unit 'TFLOPS'"),
    "int8 in flops": ([HEADER] + GOOD_ROWS + ["h20,peak_flops_per_s,int8,296,TFLOP/s," + SRC], 10, "unit", "TOP/s"),
    "unit on text": ([HEADER] + _replace(GOOD_ROWS, 0, "h20,name,,NVIDIA H20,GB," + SRC), 2, "unit", "takes no unit"),
    "unknown field": ([HEADER] + GOOD_ROWS + ["h20,peak_tflops,bf16,148,TFLOP/s," + SRC], 10, "field", "unknown field"),
    "bad id": ([HEADER] + _replace(GOOD_ROWS, 0, "H 20,name,,NVIDIA H20,," + SRC), 2, "accelerator_id", "slug"),
    "no source": ([HEADER] + _replace(GOOD_ROWS, 7, "h20,tdp_w,,400,W,,2026-11-29,"), 9, "source", "required"),
    "bad date": ([HEADER] + _replace(GOOD_ROWS, 7, "h20,tdp_w,,400,W,notes,last week,"), 9, "retrieved_on", "not a date"),
    "cell count": ([HEADER] + _replace(GOOD_ROWS, 7, "h20,tdp_w,,400,W," + SRC + ",extra"), 9, "(row)", "cells"),
    "conflict in one sheet": ([HEADER] + GOOD_ROWS + ["h20,tdp_w,,350,W," + SRC], 10, "value", "at line 9 of"),
    "conflict with built-in": ([HEADER, "h100-sxm,peak_flops_per_s,bf16,1979,TFLOP/s," + SRC],
                               2, "value", "hardware.csv"),
    "sparse headline as dense": ([HEADER] + GOOD_ROWS + ["h20,vendor_sparse_headline_flops_per_s,bf16,148,TFLOP/s," + SRC],
                                 6, "value", "with-sparsity headline"),
    "sparse not 2x dense": ([HEADER] + GOOD_ROWS + ["h20,vendor_sparse_headline_flops_per_s,bf16,400,TFLOP/s," + SRC],
                            10, "value", "not 2x"),
    "missing required fact": ([HEADER] + [r for r in GOOD_ROWS if ",memory_bytes," not in r],
                              2, "field", "has no 'memory_bytes' row"),
    "name of another device": ([HEADER] + _replace(GOOD_ROWS, 2, "h20,nvml_name,,NVIDIA H200,," + SRC),
                               4, "value", "also a name of 'h200'"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_hardware_malformed_sheet_names_file_line_and_field(tmp_path, case):
    lines, line, field, text = MALFORMED[case]
    path = write(tmp_path, lines)
    with pytest.raises(UserError) as err:
        load_hardware([path])
    msg = str(err.value)
    assert str(path) in msg and f"line {line}" in msg and f"field '{field}'" in msg and text in msg, msg
    assert "\n" not in msg
    assert "h20" not in load_hardware()  # nothing partially loaded


def test_hardware_empty_and_header_only_and_missing_sheets(tmp_path):
    for lines, text in (([""], "empty sheet"), ([HEADER], "no rows")):
        path = write(tmp_path, lines)
        with pytest.raises(UserError, match=text) as err:
            load_hardware([path])
        assert str(path) in str(err.value)
    with pytest.raises(UserError, match="sheet not found"):
        load_hardware([tmp_path / "nope.csv"])
    with pytest.raises(UserError, match="not a file"):
        load_hardware([tmp_path])


def test_hardware_bad_encoding_names_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    text = "\n".join([HEADER] + GOOD_ROWS[:3] + ["h20,form_factor,,Carte PCIe \xe9,," + SRC]) + "\n"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(UserError, match=r"line 5: not UTF-8") as err:
        load_hardware([path])
    assert str(path) in str(err.value)


# ---------------------------------------------------------------- select: the filtering of `llmecon hardware`


def test_hardware_select_without_filters_is_the_whole_sheet_in_order():
    assert [a.id for a in select()] == list(load_hardware())
    assert set(REQUIRED_IDS) <= {a.id for a in select()}


def test_hardware_select_by_dtype_keeps_only_accelerators_with_that_dense_peak():
    fp8 = select(dtype="fp8")
    assert {a.id for a in fp8} >= {"h100-sxm", "h200", "l4", "mi300x"}
    assert all(a.peak("fp8") is not None for a in fp8)
    assert not any(a.id.startswith(("a100", "v100", "tpu")) for a in fp8)


def test_hardware_select_by_vendor_ignores_case():
    assert {a.id for a in select(vendor="GOOGLE")} == {"tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e"}


def test_hardware_select_by_id_gives_that_one_accelerator():
    one = select(hw_id="a100-pcie-80gb")
    assert [a.id for a in one] == ["a100-pcie-80gb"] and one[0].nvml_names == ("NVIDIA A100 80GB PCIe",)


def test_hardware_select_filters_combine():
    both = select(vendor="nvidia", dtype="bf16")
    assert "h100-sxm" in {a.id for a in both}
    assert all(a.vendor == "NVIDIA" and a.peak("bf16") is not None for a in both)
    assert select(hw_id="tpu-v4", vendor="nvidia") == []


def test_hardware_select_reads_a_user_sheet(tmp_path):
    path = write(tmp_path, [HEADER] + GOOD_ROWS)
    assert [a.peak_flops_per_s for a in select(hw_id="h20", extra_paths=[path])] == [{"bf16": 148e12}]


@pytest.mark.parametrize("filters, message", [
    ({"hw_id": "h20"}, "unknown accelerator 'h20'"),
    ({"vendor": "intel"}, "unknown --vendor 'intel'; known: AMD, Google, NVIDIA"),
    ({"dtype": "bf32"}, "unknown --dtype 'bf32'; known: fp32"),
])
def test_hardware_select_refuses_unknown_filters_in_one_line(filters, message):
    with pytest.raises(UserError, match=message) as err:
        select(**filters)
    assert "\n" not in str(err.value)


def test_hardware_link_bandwidths_are_sourced_and_in_si():
    """docs/data-sources.md §14: NVLink as NVIDIA's bidirectional total, the network per GPU one way."""
    a100, h100, tpu = (get_accelerator(a) for a in ("a100-sxm4-40gb", "h100-sxm", "tpu-v4"))
    assert (a100.nvlink_bytes_per_s, a100.network_bytes_per_s, a100.gpus_per_node) == (600e9, 25e9, 8)
    assert (h100.nvlink_bytes_per_s, h100.network_bytes_per_s, h100.gpus_per_node) == (900e9, 50e9, 8)
    assert (tpu.nvlink_bytes_per_s, tpu.network_bytes_per_s, tpu.gpus_per_node) == (None, None, None)
    assert a100.to_dict()["nvlink_bytes_per_s"] == 600e9
    links = [f for f in a100.facts if f.field in ("nvlink_bytes_per_s", "network_bytes_per_s", "gpus_per_node")]
    assert len(links) == 3 and all("https://" in f.source and f.note for f in links)


def test_hardware_user_sheet_adds_link_fields_and_refuses_a_fractional_node(tmp_path):
    path = write(tmp_path, [HEADER] + GOOD_ROWS + ["h20,network_bytes_per_s,,400,Gb/s," + SRC,
                                                   "h20,gpus_per_node,,8,GPU," + SRC])
    h20 = get_accelerator("h20", [path])
    assert (h20.network_bytes_per_s, h20.gpus_per_node, h20.nvlink_bytes_per_s) == (50e9, 8, None)
    bad = write(tmp_path, [HEADER] + GOOD_ROWS + ["h20,gpus_per_node,,7.5,GPU," + SRC], name="bad.csv")
    with pytest.raises(UserError, match="gpus_per_node must be a whole number"):
        load_hardware([bad])
