//! A deterministic stand-in reward model for tests of code around the engine.

use crate::api::{Prepared, RewardModel};
use crate::error::Result;
use crate::template::Message;

/// Scores a response by a fixed rule: the number after `s=` in it if present, else its length
/// in characters divided by 100. Tokens are whitespace-separated words.
#[derive(Debug, Default, Clone, Copy)]
pub struct FakeRewardModel;

impl RewardModel for FakeRewardModel {
    fn score(&self, _conversation: &[Message], responses: &[String]) -> Result<Vec<f32>> {
        Ok(responses
            .iter()
            .map(|r| {
                r.split_once("s=")
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(r.chars().count() as f32 / 100.0)
            })
            .collect())
    }

    fn count_tokens(&self, text: &str) -> Result<u32> {
        Ok(text.split_whitespace().count() as u32)
    }

    fn describe(&self) -> String {
        "fake (test model)".into()
    }

    fn prepare(&self, _conversation: &[Message], responses: &[String]) -> Result<Prepared> {
        let sequences = responses.iter().map(|r| vec![0; r.split_whitespace().count().max(1)]).collect();
        Ok(Prepared { sequences, responses: responses.to_vec() })
    }

    fn prepare_texts(&self, texts: &[String]) -> Result<Prepared> {
        self.prepare(&[], texts)
    }

    fn score_prepared(&self, requests: &[Prepared]) -> Vec<Result<Vec<f32>>> {
        requests.iter().map(|p| self.score(&[], &p.responses)).collect()
    }
}
