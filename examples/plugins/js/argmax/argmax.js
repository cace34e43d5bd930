// argmax in JavaScript: the highest score wins; ties go to the lowest index; NaN and missing
// scores never win. Same behaviour as the bundled Rust `argmax` (CI compares them).
import { log } from "arbiter:policy/log@0.1.0";

const usable = (c) => c.score !== undefined && c.score !== null && !Number.isNaN(c.score);

export const selector = {
  info() {
    return { name: "js-argmax", version: "1.0.0", wantsPrescored: true, paramsDoc: "(none)" };
  },

  select(req) {
    if (req.params.length > 0) {
      throw { tag: "invalid-params", val: `unknown parameter \`${req.params[0][0]}\` (this policy takes none)` };
    }
    if (req.candidates.length === 0) {
      throw { tag: "no-candidates" };
    }
    // Best score first, ties by lowest index (a stable sort keeps request order); -0 == 0.
    const scored = req.candidates.filter(usable).sort((a, b) => b.score - a.score || a.index - b.index);
    const ranking = scored.map((c) => c.index).concat(req.candidates.filter((c) => !usable(c)).map((c) => c.index));
    const n = req.candidates.length;
    if (scored.length === 0) {
      log("debug", `none of ${n} candidates has a usable score`);
      return { chosen: undefined, ranking, reason: `none of the ${n} candidates has a usable score` };
    }
    const top = scored[0];
    return { chosen: top.index, ranking, reason: `candidate ${top.index} has the highest score (${top.score}) of ${n}` };
  },
};
