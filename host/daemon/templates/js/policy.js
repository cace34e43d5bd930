// __NAME__: the highest score wins; ties go to the lowest index; NaN is never chosen.
// Abstains when no candidate has a usable score. Param: `min` (optional finite number):
// abstain when the best score is below it.
import { log } from "arbiter:policy/log@0.1.0";

const usable = (c) => c.score !== undefined && c.score !== null && !Number.isNaN(c.score);
const invalid = (message) => ({ tag: "invalid-params", val: message });

export const selector = {
  info() {
    return { name: "__NAME__", version: "0.1.0", wantsPrescored: true, paramsDoc: "min: optional finite number; abstain below it" };
  },

  select(req) {
    let min;
    for (const [key, value] of req.params) {
      if (key !== "min") throw invalid(`unknown parameter \`${key}\` (accepted: min)`);
      min = value.trim() === "" ? NaN : Number(value);
      if (!Number.isFinite(min)) throw invalid(`\`min\`: expected a finite number, got ${JSON.stringify(value)}`);
    }
    if (req.candidates.length === 0) throw { tag: "no-candidates" };

    const scored = req.candidates.filter(usable).sort((a, b) => b.score - a.score || a.index - b.index);
    const ranking = scored.map((c) => c.index).concat(req.candidates.filter((c) => !usable(c)).map((c) => c.index));
    if (scored.length === 0) return { chosen: undefined, ranking, reason: "no candidate has a usable score" };
    const top = scored[0];
    if (min !== undefined && top.score < min) {
      log("info", `best score ${top.score} is below min; abstaining`);
      return { chosen: undefined, ranking, reason: `best score ${top.score} < min` };
    }
    return { chosen: top.index, ranking, reason: `candidate ${top.index} scores ${top.score}` };
  },
};
