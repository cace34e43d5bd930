//! Behaviour of every bundled plugin: ties, NaN, empty lists, bad params, seeded randomness.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arbiter::input::SelectInput;
use arbiter_plugins::{Candidate, ErrorKind, NoModel, PolicyError, Request, RewardErrorKind, Selection};

use crate::support::{self, fake, scored, with_params};

fn run(policy: &str, req: &Request) -> Result<Selection, ErrorKind> {
    let (host, _d) = support::host();
    let plugin = support::bundled(&host, policy);
    plugin.select(req, fake()).map(|(s, _)| s).map_err(|e| e.kind)
}

fn invalid_param(policy: &str, req: &Request) -> String {
    match run(policy, req) {
        Err(ErrorKind::Policy(PolicyError::InvalidParams(m))) => m,
        other => panic!("{policy}: expected invalid-params, got {other:?}"),
    }
}

#[test]
fn argmax_picks_the_highest_and_breaks_ties_by_lowest_index() {
    let s = run("argmax", &scored(&[0.5, 2.0, -1.0, 2.0])).expect("selects");
    assert_eq!(s.chosen, Some(1));
    assert_eq!(s.ranking, vec![1, 3, 0, 2]);
}

#[test]
fn argmax_never_chooses_nan() {
    let s = run("argmax", &scored(&[f32::NAN, -3.0, f32::NAN])).expect("selects");
    assert_eq!(s.chosen, Some(1));
    assert_eq!(s.ranking, vec![1, 0, 2]);
    let s = run("argmax", &scored(&[f32::NAN, f32::NAN])).expect("abstains");
    assert_eq!(s.chosen, None);
    let s = run("argmax", &scored(&[f32::NEG_INFINITY, f32::NAN, f32::INFINITY])).expect("selects");
    assert_eq!(s.chosen, Some(2));
}

#[test]
fn argmax_rejects_empty_lists_and_any_param() {
    assert_eq!(run("argmax", &scored(&[])), Err(ErrorKind::Policy(PolicyError::NoCandidates)));
    let m = invalid_param("argmax", &with_params(scored(&[1.0]), &[("min", "1")]));
    assert!(m.contains("`min`"), "{m}");
}

#[test]
fn threshold_chooses_abstains_or_falls_back() {
    let req = scored(&[0.2, 0.7, 0.4]);
    let s = run("threshold", &with_params(req.clone(), &[("min", "0.5")])).expect("selects");
    assert_eq!((s.chosen, s.ranking.clone()), (Some(1), vec![1, 2, 0]));
    let s = run("threshold", &with_params(req.clone(), &[("min", "0.7")])).expect("equal clears");
    assert_eq!(s.chosen, Some(1));
    let s = run("threshold", &with_params(req.clone(), &[("min", "0.9")])).expect("abstains");
    assert_eq!(s.chosen, None);
    assert_eq!(s.ranking, vec![1, 2, 0], "an abstention still ranks");
    let s = run("threshold", &with_params(req.clone(), &[("min", "0.9"), ("fallback", "best")])).expect("falls back");
    assert_eq!(s.chosen, Some(1));
    let s = run("threshold", &with_params(scored(&[f32::NAN]), &[("min", "0")])).expect("nan");
    assert_eq!(s.chosen, None);
}

#[test]
fn threshold_names_bad_params() {
    let req = scored(&[1.0]);
    assert!(invalid_param("threshold", &req).contains("`min` is required"));
    assert!(invalid_param("threshold", &with_params(req.clone(), &[("min", "high")])).contains("`min`"));
    assert!(invalid_param("threshold", &with_params(req.clone(), &[("min", "NaN")])).contains("`min`"));
    let m = invalid_param("threshold", &with_params(req.clone(), &[("min", "1"), ("fallback", "maybe")]));
    assert!(m.contains("`fallback`") && m.contains("none | best"), "{m}");
    assert!(invalid_param("threshold", &with_params(req, &[("min", "1"), ("mni", "1")])).contains("`mni`"));
    let r = run("threshold", &with_params(scored(&[]), &[("min", "1")]));
    assert_eq!(r, Err(ErrorKind::Policy(PolicyError::NoCandidates)));
}

