"""max-length as a Python rule: feature = -(tokens over `max_tokens`), 0 within the limit.

Param (addressed as `py-max-length.max_tokens` in a request): `max_tokens`, required.
Tokens are the host's count; a host without a tokenizer reports 0 for every text, and then
whitespace-separated words are counted instead. Same values as the bundled Rust `max-length`.
"""

import wit_world
from wit_world import exports


def invalid(message):
    # The scorer contract: an error that starts with `invalid params: ` is the caller's mistake.
    return wit_world.Err(f"invalid params: {message}")


class Scorer(exports.Scorer):
    def name(self):
        return "py-max-length"

    def version(self):
        return "1.0.0"

    def score(self, conversation, c, params):
        raw = dict(params).get("max_tokens")
        if raw is None:
            raise invalid("parameter `py-max-length.max_tokens` is required")
        text = raw.strip()
        digits = text[1:] if text.startswith("+") else text  # as Rust's integer parse
        if not (digits.isascii() and digits.isdigit()) or int(digits) >= 2**64:
            raise invalid(f"`max_tokens`: expected a non-negative integer, got {raw!r}")
        tokens = c.tokens if c.tokens else len(c.text.split())
        over = max(0, tokens - int(digits))
        return float(-over)
