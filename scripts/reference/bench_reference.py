#!/usr/bin/env python3
"""Engine benchmark against the reference transformers loop, on a mid-size random checkpoint.

Creates (once) a random LlamaForCausalLM checkpoint: hidden 1024, 8 layers, 16 heads / 4 kv
heads, head_dim 64, intermediate 3072, vocab 128256, llama3 rope scaling, bf16 weights (both
sides compute in f32 on CPU). It uses the real Llama-3 tokenizer + Llama-3.3 template when
--tokenizer points at them (../shared/llama3), else the tiny fixture tokenizer. Then writes a
JSONL of cases (N responses each, prompt ~4x the response length) and times the model card's
scoring loop over them: per response, apply_chat_template -> generate(max_new_tokens=1,
output_scores=True) -> scores[0][0][0], with torch.set_num_threads(--threads).
Prints JSON with the per-case times and the scores (for a cross-check against arbiter's).

  python scripts/reference/bench_reference.py --dir /tmp/arbiter-bench --threads 2
  python scripts/reference/bench_reference.py --dir /tmp/arbiter-bench --threads 2 --dtype bfloat16 \
      --out reference-bf16.json
  cargo run --release -p arbiter -- bench engine --model /tmp/arbiter-bench/model \
      --input /tmp/arbiter-bench/cases.jsonl --threads 2
"""
import argparse
import json
import os
import random
import shutil
import statistics
import time

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
WORDS = ("the model answers questions about science history and code with care and detail while "
         "users ask for explanations examples proofs summaries translations and short lists of facts").split()


def text_of(rng, n_words):
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def make_checkpoint(out, tokenizer_dir):
    model_dir = os.path.join(out, "model")
    if os.path.exists(os.path.join(model_dir, "config.json")):
        return model_dir
    os.makedirs(model_dir, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(vocab_size=128256, hidden_size=1024, intermediate_size=3072, num_hidden_layers=8,
                      num_attention_heads=16, num_key_value_heads=4, head_dim=64, rms_norm_eps=1e-5,
                      rope_theta=500000.0, max_position_embeddings=8192, tie_word_embeddings=False,
                      rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(model_dir, max_shard_size="200MB")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        src = os.path.join(tokenizer_dir, name)
        if os.path.exists(src):
            shutil.copy(src, model_dir)
    gen = os.path.join(model_dir, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    return model_dir


def make_cases(out, name, n_cases, n, prompt_words, response_words):
    rng = random.Random(1)
    path = os.path.join(out, name + ".jsonl")
    with open(path, "w") as f:
        for c in range(n_cases):
            messages = [{"role": "user", "content": text_of(rng, prompt_words)}]
            responses = [text_of(rng, response_words) for _ in range(n)]
            f.write(json.dumps({"id": c, "messages": messages, "responses": responses}) + "\n")
    return path


@torch.no_grad()
def reference(model_dir, cases_path, threads, dtype, device="cpu"):
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
    cases = [json.loads(line) for line in open(cases_path)]
    times, scores, tokens = [], [], 0
    for case in cases:
        start = time.perf_counter()
        row = []
        for r in case["responses"]:
            ids = tok.apply_chat_template(case["messages"] + [{"role": "assistant", "content": r}],
                                          tokenize=True, add_generation_prompt=False, return_tensors="pt",
                                          return_dict=True)
            tokens += ids["input_ids"].shape[1]
            out = model.generate(ids["input_ids"].to(device), attention_mask=ids["attention_mask"].to(device), max_new_tokens=1,
                                 return_dict_in_generate=True, output_scores=True, do_sample=False,
                                 pad_token_id=tok.eos_token_id)
            row.append(float(out.scores[0][0][0].item()))
        times.append(time.perf_counter() - start)
        scores.append(row)
    return {"times_s": times, "median_s": statistics.median(times), "tokens": tokens, "scores": scores,
            "threads": threads, "dtype": dtype, "torch": torch.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/arbiter-bench")
    ap.add_argument("--tokenizer", default=os.path.join(HERE, "..", "..", "..", "shared", "llama3"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cases", type=int, default=3)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--prompt-words", type=int, default=240)
    ap.add_argument("--response-words", type=int, default=60)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="reference compute dtype (the model card runs bfloat16)")
    ap.add_argument("--set", default="cases", help="case set name: writes --dir/SET.jsonl")
    ap.add_argument("--device", default="cpu", help="torch device for the reference (e.g. cuda)")
    ap.add_argument("--out", default="reference.json", help="result file name inside --dir")
    args = ap.parse_args()
    tokenizer_dir = args.tokenizer if os.path.exists(os.path.join(args.tokenizer, "tokenizer.json")) else \
        os.path.join(HERE, "..", "..", "tests", "fixtures", "tiny-llama-f32")
    os.makedirs(args.dir, exist_ok=True)
    model_dir = make_checkpoint(args.dir, tokenizer_dir)
    cases = make_cases(args.dir, args.set, args.cases, args.n, args.prompt_words, args.response_words)
    result = reference(model_dir, cases, args.threads, args.dtype, args.device)
    if args.device.startswith("cuda"):
        result["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    with open(os.path.join(args.dir, args.out), "w") as f:
        json.dump(result, f)
    print(json.dumps({k: v for k, v in result.items() if k != "scores"}))


if __name__ == "__main__":
    main()
