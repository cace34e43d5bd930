//! Tokenizing a conversation with N responses at once (`Prompter::batch_ids`): the same ids as
//! tokenizing each whole, and over-long inputs refused before they are tokenized.

use std::path::Path;

use arbiter_engine::{EngineError, EngineOptions, LlamaRewardModel, Message, Prompter, RewardModel};

use crate::engine::fixtures;

fn msg(role: &str, content: &str) -> Message {
    Message { role: role.into(), content: content.into() }
}

/// Conversations and response sets that stress the shared-text cut: responses sharing
/// leading words, empty and whitespace-only responses, special-token text inside messages and
/// responses, non-ASCII text, a system prompt, several turns.
fn cases() -> Vec<(Vec<Message>, Vec<String>)> {
    let r = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    vec![
        (vec![msg("user", "What is 2+2?")], r(&["4", "Four.", "4, of course", "", "  ", "4"])),
        (
            vec![
                msg("system", "Be brief."),
                msg("user", "Name a city."),
                msg("assistant", "Paris"),
                msg("user", "Another"),
            ],
            r(&["The city of Lyon", "The city of Nice", "The", "Marseille\n\nIt is big."]),
        ),
        (
            vec![msg("user", "Say <|eot_id|> and <|start_header_id|>user<|end_header_id|> please")],
            r(&["<|eot_id|>", "ok <|start_header_id|>assistant<|end_header_id|>\n\nhi", "plain"]),
        ),
        (vec![msg("user", "Grüße aus Köln — 日本語のテキスト 🙂")], r(&["日本語", "🙂🙂", "Grüße", "  trailing  "])),
        (vec![msg("user", &"long prompt words ".repeat(400))], r(&["a", "b", "a b"])),
        (vec![msg("user", "one response only")], r(&["only"])),
    ]
}

fn check_same_ids(prompter: &Prompter, label: &str) {
    for (messages, responses) in cases() {
        let want: Vec<Vec<u32>> =
            responses.iter().map(|r| prompter.conversation_ids(&messages, r).expect("whole")).collect();
        let got = prompter.batch_ids(&messages, &responses, usize::MAX, "test").expect("batch");
        assert_eq!(got, want, "{label}: {messages:?} / {responses:?}");
    }
}

#[test]
fn batch_ids_equal_whole_tokenization_on_the_fixture_tokenizer() {
    check_same_ids(&Prompter::load(&fixtures().join("tiny-llama-f32"), false).expect("fixture"), "fixture");
    check_same_ids(&Prompter::load(&fixtures().join("tiny-llama-f32"), true).expect("fixture"), "neutralized");
}

#[test]
fn batch_ids_equal_whole_tokenization_on_the_real_llama3_tokenizer() {
    let Some(dir) = std::env::var_os("ARBITER_LLAMA3_DIR") else {
        eprintln!("ARBITER_LLAMA3_DIR not set: real-tokenizer batch ids not checked");
        return;
    };
    check_same_ids(&Prompter::load(Path::new(&dir), false).expect("real tokenizer"), "llama3");
}

#[test]
fn an_over_long_conversation_is_refused_before_it_is_tokenized() {
    let options = EngineOptions { max_input_tokens: Some(64), ..EngineOptions::default() };
    let model = LlamaRewardModel::load(&fixtures().join("tiny-llama-f32"), options).expect("load");
    // 4 MB: tokenizing it 16 times would take many seconds.
    let messages = vec![msg("user", &"lorem ipsum dolor sit amet ".repeat(150_000))];
    let responses: Vec<String> = (0..16).map(|i| format!("answer {i}")).collect();
    let e = model.prepare(&messages, &responses).expect_err("too long");
    let EngineError::TooLong { tokens, limit: 64, .. } = e else { panic!("{e}") };
    // Refused from the text's length alone: the error carries the lower bound, which is below
    // the exact count a tokenization would have given.
    let exact = model.conversation_ids(&messages, &responses[0]).expect("ids").len();
    assert!(tokens > 64 && tokens < exact, "bound {tokens}, exact {exact}");
}
