"""Starts `arbiter serve` on the benchmark checkpoint (/tmp/arbiter-bench/model, written by
scripts/reference/bench_reference.py) and waits until it answers; shared by the daemon
benchmark scripts beside this file."""
import subprocess
import time
import urllib.request


def serve(binary, port, *extra):
    """The daemon's process and base URL, once /health answers (at most 60 s)."""
    proc = subprocess.Popen([binary, "serve", "--model", "/tmp/arbiter-bench/model", "--threads", "2",
                             "--listen", f"127.0.0.1:{port}", *extra], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    return proc, url
