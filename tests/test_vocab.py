"""Each list of words is written once (vocab.py); the tables keyed by them and the record format agree."""

from __future__ import annotations

import typing

from llmecon import vocab
from llmecon.costmodel.memory import BYTES_PER_ELEMENT
from llmecon.measure.models import TORCH_DTYPES
from llmecon.records import schema


def test_vocab_tables_are_keyed_by_the_vocabulary():
    assert tuple(BYTES_PER_ELEMENT) == vocab.DTYPES
    assert tuple(TORCH_DTYPES) == vocab.BENCH_DTYPES
    assert set(vocab.BENCH_DTYPES) <= set(vocab.DTYPES) and set(vocab.FINAL_STATUSES) <= set(vocab.STATUSES)


def test_vocab_record_format_uses_the_same_words():
    assert typing.get_args(schema.Phase) == vocab.PHASES
    assert typing.get_args(schema.BenchPhase) == vocab.BENCH_PHASES == (*vocab.PHASES, vocab.GENERATE)
    assert typing.get_args(schema.BenchDtype) == vocab.BENCH_DTYPES
    assert typing.get_args(schema.Convention) == vocab.CONVENTIONS
    assert typing.get_args(schema.Status) == vocab.STATUSES


def test_vocab_price_term_aliases_name_known_terms():
    assert set(vocab.PRICE_TERM_ALIASES.values()) <= set(vocab.PRICE_TERMS)
    assert vocab.DEFAULT_PRICE_TERM in vocab.PRICE_TERMS
