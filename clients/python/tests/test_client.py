"""The client against a live `arbiter serve` on the demo model (ARBITER_BIN: the binary; CI
sets it), and its retry logic against a scripted local server."""

import asyncio
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from arbiter_client import (  # noqa: E402
    ArbiterClient,
    AsyncArbiterClient,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    OverloadedError,
)

KEY = "s3cret"
CONVERSATION = [{"role": "user", "content": "What is the capital of France?"}]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveDaemon(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        binary = os.environ.get("ARBITER_BIN")
        if not binary:
            raise unittest.SkipTest("ARBITER_BIN is not set: no daemon to test against")
        cls.port = free_port()
        cls.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{cls.port}", "--api-key", KEY],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.url = f"http://127.0.0.1:{cls.port}"
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(cls.url + "/health", timeout=1)
                break
            except Exception:
                if time.time() > deadline or cls.proc.poll() is not None:
                    raise RuntimeError("the daemon did not start")
                time.sleep(0.1)
        cls.client = ArbiterClient(cls.url, api_key=KEY)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(timeout=60)

    def test_score_and_texts(self):
        scores = self.client.score(CONVERSATION, ["Paris.", "Lyon."])
        self.assertEqual(len(scores), 2)
        self.assertTrue(all(isinstance(s, float) for s in scores))
        self.assertEqual(len(self.client.score_texts(["<|begin_of_text|>hello"])), 1)

    def test_select_argmax_matches_scores(self):
        answer = self.client.select("argmax", messages=CONVERSATION, responses=["Paris.", "Lyon.", "Nice"])
        scores = answer["scores"]
        self.assertEqual(answer["chosen"], max(range(3), key=lambda i: scores[i]))
        self.assertEqual(answer["policy"]["name"], "argmax")
        self.assertIn("argmax", [p["name"] for p in self.client.policies()])

    def test_errors_are_typed(self):
        with self.assertRaises(NotFoundError) as e:
            self.client.select("no-such-policy", responses=["a"])
        self.assertEqual(e.exception.type, "unknown_policy")
        with self.assertRaises(BadRequestError) as e:
            self.client.score(CONVERSATION, [])
        self.assertIn("empty", e.exception.message)
        with self.assertRaises(AuthenticationError):
            ArbiterClient(self.url, api_key="wrong").score(CONVERSATION, ["a"])

    def test_reward_model_adapter(self):
        reward = self.client.reward_model()
        self.assertEqual(reward("What is the capital of France?", ["Paris.", "Lyon."]),
                         self.client.score(CONVERSATION, ["Paris.", "Lyon."]))

    def test_async_client(self):
        async def run():
            client = AsyncArbiterClient(self.url, api_key=KEY)
            return await asyncio.gather(client.score(CONVERSATION, ["a"]), client.score(CONVERSATION, ["b", "c"]))
        first, second = asyncio.run(run())
        self.assertEqual((len(first), len(second)), (1, 2))


class Retries(unittest.TestCase):
    """A local server that answers 429 twice, then scores."""

    def setUp(self):
        self.calls = []
        calls = self.calls

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                calls.append(self.path)
                if len(calls) <= 2:
                    body, status = {"error": "busy", "type": "overloaded"}, 429
                else:
                    body, status = {"scores": [1.5]}, 200
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def tearDown(self):
        self.server.shutdown()

    def test_429_is_retried_with_backoff(self):
        client = ArbiterClient(self.url, retries=3, backoff=0.01)
        self.assertEqual(client.score(CONVERSATION, ["a"]), [1.5])
        self.assertEqual(len(self.calls), 3)

    def test_429_is_raised_when_retries_run_out(self):
        with self.assertRaises(OverloadedError) as e:
            ArbiterClient(self.url, retries=1, backoff=0.01).score(CONVERSATION, ["a"])
        self.assertEqual(e.exception.status, 429)
        self.assertEqual(len(self.calls), 2)


if __name__ == "__main__":
    unittest.main()
