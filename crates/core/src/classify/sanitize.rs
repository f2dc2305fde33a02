//! Masking and shortening of provider text before it leaves the classifier.
//!
//! **Invariants:** nothing key-shaped survives [`mask_secrets`]; [`sanitize_message`] returns
//! one line of at most [`MAX_MESSAGE_CHARS`] characters plus an ellipsis; neither panics.

/// The longest provider message kept in a [`crate::Classification`], in characters.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// Masks key-shaped substrings: `sk-…`, `xai-…`, `AIza…`, JWTs, `Bearer <token>` and any long
/// token that mixes letters and digits. Everything else is kept as is.
pub fn mask_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut previous_word_was_bearer = false;
    while !rest.is_empty() {
        // After `Bearer`, the word is a credential: it runs over every RFC 6750 token
        // character, `~` included, so that no tail of it is left unmasked.
        let in_word: fn(char) -> bool = if previous_word_was_bearer {
            is_bearer_token_char
        } else {
            is_token_char
        };
        let word_len = rest.find(|c: char| !in_word(c)).unwrap_or(rest.len());
        if word_len == 0 {
            let separator_len = rest.find(in_word).unwrap_or(rest.len());
            let separator = &rest[..separator_len];
            out.push_str(separator);
            if !separator.chars().all(|c| c == ' ') {
                previous_word_was_bearer = false;
            }
            rest = &rest[separator_len..];
            continue;
        }
        let word = &rest[..word_len];
        let trailing_dots = word.len() - word.trim_end_matches('.').len();
        if previous_word_was_bearer && word.len() >= 8 {
            out.push_str("***");
            out.push_str(&word[word.len() - trailing_dots..]);
        } else if let Some(prefix) = key_prefix(word) {
            out.push_str(prefix);
            out.push_str("***");
            out.push_str(&word[word.len() - trailing_dots..]);
        } else {
            out.push_str(word);
        }
        previous_word_was_bearer = word.eq_ignore_ascii_case("bearer");
        rest = &rest[word_len..];
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '/' | '=')
}

/// The characters of an RFC 6750 `b64token` (plus `=` padding).
fn is_bearer_token_char(c: char) -> bool {
    is_token_char(c) || c == '~'
}

/// Returns the prefix to keep when `word` looks like a secret, or `None` when it does not.
fn key_prefix(word: &str) -> Option<&'static str> {
    const PREFIXES: &[&str] = &[
        "sk-",
        "sk_",
        "xai-",
        "gsk_",
        "AIza",
        "eyJ",
        "ghp_",
        "gho_",
        "ghu_",
        "github_pat_",
        "rk-",
        "pk-",
        "sess-",
        "ya29.",
        "1//",
    ];
    let trimmed = word.trim_end_matches('.');
    if trimmed.len() < 11 {
        // Shorter than the shortest prefix plus eight characters: most words end here.
        return None;
    }
    for prefix in PREFIXES {
        if trimmed.len() >= prefix.len() + 8 && trimmed.starts_with(prefix) {
            return Some(prefix);
        }
    }
    let alphanumeric = trimmed.chars().filter(char::is_ascii_alphanumeric).count();
    let has_digit = trimmed.chars().any(|c| c.is_ascii_digit());
    let has_letter = trimmed.chars().any(|c| c.is_ascii_alphabetic());
    let is_url_like = trimmed.contains("//") || trimmed.contains("..");
    (alphanumeric >= 24 && has_digit && has_letter && !is_url_like).then_some("")
}

/// Masks secrets, flattens the text to one line and truncates it to [`MAX_MESSAGE_CHARS`].
pub fn sanitize_message(text: &str) -> String {
    let mut one_line = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !one_line.is_empty() {
            one_line.push(' ');
        }
        one_line.extend(word.chars().filter(|c| !c.is_control()));
    }
    let masked = mask_secrets(&one_line);
    match masked.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &masked[..cut]),
        None => masked,
    }
}

/// A provider code is short and has no spaces; anything else is not kept as a reason.
pub(super) fn sanitize_reason(code: &str) -> String {
    let masked = mask_secrets(code.trim());
    masked.chars().take(64).collect()
}
