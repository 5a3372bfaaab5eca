"""The sheet of published measurements: the built-in rows are sourced and known; each kind of bad row in a
user sheet gives one error naming file, line and field."""

from __future__ import annotations

import csv
import io
import re

import pytest

from llmecon.costmodel.hardware import load_hardware
from llmecon.costmodel.presets import list_presets
from llmecon.costmodel.published import COLUMNS, PUBLISHED_SHEET, UNITS, load_published
from llmecon.errors import UserError

GOOD = {
    "id": "my-decode-point", "engine": "gpt-fast", "engine_version": "git abc", "accelerator_id": "h100-sxm",
    "accelerator_count": "2", "parallelism": "tp=2", "model": "llama-2-7b", "model_as_published": "Llama-2-7B",
    "dtype": "bf16", "weights": "", "phase": "decode", "batch_size": "4", "seq_len": "", "input_len": "128",
    "output_len": "256", "concurrency": "", "request_rate_per_s": "", "value": "250.5", "unit": "tokens/s",
    "source": "https://example.org/bench", "retrieved_on": "2026-12-04", "note": "",
}


def write(tmp_path, *rows, name="mine.csv"):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path = tmp_path / name
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def mine(tmp_path, **changes):
    return load_published(write(tmp_path, GOOD | changes))


def test_published_builtin_sheet_loads_with_typed_rows():
    rows = load_published()
    assert len(rows) >= 100
    point = next(m for m in rows if m.id == "gptfast-a100-llama2-7b-bf16-tp1")
    assert (point.engine, point.accelerator_id, point.model, point.phase) == ("gpt-fast", "a100-sxm4-80gb", "llama-2-7b", "decode")
    assert (point.value, point.unit, point.batch_size, point.accelerator_count) == (104.9, "tokens/s", 1, 1)
    assert point.parallelism == {"tp": 1}
    titan = next(m for m in rows if m.id == "torchtitan-h100-256gpu-llama3.1-70b-2d")
    assert titan.parallelism == {"fsdp": 32, "tp": 8} and titan.value == 829.0


@pytest.mark.parametrize("mid, want", [
    # TensorRT-LLM v0.6.1 docs/source/performance.md, Peak Throughput, H100 GPUs (FP8): LLaMA 7B, 768, TP 1, 128/128
    ("trtllm-0.6.1-h100-sxm-llama-2-7b-fp8-tp1-bs768-128-128",
     dict(phase="generate", unit="tokens/s/accelerator", value=19694.0, batch_size=768, input_len=128,
          output_len=128, accelerator_id="h100-sxm", accelerator_count=1, dtype="fp8", engine_version="0.6.1")),
    # same doc, Low Latency (v0.5 data), A100 GPUs (FP16): LLaMA 70B, batch 1, TP 4, input 2048, 377 ms
    ("trtllm-0.5-a100-sxm4-80gb-llama-2-70b-fp16-tp4-ttft-2048",
     dict(phase="prefill", unit="ms", value=377.0, batch_size=1, input_len=2048, output_len=None,
          accelerator_count=4, dtype="fp16", engine_version="0.5", model="llama-2-70b")),
    # Llama 3 paper Table 4, third row: 16,384 GPUs, TP 8, CP 16, PP 16, DP 8, seq 131,072, 380 TFLOPs/GPU, 38%
    ("meta-llama3-h100-16384gpu-128k-cp16-llama3-405b-mfu",
     dict(phase="train", unit="%MFU", value=38.0, seq_len=131072, batch_size=128, accelerator_count=16384,
          parallelism={"tp": 8, "cp": 16, "pp": 16, "dp": 8}, model="llama-3-405b")),
    # PaLM Table 3: PaLM 540B, 6144 TPU v4, 46.2 %
    ("pathways-tpu-v4-6144chip-palm-540b-mfu",
     dict(phase="train", unit="%MFU", value=46.2, accelerator_id="tpu-v4", accelerator_count=6144,
          parallelism={"dp": 2, "fsdp": 256, "tp": 12}, batch_size=2048, seq_len=2048, model="palm-540b")),
])
def test_published_new_rows_hold_the_typed_values(mid, want):
    row = next(m for m in load_published() if m.id == mid)
    assert {k: getattr(row, k) for k in want} == want


def test_published_every_builtin_row_is_sourced_and_known():
    accelerators, presets = load_hardware(), set(list_presets())
    for m in load_published():
        assert re.match(r"https?://\S+", m.source), m.id
        assert m.accelerator_id in accelerators and m.model in presets, m.id
        assert m.value > 0 and m.unit in UNITS and m.retrieved_on == "2026-12-04", m.id
        assert m.path == str(PUBLISHED_SHEET.resolve()), m.id


def test_published_builtin_sheet_covers_engines_generations_and_phases():
    rows = load_published()
    assert {m.engine for m in rows} >= {"gpt-fast", "tensorrt-llm", "torchtitan", "megatron-lm"}
    assert {m.accelerator_id for m in rows} >= {"a100-sxm4-80gb", "l40s", "h100-sxm", "h200"}
    assert {m.phase for m in rows} >= {"decode", "prefill", "generate", "serve", "train"}
    assert {m.engine for m in rows} >= {"meta-llama3", "pathways"} and "tpu-v4" in {m.accelerator_id for m in rows}


