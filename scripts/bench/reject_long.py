#!/usr/bin/env python3
"""How fast `arbiter serve` refuses over-long messages, and what they cost in memory.

Starts `BINARY serve --model /tmp/arbiter-bench/model` (the checkpoint bench_reference.py
writes; context 8,192 tokens) on 127.0.0.1:PORT, posts a 1 MB and a 7 MB message with 1 and 16
responses to /v1/score, and prints each answer's status, time and the daemon's RSS after it.

  python3 scripts/bench/reject_long.py target/release/arbiter 18181
"""
import json
import sys
import time
import urllib.request
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_bench_model import serve  # noqa: E402

binary, port = sys.argv[1], int(sys.argv[2])
proc, url = serve(binary, port, "--max-body-bytes", "16000000")
def rss():
    for l in open(f"/proc/{proc.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1]) // 1024
words = "lorem ipsum dolor sit amet consectetur adipiscing elit "
print("baseline RSS", rss(), "MiB")
for mb, n in [(1, 1), (1, 16), (7, 16), (7, 16)]:
    msg = words * (mb * 1_000_000 // len(words))
    body = json.dumps({"messages": [{"role": "user", "content": msg}], "responses": [f"answer {i}" for i in range(n)]}).encode()
    req = urllib.request.Request(url + "/v1/score", data=body, headers={"Content-Type": "application/json"})
    t = time.time()
    try:
        urllib.request.urlopen(req, timeout=600); status = 200
    except urllib.error.HTTPError as e:
        status = e.code
    print(f"{mb} MB message x {n} responses: {status} in {time.time()-t:.2f} s; RSS after {rss()} MiB")
proc.terminate(); proc.wait()
