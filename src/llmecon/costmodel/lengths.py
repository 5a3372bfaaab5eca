"""Request lengths for a serving plan: one request a row, its prompt and output tokens (a production log's
distribution, say), read as strictly as the data sheets: every error names the file, the line and the field.

    prompt_tokens,output_tokens
    512,128
    2048,64

A row may also carry a `count` column (how many requests had those lengths; default 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from llmecon.costmodel import _sheet
from llmecon.errors import UserError, require_count

COLUMNS = ("prompt_tokens", "output_tokens")
OPTIONAL = ("count",)


@dataclass(frozen=True)
class Lengths:
    """Prompt and output tokens per request (parallel tuples, one entry per request), and where they came from."""

    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    source: str

    @property
    def n_requests(self) -> int:
        return len(self.prompt_tokens)

    @property
    def mean_prompt(self) -> float:
        return sum(self.prompt_tokens) / self.n_requests

    @property
    def mean_output(self) -> float:
        return sum(self.output_tokens) / self.n_requests

    @property
    def mean_total(self) -> float:
        return self.mean_prompt + self.mean_output

    def decode_context(self) -> float:
        """The mean context a decode step attends: each request's steps attend P+1 .. P+O-1, weighted by steps."""
        steps = [o - 1 for o in self.output_tokens]
        if not sum(steps):
            return float(max(self.prompt_tokens))
        return sum(s * (p + o / 2) for s, p, o in zip(steps, self.prompt_tokens, self.output_tokens)) / sum(steps)


def fixed(prompt_tokens, output_tokens) -> Lengths:
    """Every request the same: ``prompt_tokens`` (>= 1) and ``output_tokens`` (>= 2: the first comes from the
    prefill, a serving plan needs decode steps)."""
    p = require_count("--prompt-tokens", prompt_tokens)
    o = require_count("--output-tokens", output_tokens)
    if o < 2:
        raise UserError(f"--output-tokens must be at least 2 (the first token comes from the prefill), got {o}")
    return Lengths((p,), (o,), f"--prompt-tokens {p} --output-tokens {o}")


def read_lengths(path: str | os.PathLike) -> Lengths:
    """A lengths CSV (see the module docstring); UserError naming file, line and field for a bad row, or when the
    requests' mean output is under 2 tokens."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: lengths file not found")
    prompts: list[int] = []
    outputs: list[int] = []
    for line, row in _sheet.read_rows(path, COLUMNS, OPTIONAL):
        p = _sheet.whole_number(path, line, "prompt_tokens", _sheet.required(path, line, row, "prompt_tokens"))
        o = _sheet.whole_number(path, line, "output_tokens", _sheet.required(path, line, row, "output_tokens"))
        n = _sheet.whole_number(path, line, "count", row["count"]) if row.get("count") else 1
        prompts += [p] * n
        outputs += [o] * n
    lengths = Lengths(tuple(prompts), tuple(outputs), str(path))
    if lengths.mean_output < 2:
        raise UserError(f"{path}: the requests average {lengths.mean_output:.3g} output tokens; a serving plan "
                        "needs decode steps (a mean of at least 2)")
    return lengths
