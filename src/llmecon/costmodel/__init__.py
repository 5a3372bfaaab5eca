"""The cost model: pure arithmetic on model shapes, hardware sheets and prices.

No torch, no transformers (a test enforces it): `architecture` reads a decoder-only shape from an HF
config and counts its parameters; `flops` counts FLOPs per phase under named conventions; `memory`
counts bytes (weights, KV cache, decode traffic, training state); `hardware` and `prices` load the
data sheets; `estimate` and `article` turn FLOPs into time and dollars.
"""
