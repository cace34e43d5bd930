#!/usr/bin/env python3
"""Helpers of scripts/gpu-check.sh (stdlib only, so they run on a bare GPU machine).

  gpu_check.py cases FIXTURE OUT.jsonl        the fixture's golden cases as `arbiter score` input
  gpu_check.py compare FIXTURE SCORED.jsonl DTYPE LABEL
                                              scores vs the CPU f32 goldens: f32 within 1e-3;
                                              bf16/f16: max error reported, and every pair of
                                              responses whose golden gap is over 4x that error
                                              ranked as the goldens rank it
  gpu_check.py same A.jsonl B.jsonl LABEL     two score outputs equal (the multi-GPU split check)
  gpu_check.py mfu BENCH.txt PEAK_TFLOPS      MFU from `arbiter bench engine` output
"""
import json
import re
import sys

GOLDENS = "tests/fixtures/goldens.json"


def cases(fixture):
    with open(GOLDENS) as f:
        return json.load(f)["fixtures"][fixture]


def scored(path):
    with open(path) as f:
        return [json.loads(line)["scores"] for line in f if line.strip()]


def cmd_cases(fixture, out):
    with open(out, "w") as f:
        for c in cases(fixture):
            f.write(json.dumps({"messages": c["messages"], "responses": c["responses"]}) + "\n")


def cmd_compare(fixture, path, dtype, label):
    want = [c["scores"] for c in cases(fixture)]
    got = scored(path)
    assert len(got) == len(want), f"{len(got)} scored cases, {len(want)} goldens"
    err = max(abs(g - w) for gs, ws in zip(got, want) for g, w in zip(gs, ws))
    pairs = flipped = 0
    for gs, ws in zip(got, want):
        for i in range(len(ws)):
            for j in range(i + 1, len(ws)):
                if abs(ws[i] - ws[j]) > 4 * err:
                    pairs += 1
                    flipped += (gs[i] - gs[j]) * (ws[i] - ws[j]) < 0
    ok = err <= 1e-3 if dtype == "f32" else flipped == 0
    print(f"| {label} | {fixture} {dtype} | max abs error vs CPU f32 goldens {err:.2e} | "
          f"{pairs - flipped}/{pairs} clearly separated pairs ranked as the goldens | {'PASS' if ok else 'FAIL'} |")
    return ok


def cmd_same(a, b, label):
    x, y = scored(a), scored(b)
    err = max((abs(p - q) for xs, ys in zip(x, y) for p, q in zip(xs, ys)), default=float("inf"))
    ok = len(x) == len(y) and err <= 1e-6
    print(f"| {label} | max abs difference {err:.2e} | {'PASS' if ok else 'FAIL'} |")
    return ok


def cmd_mfu(path, peak_tflops):
    text = open(path).read()
    m = re.search(r"prefix sharing on : .*?, ([0-9.]+) tokens/s, .*?, ([0-9.]+) GFLOP/s", text)
    if not m:
        print(f"| 8B-shaped prefill | no bench output in {path} | FAIL |")
        return False
    tokens, gflops = float(m.group(1)), float(m.group(2))
    mfu = gflops / (float(peak_tflops) * 1000)
    ref = re.search(r"reference .*?: ([0-9.]+) s per case; arbiter ([0-9.]+)x with prefix sharing", text)
    vs = f"{ref.group(2)}x PyTorch's model-card loop" if ref else "no PyTorch reference on this machine"
    print(f"| 8B-shaped prefill, N = 16 × ~1k tokens on a ~4k prompt | {tokens:.0f} tokens/s | "
          f"{gflops / 1000:.1f} TFLOP/s = {mfu:.1%} MFU of {peak_tflops} TFLOP/s | {vs} |")
    return True


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    result = {"cases": cmd_cases, "compare": cmd_compare, "same": cmd_same, "mfu": cmd_mfu}[command](*args)
    sys.exit(0 if result is None or result else 1)
