#!/usr/bin/env python3
"""Shutdown with a request in flight: how long `arbiter serve` takes to exit after SIGTERM,
and what the client gets.

Starts `BINARY serve --model /tmp/arbiter-bench/model --drain-seconds DRAIN` on 127.0.0.1:PORT,
posts a 256-response /v1/score (the shared.jsonl cases, see BENCHMARKS.md), sends SIGTERM one
second later, and prints the exit time and the client's answer.

  python3 scripts/bench/drain.py target/release/arbiter 18183 2
"""
import json
import signal
import sys
import threading
import time
import urllib.request
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_bench_model import serve  # noqa: E402

binary, port, drain = sys.argv[1], int(sys.argv[2]), sys.argv[3]
proc, url = serve(binary, port, "--drain-seconds", drain)
cases = [json.loads(l) for l in open("/tmp/arbiter-bench/shared.jsonl")]
responses = [r for c in cases for r in c["responses"]] * 4  # 256 responses
body = json.dumps({"messages": cases[0]["messages"], "responses": responses}).encode()
result = {}
def client():
    t = time.time()
    req = urllib.request.Request(url + "/v1/score", data=body, headers={"Content-Type": "application/json"})
    try:
        r = urllib.request.urlopen(req, timeout=600); result["status"] = r.status
    except urllib.error.HTTPError as e:
        result["status"] = e.code; result["body"] = e.read().decode()[:200]
    except Exception as e:
        result["status"] = repr(e)
    result["took"] = time.time() - t
th = threading.Thread(target=client); th.start()
time.sleep(1.0)
t = time.time(); proc.send_signal(signal.SIGTERM); proc.wait(); exited = time.time() - t
th.join()
print(f"drain {drain} s: SIGTERM with a 256-response /v1/score in flight -> process exited after {exited:.2f} s; client got {result}")