fn texts(req: &mut Request, texts: &[&str]) {
    for (c, t) in req.candidates.iter_mut().zip(texts) {
        c.text = (*t).into();
        c.tokens = t.split_whitespace().count() as u32;
    }
}

#[test]
fn tie_break_defaults_to_shortest_then_first() {
    let mut req = scored(&[1.0, 0.98, 1.0, 0.2]);
    texts(&mut req, &["a long answer here", "short", "mid answer", "x"]);
    // epsilon 0: only exact ties (0 and 2); shortest is 2.
    let s = run("tie-break", &req).expect("selects");
    assert_eq!(s.chosen, Some(2));
    assert_eq!(s.ranking, vec![2, 0, 1, 3]);
    // epsilon 0.05 pulls in candidate 1, the shortest.
    let s = run("tie-break", &with_params(req.clone(), &[("epsilon", "0.05")])).expect("selects");
    assert_eq!(s.chosen, Some(1));
    assert_eq!(s.ranking, vec![1, 2, 0, 3]);
    for (by, want) in [("longest", 0), ("first", 0), ("last", 2)] {
        let s = run("tie-break", &with_params(req.clone(), &[("by", by)])).expect("selects");
        assert_eq!(s.chosen, Some(want), "by={by}");
    }
}

#[test]
fn tie_break_by_feature_puts_missing_last() {
    let mut req = scored(&[1.0, 1.0, 1.0]);
    req.candidates[0].features = vec![("json".into(), 0.0)];
    req.candidates[2].features = vec![("json".into(), 1.0)];
    let s = run("tie-break", &with_params(req, &[("by", "feature:json")])).expect("selects");
    assert_eq!(s.chosen, Some(2));
    assert_eq!(s.ranking, vec![2, 0, 1]);
}

#[test]
fn tie_break_random_is_seeded_and_reproducible() {
    let base = with_params(scored(&[3.0; 6]), &[("by", "random")]);
    let pick = |seed: u64| {
        let mut r = base.clone();
        r.seed = seed;
        run("tie-break", &r).expect("selects").chosen
    };
    let (host, _d) = support::host();
    let plugin = support::bundled(&host, "tie-break");
    let choices: Vec<Option<u32>> = (0..24)
        .map(|seed| {
            let mut r = base.clone();
            r.seed = seed;
            plugin.select(&r, fake()).expect("selects").0.chosen
        })
        .collect();
    // Same seed, same choice, even from a freshly loaded plugin.
    assert_eq!(choices[5], pick(5));
    assert_eq!(choices[17], pick(17));
    let distinct: std::collections::BTreeSet<_> = choices.iter().collect();
    assert!(distinct.len() >= 3, "random tie-breaking ignores the seed: {choices:?}");
}

#[test]
fn tie_break_names_bad_params() {
    let req = scored(&[1.0]);
    assert!(invalid_param("tie-break", &with_params(req.clone(), &[("by", "tallest")])).contains("`by`"));
    assert!(invalid_param("tie-break", &with_params(req.clone(), &[("by", "feature:")])).contains("`by`"));
    assert!(invalid_param("tie-break", &with_params(req.clone(), &[("epsilon", "-1")])).contains("`epsilon`"));
    assert!(invalid_param("tie-break", &with_params(req, &[("by", "first,,last")])).contains("`by`"));
    let s = run("tie-break", &scored(&[f32::NAN])).expect("abstains");
    assert_eq!(s.chosen, None);
}

fn lazy(texts: &[&str]) -> Request {
    let mut req = scored(&[]);
    req.candidates = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Candidate { index: i as u32, text: (*t).into(), tokens: 1, score: None, features: vec![] })
        .collect();
    req
}

#[test]
fn early_exit_stops_at_the_first_candidate_over_min() {
    let (host, _d) = support::host();
    let plugin = support::bundled(&host, "early-exit");
    assert!(!plugin.info().wants_prescored);
    let model = fake();
    let req =
        with_params(lazy(&["s=0.1", "s=0.2", "s=0.9", "s=0.95", "s=0.3", "s=2"]), &[("min", "0.8"), ("chunk", "2")]);
    let (s, stats) = plugin.select(&req, model.clone()).expect("selects");
    assert_eq!(s.chosen, Some(2));
    assert_eq!(s.ranking, vec![3, 2, 1, 0], "ranks only what it scored");
    assert_eq!(model.calls.load(Ordering::SeqCst), 2, "two chunks of two");
    assert_eq!(model.responses.load(Ordering::SeqCst), 4, "the last two were never scored");
    assert_eq!(stats.reward_responses, 4);
}

