#!/usr/bin/env python3
"""Runs the shell blocks of sdk/README.md, README.md and the per-language plugin pages as a new
user would, so the docs cannot rot: the SDK recipe builds a plugin next to the clone, README's
commands use it, each docs/plugins page scaffolds, builds and hot-loads a plugin.

Every ```sh block carries a marker on the line above its fence:
  <!-- doc-test: run -->               run it (bash -eo pipefail) from the repo root
  <!-- doc-test: run in DIR -->        run it from DIR (beside the repo, e.g. my-policy; `.`: beside it)
  <!-- doc-test: serve PORT -->        start it in the background, wait for /health on PORT
  <!-- doc-test: file PATH -->         (any language) write the block to PATH beside the repo
  <!-- doc-test: skip: REASON -->      do not run it, and say why
An unmarked sh block is an error. A block fails on a non-zero exit or when it prints the
daemon's error shape ({"error":"...","type":"..."}). `cargo run --release -p arbiter --`
is run as `arbiter` (the README says they are the same), with the binary under test first on
PATH; nothing is installed.

  python3 scripts/ci/doc_blocks.py target/debug/arbiter
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DOCS = ["sdk/README.md", "README.md", "docs/plugins/rust.md", "docs/plugins/python.md",
        "docs/plugins/javascript.md", "docs/plugins/c.md"]
SCAFFOLD = re.compile(r"arbiter plugin new (\S+)")
MARKER = re.compile(r"<!-- doc-test: (.*?) -->")
ERROR_SHAPE = re.compile(r'\{"error":"[^"]*","type":"')


def blocks(path):
    """(line, marker or None, language, text) of every fenced block."""
    lines = open(os.path.join(ROOT, path)).read().split("\n")
    out, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if fence and fence.group(1):
            marker = MARKER.fullmatch(lines[i - 1].strip()) if i > 0 else None
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            out.append((i + 1, marker.group(1) if marker else None, fence.group(1), "\n".join(lines[i + 1:j]) + "\n"))
            i = j
        i += 1
    return out


def main():
    binary = os.path.realpath(sys.argv[1])
    work = os.path.realpath(os.environ.get("DOC_TEST_DIR", os.path.expanduser("~/.cache/arbiter-doctest")))
    os.makedirs(os.path.join(work, "bin"), exist_ok=True)
    for link, target in ((os.path.join(work, "bin", "arbiter"), binary), (os.path.join(work, "arbiter"), ROOT)):
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target, link)
    shutil.rmtree("/tmp/arbiter-plugins", ignore_errors=True)
    # Projects the pages scaffold start from an empty folder on every run, as a new user's do.
    for doc in DOCS:
        for name in SCAFFOLD.findall(open(os.path.join(ROOT, doc)).read()):
            shutil.rmtree(os.path.join(work, name), ignore_errors=True)
    env = dict(os.environ, PATH=os.path.join(work, "bin") + os.pathsep + os.environ["PATH"])
    # The recipes build in their own target/ folders, as a user's would.
    env.pop("CARGO_TARGET_DIR", None)
    repo = os.path.join(work, "arbiter")
    background, failures, ran = [], [], 0
    try:
        for doc in DOCS:
            for line, marker, lang, text in blocks(doc):
                where = f"{doc}:{line}"
                if marker is None:
                    if lang == "sh":
                        failures.append(f"{where}: sh block without a doc-test marker")
                    continue
                text = text.replace("cargo run --release -p arbiter -- ", "arbiter ")
                # `..` beside a symlinked repo resolves physically: point the recipes' sibling
                # crate at its real place.
                text = text.replace("../my-policy/", os.path.join(work, "my-policy") + "/")
                if marker.startswith("skip:"):
                    print(f"-- {where}: skipped ({marker[5:].strip()})", flush=True)
                    continue
                if marker.startswith("file "):
                    path = os.path.join(work, marker[5:].strip())
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "w") as f:
                        f.write(text)
                    print(f"-- {where}: wrote {marker[5:].strip()}")
                    continue
                ran += 1
                if marker.startswith("serve "):
                    port = int(marker.split()[1])
                    print(f"-- {where}: serving in the background on {port}", flush=True)
                    proc = subprocess.Popen(["bash", "-c", text], cwd=repo, env=env, start_new_session=True,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    background.append(proc)
                    deadline = time.time() + 180
                    while True:
                        try:
                            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                            break
                        except Exception:
                            if time.time() > deadline or proc.poll() is not None:
                                failures.append(f"{where}: the daemon never answered on {port}")
                                break
                            time.sleep(0.2)
                    continue
                cwd = repo
                if marker.startswith("run in "):
                    cwd = os.path.join(work, marker[len("run in "):].strip())
                elif marker != "run":
                    failures.append(f"{where}: unknown marker {marker!r}")
                    continue
                print(f"-- {where}: running in {os.path.relpath(cwd, work)}", flush=True)
                # Output to files, not pipes: a process the block leaves behind must not hold
                # the runner; its whole process group is stopped when the block ends.
                with open(os.path.join(work, "out"), "w+") as out, open(os.path.join(work, "err"), "w+") as err:
                    proc = subprocess.Popen(["bash", "-eo", "pipefail", "-c", text], cwd=cwd, env=env,
                                            stdout=out, stderr=err, start_new_session=True)
                    try:
                        rc = proc.wait(timeout=900)
                    except subprocess.TimeoutExpired:
                        rc = "timeout"
                    try:
                        os.killpg(proc.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                    out.seek(0)
                    err.seek(0)
                    stdout, stderr = out.read(), err.read()
                sys.stdout.write(stdout[-4000:] + stderr[-2000:])
                if rc != 0:
                    failures.append(f"{where}: exit {rc}")
                elif ERROR_SHAPE.search(stdout):
                    failures.append(f"{where}: the daemon answered with an error")
    finally:
        for proc in background:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    if failures:
        sys.exit("doc blocks failed:\n  " + "\n  ".join(failures))
    print(f"doc blocks: {ran} run, all passed")


if __name__ == "__main__":
    main()
