//! Logging into the host's plugin log (capped per call; see the host's `max-log-bytes`).
//!
//! On native targets (unit tests of a plugin) messages go to stderr instead.

/// Severity of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Detail for plugin authors.
    Debug,
    /// Normal messages.
    Info,
    /// Unexpected but handled.
    Warn,
    /// About to fail.
    Error,
}

/// Writes one message.
pub fn log(level: Level, message: &str) {
    imp::log(level, message);
}

/// Writes a debug message.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes an info message.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes a warning.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes an error message.
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// The wasm implementation over one world's generated `log` import.
#[cfg(target_arch = "wasm32")]
macro_rules! wit_log {
    ($wit:path) => {
        mod imp {
            use super::Level;
            use $wit as wit;

            pub(super) fn log(level: Level, message: &str) {
                let level = match level {
                    Level::Debug => wit::Level::Debug,
                    Level::Info => wit::Level::Info,
                    Level::Warn => wit::Level::Warn,
                    Level::Error => wit::Level::Error,
                };
                wit::log(level, message);
            }
        }
    };
}

#[cfg(all(target_arch = "wasm32", feature = "policy"))]
wit_log!(crate::bindings::policy::arbiter::policy::log);

#[cfg(all(target_arch = "wasm32", feature = "rule", not(feature = "policy")))]
wit_log!(crate::bindings::rule::arbiter::policy::log);

#[cfg(not(all(target_arch = "wasm32", any(feature = "policy", feature = "rule"))))]
mod imp {
    use super::Level;

    pub(super) fn log(level: Level, message: &str) {
        eprintln!("[{level:?}] {message}");
    }
}
