"""threshold in Python: choose the best candidate only if its score is at least `min`.

Params: `min` (required, finite); `fallback` = `none` (abstain, default) | `best`.
Same behaviour as the bundled Rust `threshold` (CI compares them on the same cases).
"""

import math
import struct

import wit_world
from wit_world import exports
from wit_world.imports import log, types

ACCEPTED = ("min", "fallback")


def invalid(message):
    return wit_world.Err(types.PolicyError_InvalidParams(message))


def as_f32(raw, key):
    """`raw` as the nearest f32, as the host's Rust plugins parse numbers: finite only."""
    text = raw.strip()
    try:
        if "_" in text:  # Python accepts `1_000`; a Rust f32 parse does not
            raise ValueError
        value = struct.unpack("f", struct.pack("f", float(text)))[0]
    except (ValueError, OverflowError):
        value = math.nan
    if not math.isfinite(value):
        raise invalid(f"`{key}`: expected a finite number, got {raw!r}")
    return value


def usable(c):
    return c.score is not None and not math.isnan(c.score)


class Selector(exports.Selector):
    def info(self):
        return types.PolicyInfo(
            name="py-threshold",
            version="1.0.0",
            wants_prescored=True,
            params_doc="min: required finite number; the best score must be >= min\n"
            "fallback: none (abstain, default) | best (choose the best anyway)",
        )

    def select(self, req):
        params = dict(req.params)
        for key, _ in req.params:
            if key not in ACCEPTED:
                raise invalid(f"unknown parameter `{key}` (accepted: {', '.join(ACCEPTED)})")
        if "min" not in params:
            raise invalid("`min` is required")
        minimum = as_f32(params["min"], "min")
        fallback = params.get("fallback", "none").strip()
        if fallback not in ("none", "best"):
            raise invalid(f"`fallback`: expected one of none | best, got {fallback!r}")
        if not req.candidates:
            raise wit_world.Err(types.PolicyError_NoCandidates())

        # Best first, ties by lowest index; -0.0 and 0.0 tie; unusable scores last, in order.
        scored = sorted((c for c in req.candidates if usable(c)), key=lambda c: (-c.score, c.index))
        ranking = [c.index for c in scored] + [c.index for c in req.candidates if not usable(c)]
        if not scored:
            return types.Selection(chosen=None, ranking=ranking, reason="no candidate has a usable score")
        top = scored[0]
        if top.score >= minimum:
            return types.Selection(top.index, ranking, f"candidate {top.index} scores {top.score} >= min {minimum}")
        if fallback == "best":
            reason = f"best score {top.score} < min {minimum}; fallback=best chose candidate {top.index}"
            return types.Selection(top.index, ranking, reason)
        log.log(log.Level.DEBUG, f"abstaining: best score {top.score} < {minimum}")
        return types.Selection(None, ranking, f"best score {top.score} (candidate {top.index}) < min {minimum}; abstaining")
