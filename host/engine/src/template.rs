//! The checkpoint's chat template, rendered as transformers renders it.
//!
//! transformers renders with jinja2 (`trim_blocks`, `lstrip_blocks`) and Python string
//! semantics; minijinja differs in two places that change token ids, both fixed here:
//! `|trim` and `.strip()`/`.lstrip()`/`.rstrip()` use Python's whitespace set (which includes
//! \x1c–\x1f, unlike Rust's `str::trim`), and other Python string methods come from
//! minijinja-contrib's pycompat. Rendering never injects a date: templates that default a
//! date (Llama-3.3's "26 Jul 2024") keep their default, as the reference does.

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind, State};

use crate::error::{EngineError, Result};

/// One conversation turn.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// Role (`system`, `user`, `assistant`, ...).
    pub role: String,
    /// Text.
    pub content: String,
}

/// Python's `str.isspace()` for one character.
pub fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn strip_with<'a>(s: &'a str, chars: Option<&str>, left: bool, right: bool) -> &'a str {
    let matches = |c: char| match chars {
        Some(set) => set.contains(c),
        None => is_python_space(c),
    };
    let s = if left { s.trim_start_matches(matches) } else { s };
    if right { s.trim_end_matches(matches) } else { s }
}

/// Python's `str.strip([chars])`.
pub fn python_strip<'a>(s: &'a str, chars: Option<&str>) -> &'a str {
    strip_with(s, chars, true, true)
}

fn trim_filter(s: &str, chars: Option<&str>) -> String {
    python_strip(s, chars).to_owned()
}

fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

fn python_methods(state: &mut State, value: &Value, method: &str, args: &[Value]) -> std::result::Result<Value, Error> {
    if let Some(s) = value.as_str() {
        let (left, right) = match method {
            "strip" => (true, true),
            "lstrip" => (true, false),
            "rstrip" => (false, true),
            _ => return minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
        };
        let chars = match args {
            [] => None,
            [c] if c.is_none() => None,
            [c] => Some(
                c.as_str()
                    .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "strip() argument must be a string"))?,
            ),
            _ => return Err(Error::new(ErrorKind::InvalidOperation, "strip() takes at most one argument")),
        };
        return Ok(Value::from(strip_with(s, chars, left, right)));
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// A compiled chat template plus the special-token strings it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("bos_token", &self.bos_token).finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source`.
    ///
    /// # Errors
    /// A template syntax error, with minijinja's line information.
    pub fn new(source: String, bos_token: String, eos_token: String) -> Result<Self> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| EngineError::Template(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(python_methods);
        env.add_filter("trim", trim_filter);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned("chat", source).map_err(|e| EngineError::Template(format!("{e:#}")))?;
        Ok(Self { env, bos_token, eos_token })
    }

    /// Renders `messages` with `add_generation_prompt = false` (the scoring convention).
    ///
    /// # Errors
    /// The template raised an exception or failed to evaluate.
    pub fn render(&self, messages: &[Message]) -> Result<String> {
        let template = self.env.get_template("chat").map_err(|e| EngineError::Template(e.to_string()))?;
        template
            .render(minijinja::context! {
                messages => minijinja::value::Value::from(minijinja::value::Serde(messages)),
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
                add_generation_prompt => false,
            })
            .map_err(|e| EngineError::Template(format!("{e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_matches_python() {
        assert_eq!(python_strip("\x1c\x1d hi \x1e\x1f", None), "hi");
        assert_eq!(python_strip("\u{a0}\u{3000}x\u{2028}", None), "x");
        assert_eq!(python_strip("xxhixx", Some("x")), "hi");
        assert_eq!(python_strip("\u{200b}zero width\u{200b}", None), "\u{200b}zero width\u{200b}");
    }

    #[test]
    fn renders_with_python_semantics() {
        let t = ChatTemplate::new(
            "{{ bos_token }}{% for m in messages %}[{{ m.role }}|{{ m.content|trim }}|{{ m.content.strip() }}|{{ m.content.upper() }}]\n{% endfor %}".into(),
            "<s>".into(),
            "</s>".into(),
        )
        .expect("compiles");
        let out = t.render(&[Message { role: "user".into(), content: "\x1f hi \x1c".into() }]).expect("renders");
        assert_eq!(out, "<s>[user|hi|hi|\x1f HI \x1c]\n");
        let t = ChatTemplate::new("{{ raise_exception('no') }}".into(), String::new(), String::new()).expect("ok");
        assert!(t.render(&[]).expect_err("raises").to_string().contains("no"));
        assert!(ChatTemplate::new("{% if %}".into(), String::new(), String::new()).is_err());
    }
}
