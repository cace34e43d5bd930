//! Token ids of one conversation with N responses, cheaply: every rendered text is checked
//! against the length limit before anything is tokenized (a text of `b` bytes has at least
//! `b / max_token_bytes` tokens), and the text the renders share is tokenized once.
//!
//! Exactness: the shared text is cut at the start of a special token that lies inside it (for
//! the Llama-3 template, the assistant header's `<|end_header_id|>`). Special tokens are split out before
//! any other tokenizing, so the text on each side of one tokenizes independently, and
//! `ids(prefix) + ids(rest)` equals `ids(whole)`. The first response's ids are checked against
//! a whole tokenization; on any difference every response is tokenized whole, as before.
//! Memory: the first render whole, and of each other render only what differs from it.

use crate::error::{EngineError, Result};
use crate::prompt::Prompter;
use crate::template::Message;

/// How far back from the end of the shared text a split point is looked for.
const SPLIT_WINDOW: usize = 4096;

/// A render known only by what differs from the first: `first[..shared] + tail`.
struct Render {
    shared: usize,
    tail: String,
}

impl Prompter {
    /// Token ids of `messages + [assistant: r]` for each response `r`, exactly as
    /// [`Prompter::conversation_ids`] gives them, refusing any that cannot fit `limit` tokens
    /// before tokenizing it.
    ///
    /// # Errors
    /// Template or tokenizer failures; [`EngineError::TooLong`] naming `limit_name`.
    pub fn batch_ids(
        &self,
        messages: &[Message],
        responses: &[String],
        limit: usize,
        limit_name: &'static str,
    ) -> Result<Vec<Vec<u32>>> {
        let too_long = |tokens: usize| EngineError::TooLong { tokens, limit, limit_name };
        let bound = |text: &str| match self.encoder().min_tokens(text) {
            Some(n) if n > limit => Err(too_long(n)),
            _ => Ok(()),
        };
        let Some((first_response, rest)) = responses.split_first() else { return Ok(Vec::new()) };
        let first = self.render(messages, first_response)?;
        bound(&first)?;
        let mut common = first.len();
        let mut others = Vec::with_capacity(rest.len());
        for r in rest {
            let text = self.render(messages, r)?;
            bound(&text)?;
            let shared = shared_prefix(&first, &text);
            common = common.min(shared);
            others.push(Render { shared, tail: text[shared..].to_owned() });
        }
        let encode = |text: &str| {
            let ids = self.encoder().encode(text)?;
            if ids.len() > limit { Err(too_long(ids.len())) } else { Ok(ids) }
        };
        let whole = |r: &Render| [&first[..r.shared], r.tail.as_str()].concat();
        if let Some(cut) = self.split_point(&first[..common]) {
            let head = encode(&first[..cut])?;
            let join = |tail: &str| -> Result<Vec<u32>> {
                let mut ids = head.clone();
                ids.extend(self.encoder().encode(tail)?);
                if ids.len() > limit { Err(too_long(ids.len())) } else { Ok(ids) }
            };
            let first_ids = join(&first[cut..])?;
            if first_ids == encode(&first)? {
                let mut out = Vec::with_capacity(responses.len());
                out.push(first_ids);
                for r in &others {
                    out.push(join(&[&first[cut..r.shared], r.tail.as_str()].concat())?);
                }
                return Ok(out);
            }
        }
        let mut out = Vec::with_capacity(responses.len());
        out.push(encode(&first)?);
        for r in &others {
            out.push(encode(&whole(r))?);
        }
        Ok(out)
    }

    /// The start of the last splitting special token that lies wholly inside `common`, near
    /// its end; `None` when there is none (or it would leave nothing to share).
    fn split_point(&self, common: &str) -> Option<usize> {
        let mut start = common.len().saturating_sub(SPLIT_WINDOW);
        while !common.is_char_boundary(start) {
            start -= 1;
        }
        let window = &common[start..];
        self.encoder()
            .splitting_tokens()
            .iter()
            .filter_map(|t| window.rfind(t.as_str()).map(|i| start + i))
            .filter(|&q| q > 0)
            .max()
    }
}

/// Length of the longest common prefix of `a` and `b`, on a character boundary of both.
fn shared_prefix(a: &str, b: &str) -> usize {
    let mut n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !a.is_char_boundary(n) {
        n -= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_shared_text_is_cut_at_the_assistant_header() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama-f32");
        let prompter = Prompter::load(&dir, false).expect("fixture");
        let messages = vec![Message { role: "user".into(), content: "Which is larger?".into() }];
        let (a, b) =
            (prompter.render(&messages, "The first").expect("a"), prompter.render(&messages, "The second").expect("b"));
        let common = &a[..shared_prefix(&a, &b)];
        let cut = prompter.split_point(common).expect("a split point");
        // The last special token the renders share: the end of the assistant header.
        assert!(a[..cut].ends_with("<|start_header_id|>assistant"), "{:?}", &a[..cut]);
        assert!(a[cut..].starts_with("<|end_header_id|>"), "{:?}", &a[cut..]);
        assert_eq!(shared_prefix("añb", "añc"), 3);
        assert_eq!(shared_prefix("añ", "aó"), 1, "never inside a character");
    }
}
