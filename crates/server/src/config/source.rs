//! Errors that point into the configuration file: its line and key, never its text.
//!
//! **Invariant:** no error quotes the file. A key is named only when it has the shape of a
//! config key ([`shown_key`]): a line holding a secret (a base64 value pasted alone ends in
//! `=`, so the text before its first `=` would pass for a key) is located by its line number
//! alone. String values in serde's messages are elided.

use std::fmt;
use std::ops::Range;

/// A configuration error: the file, the line, the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as given.
    pub path: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key at fault, when known.
    pub key: Option<String>,
    /// What is wrong (never a value from the file beyond names and enum words).
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Builds errors pointing into one file.
pub(super) struct Source<'a> {
    pub(super) path: &'a str,
    pub(super) text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text.as_bytes().get(..offset).map_or(1, |before| {
            before.iter().filter(|b| **b == b'\n').count() + 1
        })
    }

    pub(super) fn error(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            path: self.path.to_owned(),
            line: span.map(|span| self.line_of(span.start)),
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    /// The key written on the line holding `offset` (`name = …`), or the table header.
    fn key_at(&self, offset: usize) -> Option<String> {
        let line = self
            .text
            .lines()
            .nth(self.line_of(offset).checked_sub(1)?)?;
        let line = line.trim();
        if line.starts_with('[') {
            let table = line.trim_matches(|c| c == '[' || c == ']').trim();
            return table
                .split('.')
                .all(|part| shown_key(part).is_some())
                .then(|| table.to_owned());
        }
        let (key, _) = line.split_once('=')?;
        shown_key(key.trim()).map(str::to_owned)
    }

    /// Turns a serde/toml error into one naming the key and the line, without quoting the file.
    pub(super) fn toml_error(&self, error: &toml::de::Error) -> ConfigError {
        let message = elide_strings(error.message());
        let key = quoted_field(&message)
            .and_then(|field| shown_key(&field).map(str::to_owned))
            .or_else(|| error.span().and_then(|s| self.key_at(s.start)));
        ConfigError {
            path: self.path.to_owned(),
            line: error.span().map(|span| self.line_of(span.start)),
            key,
            message,
        }
    }
}

/// `text` when it has the shape of a config key — lowercase letters, digits and `_`,
/// starting with a letter, at most 32 characters, at most 4 digits — else `None`. Every key
/// credpool reads has that shape, and secrets (base64, hex, `sk-…`) do not: what fails the
/// test is not printed.
pub(super) fn shown_key(text: &str) -> Option<&str> {
    let mut chars = text.chars();
    let shaped = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && text.len() <= 32
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && text.chars().filter(char::is_ascii_digit).count() <= 4;
    shaped.then_some(text)
}

/// The field a serde message names (``unknown field `x` ``, ``missing field `x` ``).
fn quoted_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split_once('`').map(|(field, _)| field.to_owned())
}

/// Removes string values from serde messages (`invalid type: string "…", expected u32`,
/// ``unknown variant `…`, expected one of `a`, `b` ``): the value might be a secret typed
/// into the wrong key. What was expected (the type, the list of variants) stays.
pub fn elide_strings(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, tail)) = rest.split_once('`')
        && shown_key(field).is_none()
    {
        return format!("unknown key (not shown: it does not look like a key){tail}");
    }
    for prefix in ["invalid type: string \"", "invalid value: string \""] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(at) = rest.rfind("\", expected")
        {
            let kind = prefix.trim_end_matches(" \"");
            return format!("{kind}{}", rest.get(at + 1..).unwrap_or(""));
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        // serde writes ``unknown variant `VALUE`, expected …`` (or ``there are no variants``);
        // the value may itself hold a backtick, so cut at the last `` `, `` before the tail.
        let tail = ["`, expected ", "`, there are no variants"]
            .into_iter()
            .filter_map(|marker| rest.rfind(marker).map(|at| (at, marker.len())))
            .max_by_key(|(at, _)| *at);
        return match tail {
            Some((at, _)) => format!("unknown variant{}", rest.get(at + 1..).unwrap_or("")),
            None => "unknown variant".to_owned(),
        };
    }
    message.to_owned()
}
