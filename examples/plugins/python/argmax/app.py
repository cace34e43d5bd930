"""argmax in Python: the highest score wins; ties go to the lowest index; NaN and missing scores
never win. Same behaviour as the bundled Rust `argmax` (CI compares them)."""

import math

import wit_world
from wit_world import exports
from wit_world.imports import types


def usable(c):
    return c.score is not None and not math.isnan(c.score)


class Selector(exports.Selector):
    def info(self):
        return types.PolicyInfo(name="py-argmax", version="1.0.0", wants_prescored=True, params_doc="(none)")

    def select(self, req):
        if req.params:
            raise wit_world.Err(types.PolicyError_InvalidParams(
                f"unknown parameter `{req.params[0][0]}` (this policy takes none)"))
        if not req.candidates:
            raise wit_world.Err(types.PolicyError_NoCandidates())
        ranked = sorted((c for c in req.candidates if usable(c)), key=lambda c: (-c.score, c.index))
        ranking = [c.index for c in ranked] + [c.index for c in req.candidates if not usable(c)]
        chosen = ranked[0].index if ranked else None
        reason = f"highest score {ranked[0].score}" if ranked else "no candidate has a usable score"
        return types.Selection(chosen=chosen, ranking=ranking, reason=reason)
