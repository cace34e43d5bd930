#!/usr/bin/env python3
"""Writes a random Llama-3.1-8B-shaped bf16 checkpoint (hidden 4096, 32 layers, 32/8 heads,
head_dim 128, intermediate 14336, vocab 128256; ~16 GB) for the engine's memory benchmark.

Weights are random (small normal values), so scores mean nothing: the checkpoint only has
the real size and layout. Nothing here is committed; the tokenizer and chat template are
copied from --tokenizer (the real Llama-3 ones in ../shared/llama3).

  python scripts/bench/make_8b.py --out /tmp/arbiter-8b --tokenizer ../shared/llama3
  arbiter bench long --model /tmp/arbiter-8b --tokens 512 --dtype bf16
"""
import argparse
import json
import os
import shutil

import numpy as np

H, LAYERS, HEADS, KV, D, INTER, VOCAB = 4096, 32, 32, 8, 128, 14336, 128256


def bf16(shape, rng, scale):
    """Random bf16 values as uint16 bit patterns (safetensors' numpy API has no bfloat16)."""
    x = (rng.standard_normal(size=shape, dtype=np.float32) * scale).view(np.uint32)
    return (x >> 16).astype(np.uint16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/arbiter-8b")
    ap.add_argument("--tokenizer", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "llama3"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)
    shards, weight_map = [], {}

    def flush(tensors, name):
        # safetensors written by hand: numpy has no bfloat16, so the uint16 bit patterns are
        # stored under the BF16 dtype (8-byte length, JSON header padded to 8 bytes, raw data).
        header, offset = {}, 0
        for t, a in tensors.items():
            header[t] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
            offset += a.nbytes
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(len(text).to_bytes(8, "little"))
            f.write(text)
            for a in tensors.values():
                f.write(np.ascontiguousarray(a).tobytes())
        for t in tensors:
            weight_map[t] = name
        shards.append(name)

    flush({"model.embed_tokens.weight": bf16((VOCAB, H), rng, 0.02),
           "lm_head.weight": bf16((VOCAB, H), rng, 0.02),
           "model.norm.weight": np.full((H,), 0x3F80, np.uint16)}, "model-embed.safetensors")
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        flush({p + "input_layernorm.weight": np.full((H,), 0x3F80, np.uint16),
               p + "post_attention_layernorm.weight": np.full((H,), 0x3F80, np.uint16),
               p + "self_attn.q_proj.weight": bf16((HEADS * D, H), rng, 0.02),
               p + "self_attn.k_proj.weight": bf16((KV * D, H), rng, 0.02),
               p + "self_attn.v_proj.weight": bf16((KV * D, H), rng, 0.02),
               p + "self_attn.o_proj.weight": bf16((H, HEADS * D), rng, 0.02),
               p + "mlp.gate_proj.weight": bf16((INTER, H), rng, 0.02),
               p + "mlp.up_proj.weight": bf16((INTER, H), rng, 0.02),
               p + "mlp.down_proj.weight": bf16((H, INTER), rng, 0.02)}, f"model-layer{layer:02}.safetensors")
        print(f"layer {layer} written", flush=True)
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    config = {"architectures": ["LlamaForCausalLM"], "hidden_size": H, "intermediate_size": INTER,
              "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV, "head_dim": D,
              "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072,
              "vocab_size": VOCAB, "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": "bfloat16",
              "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
              "bos_token_id": 128000, "eos_token_id": 128009}
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        src = os.path.join(args.tokenizer, name)
        if os.path.exists(src):
            shutil.copy(src, args.out)
    print(f"wrote {len(shards)} shards to {args.out}")


if __name__ == "__main__":
    main()
