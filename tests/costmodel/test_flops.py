"""FLOP conventions: `executed` against torch's FlopCounterMode on tiny models; relations between
conventions; the article's and PaLM's formulas; bad input."""

import json
from pathlib import Path

import pytest

from llmecon.costmodel.flops import all_conventions, decode_flops, decode_step_flops, prefill_flops, train_step_flops
from llmecon.costmodel.presets import load_model_shape
from llmecon.errors import UserError
from llmecon.vocab import CONVENTIONS

_DATA = json.loads((Path(__file__).parents[1] / "data" / "tiny_configs.json").read_text())
TINY_CONFIGS, FLOP_CHECK = _DATA["configs"], _DATA["flop_check"]

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

B, T = 2, 24


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.filterwarnings("ignore:`past_key_values` is deprecated:FutureWarning")
@pytest.mark.parametrize("name", FLOP_CHECK)
@pytest.mark.slow
def test_flops_executed_matches_flop_counter(name, build_hf):
    """Prefill (logits on the last position), one decode step from a DynamicCache, and a train step
    (forward + backward, loss on every position), eager attention, within 1 %."""
    cfg = TINY_CONFIGS[name]
    shape = load_model_shape(cfg)
    model = build_hf(cfg)
    ids = torch.randint(0, shape.vocab_size, (B, T))

    with torch.no_grad():
        out = {}
        prefill = _counted(lambda: out.update(o=model(input_ids=ids, logits_to_keep=1, use_cache=True)))
        assert out["o"].logits.shape[1] == 1
        cache = out["o"].past_key_values
        step = torch.randint(0, shape.vocab_size, (B, 1))
        decode = _counted(lambda: model(input_ids=step, past_key_values=cache, use_cache=True))
    model.train()
    train = _counted(lambda: model(input_ids=ids, labels=ids).loss.backward())

    assert prefill == pytest.approx(prefill_flops(shape, B, T, "executed"), rel=0.01)
    # the new token sits at position T and attends T + 1 positions
    assert decode == pytest.approx(decode_step_flops(shape, B, T + 1, "executed"), rel=0.01)
    assert train == pytest.approx(train_step_flops(shape, B, T, "executed"), rel=0.01)


def test_flops_article_is_2n_and_6n():
    s = load_model_shape("llama-2-7b")
    N = s.params_total
    assert prefill_flops(s, 3, 100, "article") == 2 * N * 300
    assert decode_step_flops(s, 4, 999, "article") == 2 * N * 4
    assert train_step_flops(s, 3, 100, "article") == 6 * N * 300
    moe = load_model_shape("mixtral-8x7b")
    assert prefill_flops(moe, 1, 10, "article") == 2 * moe.params_active * 10


def test_flops_article_gpt3_training_flops():
    """docs/article.md §3.4: GPT-3 6ND = 6 x 175e9 x 300e9 = 3.15e23 (the preset counts 174.6e9)."""
    s = load_model_shape("gpt3-175b")
    per_token = train_step_flops(s, 1, 2048, "article") / 2048
    assert per_token * s.training_tokens == pytest.approx(3.15e23, rel=0.005)


def test_flops_non_embedding_is_palm_appendix_b():
    """PaLM appendix B: 6N + 12·L·H·Q·T training FLOPs per token (N non-embedding)."""
    s = load_model_shape("palm-540b")
    L, H, Q, T_ = 118, 48, 256, 2048
    per_token = train_step_flops(s, 1, T_, "non_embedding") / T_
    assert per_token == pytest.approx(6 * s.params_non_embedding + 12 * L * H * Q * T_, rel=1e-12)
    assert prefill_flops(s, 1, T_, "non_embedding") * 3 == pytest.approx(train_step_flops(s, 1, T_, "non_embedding"))


@pytest.mark.parametrize("model", ["tiny", "gpt2", "mixtral-8x7b", "opt-1.3b"])
def test_flops_convention_relations(model):
    s = load_model_shape(model)
    for T_ in (1, 7, 512):
        p = all_conventions(prefill_flops, s, 2, T_)
        t = all_conventions(train_step_flops, s, 2, T_)
        assert list(p) == list(CONVENTIONS)
        if T_ > 1:
            assert p["causal"] < p["non_embedding"] and t["causal"] < t["non_embedding"]
        # causal keeps T(T+1)/2 of the T^2 (query, key) pairs
        attn_full = p["non_embedding"] - 2 * 2 * T_ * s.params_non_embedding_active
        attn_causal = p["causal"] - 2 * 2 * T_ * s.params_non_embedding_active
        assert attn_causal == pytest.approx(attn_full * (T_ + 1) / (2 * T_))
        for c in CONVENTIONS:
            assert t[c] > p[c] > 0
        # executed training = 3 x a forward whose LM head runs on every position
        head = 2 * 2 * (T_ - 1) * s.lm_head_matmul_params
        assert t["executed"] == pytest.approx(3 * (p["executed"] + head))
    d = all_conventions(decode_step_flops, s, 2, 100)
    assert d["causal"] == d["non_embedding"]  # a decode query is not masked


def test_flops_decode_flops_is_sum_of_steps():
    s = load_model_shape("tiny")
    for c in CONVENTIONS:
        steps = sum(decode_step_flops(s, 3, 10 + k + 1, c) for k in range(7))
        assert decode_flops(s, 3, 10, 7, c) == pytest.approx(steps)
    assert decode_flops(s, 3, 10, 0, "executed") == 0


def test_flops_executed_attention_grows_quadratically():
    s = load_model_shape("tiny")
    f = [prefill_flops(s, 1, T_, "executed") for T_ in (100, 200, 300)]
    second_difference = f[2] - 2 * f[1] + f[0]
    assert second_difference == pytest.approx(4 * s.num_hidden_layers * s.q_dim * 2 * 100**2)


@pytest.mark.parametrize("call, message", [
    (lambda s: prefill_flops(s, 1, 8, "kaplan"), "unknown FLOP convention 'kaplan'"),
    (lambda s: prefill_flops(s, 0, 8, "article"), "batch_size must be > 0"),
    (lambda s: prefill_flops(s, 1, -3, "article"), "seq_len must be > 0"),
    (lambda s: train_step_flops(s, 1, 2.5, "article"), "seq_len must be a whole number"),
    (lambda s: decode_step_flops(s, 1, 0, "article"), "context_len must be > 0"),
    (lambda s: decode_flops(s, 1, 4, -1, "article"), "new_tokens must be >= 0"),
    (lambda s: prefill_flops(s, True, 8, "article"), "batch_size must be a whole number"),
])
def test_flops_bad_input(call, message):
    with pytest.raises(UserError, match=message):
        call(load_model_shape("tiny"))
