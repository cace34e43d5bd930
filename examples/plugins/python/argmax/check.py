#!/usr/bin/env python3
"""Runs py-argmax.wasm and the bundled Rust argmax on the same cases through `arbiter select`
and checks they choose and rank alike (CI: after build.sh).

  python3 examples/plugins/python/argmax/check.py path/to/arbiter
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def cases():
    yield {"candidates": [{"text": "a", "score": 1}, {"text": "b", "score": 3}, {"text": "c", "score": 2}]}
    yield {"candidates": [{"text": "a", "score": 2}, {"text": "b", "score": 2}]}                      # tie: lowest index
    yield {"candidates": [{"text": "a", "score": "NaN"}, {"text": "b", "score": -1}]}                # NaN never wins
    yield {"candidates": [{"text": "a", "score": "-inf"}, {"text": "b", "score": "inf"}]}
    yield {"candidates": [{"text": "a", "score": "NaN"}]}                                            # nothing usable
    yield {"candidates": [{"text": "a", "score": 0.0}, {"text": "b", "score": -0.0}]}
    for n in (64, 1024):
        yield {"candidates": [{"text": f"c{i}", "score": ((i * 7919) % 1000) / 100.0} for i in range(n)]}


def select(arbiter, policy, case):
    run = subprocess.run([arbiter, "select", "--policy", policy, "--input", "-"], input=json.dumps(case),
                         capture_output=True, text=True)
    if run.returncode != 0:
        return {"error": run.stderr.strip()}
    out = json.loads(run.stdout)
    return {"chosen": out["chosen"], "ranking": out["ranking"]}


def main():
    arbiter = sys.argv[1]
    wasm = os.path.join(HERE, "py-argmax.wasm")
    failed = 0
    for i, case in enumerate(cases()):
        py, rust = select(arbiter, wasm, case), select(arbiter, "argmax", case)
        ok = py == rust
        failed += not ok
        print(f"case {i} ({len(case['candidates'])} candidates): {'same' if ok else f'DIFFERENT: {py} vs {rust}'}")
    bad = select(arbiter, wasm, dict(next(cases()), params={"x": "1"}))
    ok = "invalid-params" in bad.get("error", "") or "invalid params" in bad.get("error", "")
    print(f"unknown parameter: {'refused as invalid params' if ok else f'UNEXPECTED: {bad}'}")
    failed += not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
