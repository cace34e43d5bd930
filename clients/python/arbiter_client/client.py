"""The synchronous and asynchronous clients, and a reward-model adapter for best-of-N code."""

import asyncio
import json
import time
import urllib.error
import urllib.request

from .errors import ArbiterError, error_for

RETRY_STATUSES = (429, 503)


class ArbiterClient:
    """Talks to one daemon. Thread-safe (one HTTP request per call, no shared state)."""

    def __init__(self, url="http://localhost:8080", api_key=None, timeout=600.0, retries=3, backoff=0.5):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def _request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read() or b"null")
            except urllib.error.HTTPError as e:
                raw = e.read()
                try:
                    payload = json.loads(raw)
                    error = error_for(e.code, payload.get("type", "unknown"), payload.get("error", ""))
                except (ValueError, AttributeError):
                    error = error_for(e.code, "unknown", raw.decode(errors="replace"))
                if e.code not in RETRY_STATUSES or attempt == self.retries:
                    raise error from None
                delay = self.backoff * (2 ** attempt)
                retry_after = e.headers.get("Retry-After")
                if retry_after and retry_after.isdigit():
                    delay = max(delay, float(retry_after))
                time.sleep(delay)
            except urllib.error.URLError as e:
                raise ArbiterError(0, "connection", str(e.reason)) from None
        raise AssertionError("unreachable")

    def score(self, messages, responses):
        """One reward per response (higher is better), as replies to `messages`."""
        return self._request("POST", "/v1/score", {"messages": messages, "responses": list(responses)})["scores"]

    def score_texts(self, texts):
        """Rewards of texts already rendered with the model's chat template (scored as given)."""
        return self._request("POST", "/v1/score", {"texts": list(texts)})["scores"]

    def select(self, policy, messages=None, responses=None, candidates=None, params=None, rules=None, seed=None):
        """Runs `policy` (and `rules`) over the responses or candidates; returns the daemon's
        answer: `chosen`, `ranking`, `scores`, `features`, `reason`, `policy`, ..."""
        body = {"policy": policy}
        for key, value in (("messages", messages), ("responses", responses), ("candidates", candidates),
                           ("params", params), ("rules", rules), ("seed", seed)):
            if value is not None:
                body[key] = value
        return self._request("POST", "/v1/select", body)

    def policies(self):
        """The plugins being served."""
        return self._request("GET", "/v1/policies")["policies"]

    def health(self):
        """`{"status": "ok", ...}`, or raises (503 after an engine failure)."""
        return self._request("GET", "/health")

    def info(self):
        """The model and the limits in force."""
        return self._request("GET", "/info")

    def reward_model(self):
        """A reward model for best-of-N code: `reward(prompt, responses) -> [float]`."""
        return RewardModel(self)


class RewardModel:
    """`reward(prompt, responses)`: `prompt` is the user's text or a list of chat messages."""

    def __init__(self, client):
        self.client = client

    def __call__(self, prompt, responses):
        return self.score(prompt, responses)

    def score(self, prompt, responses):
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        return self.client.score(messages, responses)


class AsyncArbiterClient:
    """The same calls as coroutines (each runs the blocking request on a worker thread)."""

    def __init__(self, *args, **kwargs):
        self._sync = ArbiterClient(*args, **kwargs)

    async def score(self, messages, responses):
        return await asyncio.to_thread(self._sync.score, messages, responses)

    async def score_texts(self, texts):
        return await asyncio.to_thread(self._sync.score_texts, texts)

    async def select(self, policy, **kwargs):
        return await asyncio.to_thread(self._sync.select, policy, **kwargs)

    async def policies(self):
        return await asyncio.to_thread(self._sync.policies)

    async def health(self):
        return await asyncio.to_thread(self._sync.health)

    async def info(self):
        return await asyncio.to_thread(self._sync.info)
