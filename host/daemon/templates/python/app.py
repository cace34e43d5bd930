"""__NAME__: the highest score wins; ties go to the lowest index; NaN is never chosen.
Abstains when no candidate has a usable score. Param: `min` (optional finite number):
abstain when the best score is below it."""

import math

import wit_world
from wit_world import exports
from wit_world.imports import log, types


def invalid(message):
    return wit_world.Err(types.PolicyError_InvalidParams(message))


def usable(c):
    return c.score is not None and not math.isnan(c.score)


class Selector(exports.Selector):
    def info(self):
        return types.PolicyInfo(name="__NAME__", version="0.1.0", wants_prescored=True,
                                params_doc="min: optional finite number; abstain below it")

    def select(self, req):
        params = dict(req.params)
        for key in params:
            if key != "min":
                raise invalid(f"unknown parameter `{key}` (accepted: min)")
        minimum = None
        if "min" in params:
            try:
                minimum = float(params["min"])
            except ValueError:
                minimum = math.nan
            if not math.isfinite(minimum):
                raise invalid(f"`min`: expected a finite number, got {params['min']!r}")
        if not req.candidates:
            raise wit_world.Err(types.PolicyError_NoCandidates())

        scored = sorted((c for c in req.candidates if usable(c)), key=lambda c: (-c.score, c.index))
        ranking = [c.index for c in scored] + [c.index for c in req.candidates if not usable(c)]
        if not scored:
            return types.Selection(None, ranking, "no candidate has a usable score")
        top = scored[0]
        if minimum is not None and top.score < minimum:
            log.log(log.Level.INFO, f"best score {top.score} is below min; abstaining")
            return types.Selection(None, ranking, f"best score {top.score} < min")
        return types.Selection(top.index, ranking, f"candidate {top.index} scores {top.score}")