#[test]
fn early_exit_abstains_falls_back_and_reuses_known_scores() {
    let (host, _d) = support::host();
    let plugin = support::bundled(&host, "early-exit");
    let model = fake();
    let req = with_params(lazy(&["s=0.1", "s=0.4"]), &[("min", "1")]);
    assert_eq!(plugin.select(&req, model.clone()).expect("abstains").0.chosen, None);
    let req = with_params(lazy(&["s=0.1", "s=0.4"]), &[("min", "1"), ("fallback", "best")]);
    assert_eq!(plugin.select(&req, model.clone()).expect("falls back").0.chosen, Some(1));
    let mut req = with_params(lazy(&["s=0.1", "s=5"]), &[("min", "1")]);
    req.candidates[1].score = Some(5.0);
    let before = model.responses.load(Ordering::SeqCst);
    assert_eq!(plugin.select(&req, model.clone()).expect("selects").0.chosen, Some(1));
    assert_eq!(model.responses.load(Ordering::SeqCst) - before, 1, "prescored candidate not rescored");
}

#[test]
fn early_exit_names_bad_params_and_reports_a_missing_model() {
    let req = lazy(&["a"]);
    assert!(invalid_param("early-exit", &req).contains("`min`"));
    assert!(
        invalid_param("early-exit", &with_params(req.clone(), &[("min", "1"), ("chunk", "0")])).contains("`chunk`")
    );
    let (host, _d) = support::host();
    let plugin = support::bundled(&host, "early-exit");
    let err = plugin.select(&with_params(req, &[("min", "1")]), Arc::new(NoModel)).expect_err("no model");
    // The policy gave up because its reward call failed: the host reports that typed cause.
    assert!(
        matches!(&err.kind, ErrorKind::Reward(e) if e.kind == RewardErrorKind::Unavailable && e.message.contains("no reward model")),
        "{err}"
    );
}

#[test]
fn max_length_rule_penalises_tokens_over_the_limit() {
    let (host, _d) = support::host();
    let rule = support::bundled(&host, "max-length");
    let argmax = support::bundled(&host, "tie-break");
    let rules = std::slice::from_ref(&rule);
    let input = SelectInput::parse(
        r#"{"messages":[{"role":"user","content":"q"}],
            "candidates":[{"text":"one two three four five","score":1},{"text":"one two","score":1},{"text":"a b c","score":1}],
            "params":{"max-length.max_tokens":"3","by":"feature:max-length"}}"#,
    )
    .expect("input");
    let out = arbiter::select::run(&argmax, rules, &input, fake()).expect("selects").output;
    let features: Vec<String> = out.features.iter().map(|f| serde_json::to_string(f).expect("json")).collect();
    assert_eq!(features, vec![r#"{"max-length":-2.0}"#, r#"{"max-length":0.0}"#, r#"{"max-length":0.0}"#]);
    assert_eq!(out.chosen, Some(1), "ties broken by the feature, then first");
    // Without a tokenizer every count is 0, and the rule falls back to counting words.
    let out = arbiter::select::run(&argmax, rules, &input, Arc::new(NoModel)).expect("selects").output;
    let first = serde_json::to_string(&out.features[0]).expect("json");
    assert_eq!(first, r#"{"max-length":-2.0}"#);
}

#[test]
fn max_length_rule_requires_its_param() {
    let (host, _d) = support::host();
    let rule = support::bundled(&host, "max-length");
    let argmax = support::bundled(&host, "argmax");
    let input = SelectInput::parse(r#"{"candidates":[{"text":"a","score":1}]}"#).expect("input");
    let err = arbiter::select::run(&argmax, &[rule], &input, fake()).expect_err("missing param");
    // The caller's mistake (the rule marks it `invalid params: `), not the rule's failure.
    assert!(
        matches!(&err, arbiter::select::SelectError::Plugin(p)
            if matches!(&p.kind, ErrorKind::Policy(PolicyError::InvalidParams(m)) if m.contains("max-length.max_tokens"))),
        "{err}"
    );
}
