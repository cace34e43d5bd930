#!/usr/bin/env python3
"""Builds arbiter's tiny reward-model fixtures and their golden values.

Outputs (under tests/fixtures/ by default):
  tiny-llama-f32/   LlamaForCausalLM, f32, 2 safetensors shards + index, llama3 rope scaling,
                    GQA (4 heads / 2 kv heads), explicit head_dim (24 != 64/4), untied lm_head,
                    chat template inside tokenizer_config.json
  tiny-llama-bf16/  same shape in bf16, tied embeddings, one file, chat_template.jinja file
  tiny-seqcls/      LlamaForSequenceClassification (1 label), f32, no rope scaling, default head_dim
  goldens.json      per fixture and case: template token ids and scores computed by the model
                    card's transformers code path (generate(max_new_tokens=1, output_scores=True,
                    do_sample=False) -> scores[0][0][0]); for the classifier, logits[0][0]
  goldens-bf16.json (with --bf16-goldens, from the fixtures already written) the same scores
                    with the model loaded in bfloat16, as the model card runs it: the yardstick
                    for arbiter's bf16 path (it must be at least as close to the f32 goldens)
  llama3-template-goldens.json  (with --llama3 DIR) token ids from the real Llama-3 tokenizer and
                    Llama-3.3 chat template for the same conversations

The tokenizer is a small byte-level BPE trained here on a generated corpus, with the Llama-3
split regex and Llama-3's 256 special tokens. Deterministic: fixed seeds throughout.
Run:  python scripts/reference/make_fixtures.py [--out tests/fixtures] [--llama3 ../shared/llama3]
"""
import argparse
import json
import os
import random
import sys

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

sys.path.insert(0, os.path.dirname(__file__))
from cases import CASES  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
NAMED_SPECIALS = {
    0: "<|begin_of_text|>", 1: "<|end_of_text|>", 4: "<|finetune_right_pad_id|>", 6: "<|start_header_id|>",
    7: "<|end_header_id|>", 8: "<|eom_id|>", 9: "<|eot_id|>", 10: "<|python_tag|>",
}
BPE_VOCAB = 512


def specials():
    out, reserved = [], 0
    for i in range(256):
        if i in NAMED_SPECIALS:
            out.append(NAMED_SPECIALS[i])
        else:
            out.append(f"<|reserved_special_token_{reserved}|>")
            reserved += 1
    return out


def corpus():
    rng = random.Random(7)
    words = ("the of and to in is you that it he was for on are as with his they at be this have from or one "
             "had by word but not what all were we when your can said there use an each which she do how their "
             "if will up other about out many then them these so some her would make like him into time has look "
             "two more write go see number no way could people my than first water been call who oil its now find "
             "Paris France capital answer question because colour JSON code print return def café naïve").split()
    lines = []
    for _ in range(4000):
        n = rng.randint(3, 14)
        line = " ".join(rng.choice(words) for _ in range(n))
        if rng.random() < 0.3:
            line = line.capitalize() + rng.choice([".", "?", "!", ":", ","])
        if rng.random() < 0.1:
            line += " " + str(rng.randint(0, 99999))
        lines.append(line)
    for messages, responses in CASES:
        lines.extend(m["content"] for m in messages)
        lines.extend(responses)
    lines += ["翻译 我喜欢猫 مرحبا كيف حالك 🐱 😊 👍 ünïcödé", "system user assistant\n\n"] * 20
    return lines


def build_tokenizer():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    assert tok.get_vocab_size() == BPE_VOCAB, tok.get_vocab_size()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials()])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    return tok


def write_tokenizer(tok, out, template, template_in_config):
    tok.save(os.path.join(out, "tokenizer.json"))
    config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "model_max_length": 2048,
              "clean_up_tokenization_spaces": True, "tokenizer_class": "PreTrainedTokenizerFast"}
    if template_in_config:
        config["chat_template"] = template
    else:
        with open(os.path.join(out, "chat_template.jinja"), "w", encoding="utf-8") as f:
            f.write(template)
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)


def model_config(tok, **overrides):
    base = dict(
        vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=160, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=24, rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 64},
        max_position_embeddings=2048, initializer_range=0.2, tie_word_embeddings=False,
        bos_token_id=tok.token_to_id("<|begin_of_text|>"), eos_token_id=tok.token_to_id("<|eot_id|>"),
    )
    base.update(overrides)
    return LlamaConfig(**base)


def legacy_rope_layout(path):
    """Rewrites transformers-5 `rope_parameters` as the `rope_theta` + `rope_scaling` keys that
    released Llama-3.x checkpoints (Nemotron-70B-Select among them) carry, so both layouts are
    covered: the goldens are computed after the rewrite, from the file as written."""
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = rope if rope.get("rope_type") != "default" else None
    cfg["torch_dtype"] = cfg.pop("dtype", "float32")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)


def conversation(messages, response):
    return list(messages) + [{"role": "assistant", "content": response}]


def template_ids(tokenizer, conv):
    ids = tokenizer.apply_chat_template(conv, tokenize=True, add_generation_prompt=False)
    if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    return [int(i) for i in ids]


