//! From messages to token ids: the checkpoint's chat template and tokenizer together.
//!
//! Reads what transformers reads: `tokenizer.json`, `tokenizer_config.json` (`bos_token`,
//! `eos_token` as strings or `{content: ...}` objects, and `chat_template` as a string or a
//! list with a `default` entry), else a `chat_template.jinja` file. Loading needs no weights,
//! so template conformance can be checked against a bare tokenizer directory.

use std::path::Path;

use crate::error::{EngineError, Result, bad};
use crate::template::{ChatTemplate, Message};
use crate::text::{TextEncoder, neutralize};

/// Template + tokenizer of one checkpoint.
#[derive(Debug)]
pub struct Prompter {
    template: ChatTemplate,
    encoder: TextEncoder,
    neutralize: bool,
}

fn special_token_string(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_owned),
        _ => None,
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|error| EngineError::Io { path: path.into(), error })?;
    serde_json::from_str(&text).map_err(|e| bad(path, format!("invalid JSON: {e}")))
}

/// The chat template: `tokenizer_config.json`'s `chat_template` (a string, or the entry named
/// `default` of a list), else `chat_template.jinja`.
fn load_template(dir: &Path, tok_config: &serde_json::Value) -> Result<String> {
    let cfg_path = dir.join("tokenizer_config.json");
    match tok_config.get("chat_template") {
        Some(serde_json::Value::String(s)) => return Ok(s.clone()),
        Some(serde_json::Value::Array(list)) => {
            return list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_owned)
                .ok_or_else(|| bad(&cfg_path, "chat_template list has no entry named `default`"));
        }
        Some(other) if !other.is_null() => return Err(bad(&cfg_path, "chat_template must be a string or a list")),
        _ => {}
    }
    let file = dir.join("chat_template.jinja");
    if file.exists() {
        return std::fs::read_to_string(&file).map_err(|error| EngineError::Io { path: file, error });
    }
    Err(bad(dir, "no chat template: neither tokenizer_config.json `chat_template` nor chat_template.jinja"))
}

impl Prompter {
    /// Loads the template and tokenizer of checkpoint directory `dir`. With `neutralize`,
    /// `<|…|>` text in messages is tokenized as plain text (see [`neutralize`]).
    ///
    /// # Errors
    /// Missing or malformed tokenizer files or template.
    pub fn load(dir: &Path, neutralize: bool) -> Result<Self> {
        let encoder = TextEncoder::load(&dir.join("tokenizer.json"))?;
        let tok_config = read_json(&dir.join("tokenizer_config.json"))?;
        let bos = special_token_string(tok_config.get("bos_token")).unwrap_or_default();
        let eos = special_token_string(tok_config.get("eos_token")).unwrap_or_default();
        let template = ChatTemplate::new(load_template(dir, &tok_config)?, bos, eos)?;
        Ok(Self { template, encoder, neutralize })
    }

    /// The tokenizer.
    pub fn encoder(&self) -> &TextEncoder {
        &self.encoder
    }

    /// Vocabulary size of the tokenizer.
    pub fn vocab_size(&self) -> usize {
        self.encoder.vocab_size()
    }

    /// The rendered text of `messages + [assistant: response]` (`add_generation_prompt = false`).
    ///
    /// # Errors
    /// The template failed.
    pub fn render(&self, messages: &[Message], response: &str) -> Result<String> {
        let fix = |s: &str| -> String { if self.neutralize { neutralize(s).into_owned() } else { s.to_owned() } };
        let mut conv: Vec<Message> =
            messages.iter().map(|m| Message { role: m.role.clone(), content: fix(&m.content) }).collect();
        conv.push(Message { role: "assistant".into(), content: fix(response) });
        self.template.render(&conv)
    }

    /// Token ids of `messages + [assistant: response]`, with no special tokens added.
    ///
    /// # Errors
    /// Template or tokenizer failures.
    pub fn conversation_ids(&self, messages: &[Message], response: &str) -> Result<Vec<u32>> {
        self.encoder.encode(&self.render(messages, response)?)
    }
}
