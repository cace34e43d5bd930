//! The `Policy` and `Rule` traits, their export macros, and the glue between the SDK's
//! types and the generated ones (one conversion macro serves both worlds).

use crate::params::Params;
use crate::types::{Candidate, Message, PolicyError, PolicyInfo, Request, Selection};

/// A selection policy. Implement it on a unit struct and call [`crate::export_policy!`].
pub trait Policy {
    /// Name, version, laziness and parameter docs. Called at load under tight limits.
    fn info() -> PolicyInfo;

    /// Chooses among `req.candidates` (or abstains) and ranks them.
    ///
    /// # Errors
    /// A [`PolicyError`]; name the parameter in `InvalidParams`.
    fn select(req: Request) -> Result<Selection, PolicyError>;
}

/// A scoring rule: adds one named feature per candidate. Export with [`crate::export_rule!`].
pub trait Rule {
    /// Feature name (also the prefix of this rule's parameters: `NAME.key`).
    const NAME: &'static str;
    /// Semantic version.
    const VERSION: &'static str;

    /// The feature value of `candidate`.
    ///
    /// # Errors
    /// A message naming what is wrong. For a missing or bad parameter return the `to_string()`
    /// of a [`crate::PolicyError::InvalidParams`] (what [`crate::Params`]' errors are): its
    /// `invalid params: ` prefix tells the host the caller is at fault, not the rule.
    fn score(conversation: &[Message], candidate: &Candidate, params: &Params) -> Result<f32, String>;
}

/// Exports a [`Policy`] implementation as the plugin's `selector` interface.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        #[doc(hidden)]
        struct __ArbiterPolicyExport;

        impl $crate::bindings::policy::exports::arbiter::policy::selector::Guest for __ArbiterPolicyExport {
            fn info() -> $crate::bindings::policy::arbiter::policy::types::PolicyInfo {
                $crate::__private::policy_info::<$policy>()
            }

            fn select(
                req: $crate::bindings::policy::arbiter::policy::types::Request,
            ) -> ::core::result::Result<
                $crate::bindings::policy::arbiter::policy::types::Selection,
                $crate::bindings::policy::arbiter::policy::types::PolicyError,
            > {
                $crate::__private::policy_select::<$policy>(req)
            }
        }

        $crate::bindings::policy::__export_policy_world!(__ArbiterPolicyExport with_types_in $crate::bindings::policy);
    };
}

/// Exports a [`Rule`] implementation as the plugin's `scorer` interface.
#[macro_export]
macro_rules! export_rule {
    ($rule:ty) => {
        #[doc(hidden)]
        struct __ArbiterRuleExport;

        impl $crate::bindings::rule::exports::arbiter::policy::scorer::Guest for __ArbiterRuleExport {
            fn name() -> ::std::string::String {
                <$rule as $crate::Rule>::NAME.into()
            }

            fn version() -> ::std::string::String {
                <$rule as $crate::Rule>::VERSION.into()
            }

            fn score(
                conversation: ::std::vec::Vec<$crate::bindings::rule::arbiter::policy::types::Message>,
                c: $crate::bindings::rule::arbiter::policy::types::Candidate,
                params: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            ) -> ::core::result::Result<f32, ::std::string::String> {
                $crate::__private::rule_score::<$rule>(conversation, c, params)
            }
        }

        $crate::bindings::rule::__export_rule_world!(__ArbiterRuleExport with_types_in $crate::bindings::rule);
    };
}

macro_rules! conversions {
    ($wit:path) => {
        use $wit as wit;

        impl From<wit::Message> for Message {
            fn from(m: wit::Message) -> Self {
                Message { role: m.role, content: m.content }
            }
        }

        impl From<wit::Candidate> for Candidate {
            fn from(c: wit::Candidate) -> Self {
                Candidate { index: c.index, text: c.text, tokens: c.tokens, score: c.score, features: c.features }
            }
        }
    };
}

#[cfg(any(feature = "policy", not(target_arch = "wasm32")))]
mod policy_glue {
    use super::*;
    conversions!(crate::bindings::policy::arbiter::policy::types);

    /// `info` export glue.
    pub fn policy_info<P: Policy>() -> wit::PolicyInfo {
        let i = P::info();
        wit::PolicyInfo {
            name: i.name,
            version: i.version,
            wants_prescored: i.wants_prescored,
            params_doc: i.params_doc,
        }
    }

    /// `select` export glue.
    pub fn policy_select<P: Policy>(req: wit::Request) -> Result<wit::Selection, wit::PolicyError> {
        let req = Request {
            conversation: req.conversation.into_iter().map(Into::into).collect(),
            candidates: req.candidates.into_iter().map(Into::into).collect(),
            params: Params::new(req.params),
            seed: req.seed,
        };
        match P::select(req) {
            Ok(s) => Ok(wit::Selection { chosen: s.chosen, ranking: s.ranking, reason: s.reason }),
            Err(PolicyError::InvalidParams(m)) => Err(wit::PolicyError::InvalidParams(m)),
            Err(PolicyError::NoCandidates) => Err(wit::PolicyError::NoCandidates),
            Err(PolicyError::Failed(m)) => Err(wit::PolicyError::Failed(m)),
        }
    }
}

#[cfg(any(feature = "rule", not(target_arch = "wasm32")))]
mod rule_glue {
    use super::*;
    conversions!(crate::bindings::rule::arbiter::policy::types);

    /// `score` export glue.
    pub fn rule_score<R: Rule>(
        conversation: Vec<wit::Message>,
        c: wit::Candidate,
        params: Vec<(String, String)>,
    ) -> Result<f32, String> {
        let conversation: Vec<Message> = conversation.into_iter().map(Into::into).collect();
        R::score(&conversation, &c.into(), &Params::new(params))
    }
}

/// Used by the export macros; not part of the API.
#[doc(hidden)]
pub mod __private {
    #[cfg(any(feature = "policy", not(target_arch = "wasm32")))]
    pub use super::policy_glue::{policy_info, policy_select};
    #[cfg(any(feature = "rule", not(target_arch = "wasm32")))]
    pub use super::rule_glue::rule_score;
}
