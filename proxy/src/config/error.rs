//! Config errors: every one names the field path and, when known, the line it is on.

use std::fmt;

/// A config problem, e.g. `clusters[1].endpoints[0]: invalid port "80x" at line 14`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the offending field (`listeners[0].address`); empty for the whole file.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// 1-based line in the source file.
    pub line: Option<usize>,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: path.into(),
            message: message.into(),
            line: None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "{}: {}", self.path, self.message)?;
        }
        if let Some(l) = self.line {
            write!(f, " at line {l}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