def test_published_user_sheet_adds_rows(tmp_path):
    rows = mine(tmp_path)
    assert rows[-1].id == "my-decode-point" and rows[-1].input_len == 128 and rows[-1].weights == ""


@pytest.mark.parametrize("field, bad, says", [
    ("accelerator_id", "h999", "unknown accelerator 'h999'"),
    ("model", "gpt-9", "unknown model preset 'gpt-9'"),
    ("value", "-3", "must be > 0"),
    ("value", "0", "must be > 0"),
    ("value", "fast", "is not a number"),
    ("source", "", "empty; a value is required"),
    ("source", "my notes", "http(s) address"),
    ("retrieved_on", "yesterday", "is not a date"),
    ("dtype", "int3", "unknown dtype"),
    ("weights", "int2", "unknown weight format"),
    ("phase", "finetune", "unknown phase"),
    ("unit", "tok/s", "unknown unit"),
    ("unit", "%MFU", "not a decode measure"),
    ("batch_size", "", "needs the batch size"),
    ("batch_size", "0", "must be >= 1"),
    ("accelerator_count", "two", "not a whole number"),
    ("parallelism", "tp=4", "multiply to 4, but accelerator_count is 2"),
    ("parallelism", "xx=2", "is not name=degree"),
    ("engine", "Gpt Fast", "not a lowercase slug"),
    ("request_rate_per_s", "-1", "must be > 0"),
])
def test_published_bad_row_names_file_line_and_field(tmp_path, field, bad, says):
    with pytest.raises(UserError) as err:
        mine(tmp_path, **{field: bad})
    msg = str(err.value)
    assert msg.startswith(f"{(tmp_path / 'mine.csv').resolve()}: line 2, field '{field}'"), msg
    assert says in msg, msg


def test_published_mfu_over_100_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"line 2, field 'value'.*over 100"):
        mine(tmp_path, phase="train", unit="%MFU", value="130")


def test_published_serve_point_needs_its_lengths(tmp_path):
    with pytest.raises(UserError, match=r"line 2, field 'output_len'.*input and output lengths"):
        mine(tmp_path, phase="serve", batch_size="", output_len="")


GENERATE = {"phase": "generate", "unit": "tokens/s/accelerator", "batch_size": "64", "input_len": "128",
            "output_len": "2048", "value": "1622"}
PREFILL_MS = {"phase": "prefill", "unit": "ms", "batch_size": "1", "input_len": "2048", "output_len": "",
              "value": "36"}


def test_published_generate_and_prefill_ms_rows_load(tmp_path):
    gen = mine(tmp_path, **GENERATE)[-1]
    assert (gen.phase, gen.unit, gen.batch_size, gen.input_len, gen.output_len, gen.value) == \
        ("generate", "tokens/s/accelerator", 64, 128, 2048, 1622.0)
    pre = mine(tmp_path, **PREFILL_MS)[-1]
    assert (pre.phase, pre.unit, pre.batch_size, pre.input_len, pre.output_len, pre.value) == \
        ("prefill", "ms", 1, 2048, None, 36.0)


@pytest.mark.parametrize("row,field,message", [
    *((GENERATE, f, "a generate point needs its batch size and its input and output lengths")
      for f in ("batch_size", "input_len", "output_len")),
    *((PREFILL_MS, f, "a prefill time in ms needs the batch size and input length") for f in ("batch_size", "input_len")),
])
def test_published_generate_and_prefill_ms_points_need_batch_and_lengths(tmp_path, row, field, message):
    with pytest.raises(UserError) as err:
        mine(tmp_path, **row | {field: ""})
    msg = str(err.value)
    assert msg.startswith(f"{(tmp_path / 'mine.csv').resolve()}: line 2, field '{field}': "), msg
    assert message in msg and "\n" not in msg


def test_published_prefill_in_tokens_per_s_needs_no_batch(tmp_path):
    row = mine(tmp_path, phase="prefill", unit="tokens/s", batch_size="", input_len="")[-1]
    assert (row.phase, row.batch_size, row.input_len) == ("prefill", None, None)


@pytest.mark.parametrize("phase, unit", [
    ("generate", "ms/token"), ("generate", "tokens/s/user"), ("generate", "%MFU"), ("generate", "ms"),
    ("decode", "ms"), ("serve", "ms"), ("train", "ms"),
])
def test_published_units_that_do_not_fit_generate_or_ms_are_refused(tmp_path, phase, unit):
    with pytest.raises(UserError, match=rf"line 2, field 'unit': {unit} is not a {phase} measure"):
        mine(tmp_path, **GENERATE | {"phase": phase, "unit": unit})


def test_published_id_twice_with_different_values_is_refused(tmp_path):
    path = write(tmp_path, GOOD, GOOD | {"value": "251"})
    with pytest.raises(UserError, match=r"line 3, field 'id'.*also defined, differently, at line 2"):
        load_published(path)
    assert load_published(write(tmp_path, GOOD, GOOD, name="same.csv"))[-1].value == 250.5


def test_published_unknown_column_is_refused(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text(",".join(COLUMNS) + ",extra\n" + ",".join(GOOD[c] for c in COLUMNS) + ",x\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"line 1, field 'extra': unknown column"):
        load_published(path)


def test_published_user_sheet_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMECON_PUBLISHED", str(write(tmp_path, GOOD | {"id": "env-point"})))
    assert load_published()[-1].id == "env-point"