@torch.no_grad()
def card_score(model, ids):
    """The Llama-3.3-Nemotron-70B-Select model card's reading of the reward."""
    input_ids = torch.tensor([ids])
    out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=1,
                         return_dict_in_generate=True, output_scores=True, do_sample=False,
                         pad_token_id=model.config.eos_token_id)
    reward = float(out.scores[0][0][0].item())
    # generate() applies no logits processor here, so this is the raw logit of token 0.
    direct = float(model(input_ids).logits[0, -1, 0].item())
    tolerance = 1e-5 if model.dtype == torch.float32 else 0.05
    assert abs(reward - direct) < tolerance, (reward, direct)
    return reward


@torch.no_grad()
def classifier_score(model, ids):
    return float(model(torch.tensor([ids])).logits[0][0].item())


def goldens_for(dirname, kind, dtype=torch.float32):
    tokenizer = AutoTokenizer.from_pretrained(dirname)
    if kind == "seqcls":
        model = LlamaForSequenceClassification.from_pretrained(dirname, dtype=dtype).eval()
        score = classifier_score
    else:
        model = LlamaForCausalLM.from_pretrained(dirname, dtype=dtype).eval()
        score = card_score
    cases = []
    for messages, responses in CASES:
        ids = [template_ids(tokenizer, conversation(messages, r)) for r in responses]
        cases.append({"messages": messages, "responses": responses, "token_ids": ids,
                      "scores": [score(model, i) for i in ids]})
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "tests", "fixtures"))
    ap.add_argument("--llama3", default=None, help="directory of the real Llama-3 tokenizer + template")
    ap.add_argument("--bf16-goldens", action="store_true",
                    help="only write goldens-bf16.json from the fixtures already in --out")
    args = ap.parse_args()
    if args.bf16_goldens:
        kinds = {"tiny-llama-f32": "causal", "tiny-llama-bf16": "causal", "tiny-seqcls": "seqcls"}
        scores = {name: [c["scores"] for c in goldens_for(os.path.join(args.out, name), kind, torch.bfloat16)]
                  for name, kind in kinds.items()}
        with open(os.path.join(args.out, "goldens-bf16.json"), "w", encoding="utf-8") as f:
            json.dump({"generator": "scripts/reference/make_fixtures.py --bf16-goldens", "torch": torch.__version__,
                       "dtype": "bfloat16", "fixtures": scores}, f, indent=1)
        return
    torch.manual_seed(0)
    with open(os.path.join(HERE, "fixture_template.jinja"), encoding="utf-8") as f:
        template = f.read()
    tok = build_tokenizer()

    specs = [
        ("tiny-llama-f32", "causal", dict(), torch.float32, True, "400KB"),
        ("tiny-llama-bf16", "causal", dict(tie_word_embeddings=True, num_hidden_layers=2), torch.bfloat16, False, None),
        ("tiny-seqcls", "seqcls", dict(rope_scaling=None, head_dim=None, num_labels=1, pad_token_id=None), torch.float32,
         True, None),
    ]
    goldens = {}
    for i, (name, kind, overrides, dtype, template_in_config, shard) in enumerate(specs):
        out = os.path.join(args.out, name)
        os.makedirs(out, exist_ok=True)
        torch.manual_seed(100 + i)
        cfg = model_config(tok, **{k: v for k, v in overrides.items() if v is not None or k == "rope_scaling"})
        if overrides.get("head_dim", 1) is None:
            cfg.head_dim = cfg.hidden_size // cfg.num_attention_heads
        model = (LlamaForSequenceClassification if kind == "seqcls" else LlamaForCausalLM)(cfg).to(dtype)
        kwargs = {"safe_serialization": True}
        if shard:
            kwargs["max_shard_size"] = shard
        model.save_pretrained(out, **kwargs)
        for extra in ("generation_config.json",):
            path = os.path.join(out, extra)
            if os.path.exists(path):
                os.remove(path)
        if name == "tiny-llama-f32":
            legacy_rope_layout(os.path.join(out, "config.json"))
        write_tokenizer(tok, out, template, template_in_config)
        goldens[name] = goldens_for(out, kind)
        print(f"{name}: {sum(len(c['responses']) for c in goldens[name])} golden scores", file=sys.stderr)
    with open(os.path.join(args.out, "goldens.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "scripts/reference/make_fixtures.py", "torch": torch.__version__,
                   "fixtures": goldens}, f, ensure_ascii=False, indent=1)

    if args.llama3:
        real = AutoTokenizer.from_pretrained(args.llama3)
        convs = [conversation(m, r) for m, rs in CASES for r in rs]
        data = [{"messages": c, "token_ids": template_ids(real, c)} for c in convs]
        with open(os.path.join(args.out, "llama3-template-goldens.json"), "w", encoding="utf-8") as f:
            json.dump({"generator": "scripts/reference/make_fixtures.py --llama3", "conversations": data}, f,
                      ensure_ascii=False, indent=1)
        print(f"llama3: {len(data)} conversations", file=sys.stderr)


if __name__ == "__main__":
    main()
