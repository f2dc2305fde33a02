//! Reading a provider's body once into [`Evidence`]: its codes, message, numbers and shape.
//!
//! Shapes read: the JSON envelopes of OpenAI, Anthropic, xAI, Google, OpenRouter, Mistral,
//! LiteLLM, DashScope and AWS (`__type`); OAuth token-endpoint errors (RFC 6749 §5.2); a JSON
//! array of envelopes (Gemini streaming); an envelope serialised inside another one's message
//! (the `@google/genai` client, routers); server-sent-event error frames; HTML pages (their
//! `<title>`); plain text.
//!
//! **Invariants:** at most [`MAX_BODY_BYTES`] are read and at most 16 KiB of text is searched;
//! nested envelopes are followed one level deep; nothing here panics, whatever the bytes.

use serde_json::Value;

use super::google::GoogleDetails;

/// Bodies are inspected up to this many bytes; error bodies are small, a huge one is not an
/// error envelope worth reading in full.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// How much lower-cased text the words are searched in.
const MAX_TEXT_BYTES: usize = 16 * 1024;

/// What the body says, extracted once.
#[derive(Debug, Default)]
pub(super) struct Evidence {
    /// The parsed error envelope (or SSE error frame), for reset fields.
    pub json: Option<Value>,
    /// Provider codes, most specific first, as spelled by the provider.
    pub codes: Vec<String>,
    /// A status inside the body (OpenRouter `error.code`, `status_code`, `"code":"429"`).
    pub numeric_code: Option<u16>,
    /// The provider's message (unmasked; masked before it leaves the classifier).
    pub message: Option<String>,
    /// Lower-cased text searched for phrases: the message, sentence-like codes, or the body.
    pub text: String,
    /// Google's structured details.
    pub google: GoogleDetails,
    /// Whether the body is an HTML page.
    pub html: bool,
    /// Whether the body is an event stream with an error frame in it.
    pub stream_error: bool,
    /// Whether the body is empty or only whitespace.
    pub empty: bool,
    /// Whether the body carries an error at all (an `error` member, a code, a status).
    pub error_found: bool,
}

impl Evidence {
    /// Reads a body of any shape.
    pub fn read(body: &[u8]) -> Evidence {
        let body = &body[..body.len().min(MAX_BODY_BYTES)];
        let text = String::from_utf8_lossy(body);
        let trimmed = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
        let mut evidence = Evidence {
            empty: trimmed.is_empty(),
            ..Evidence::default()
        };
        if evidence.empty {
            return evidence;
        }
        if (trimmed.starts_with('{') || trimmed.starts_with('['))
            && let Ok(value) = serde_json::from_str::<Value>(trimmed)
        {
            evidence.read_envelope(&value, 0);
            evidence.json = Some(value);
            evidence.finish(trimmed);
            return evidence;
        }
        if let Some(frame) = sse_error_frame(trimmed) {
            evidence.stream_error = true;
            evidence.error_found = true;
            match serde_json::from_str::<Value>(frame) {
                Ok(value) => {
                    evidence.read_envelope(&value, 0);
                    evidence.json = Some(value);
                }
                Err(_) => evidence.message = Some(frame.to_owned()),
            }
            evidence.finish(frame);
            return evidence;
        }
        let head = &trimmed[..floor_char_boundary(trimmed, 1024)];
        let head_lower = head.to_ascii_lowercase();
        if head.starts_with('<') || head_lower.contains("<html") || head_lower.contains("<!doctype")
        {
            evidence.html = true;
            evidence.message = html_title(trimmed);
            evidence.text =
                trimmed[..floor_char_boundary(trimmed, MAX_TEXT_BYTES)].to_ascii_lowercase();
            return evidence;
        }
        // An error envelope a client printed in its own syntax (Python's `{'error': {...}}`)
        // inside a 2xx stream is still an error frame: the llm-d inference simulator's stream
        // reports vLLM's context-length failure that way (llm-d/llm-d-inference-sim#596).
        evidence.error_found |= printed_envelope(head);
        evidence.message = Some(trimmed.to_owned());
        evidence.finish(trimmed);
        evidence
    }

    /// Fills `text` from the message and sentence-like codes, or from the raw body.
    fn finish(&mut self, raw: &str) {
        let mut text = String::new();
        if let Some(message) = &self.message {
            text.push_str(message);
        }
        for code in &self.codes {
            text.push(' ');
            text.push_str(code);
        }
        if text.trim().is_empty() || self.json.is_none() && self.message.is_none() {
            text.push(' ');
            text.push_str(raw);
        }
        let end = floor_char_boundary(&text, MAX_TEXT_BYTES);
        self.text = one_line_lower(&text[..end]);
    }

    /// Reads a JSON error envelope of any of the known shapes; `depth` counts nesting.
    fn read_envelope(&mut self, root: &Value, depth: usize) {
        let root = match root {
            Value::Array(items) => items
                .iter()
                .find(|item| item.get("error").is_some())
                .or_else(|| items.first())
                .unwrap_or(root),
            _ => root,
        };
        let Some(object) = root.as_object() else {
            return;
        };
        self.error_found |= object.contains_key("error")
            || object.contains_key("code")
            || object.contains_key("__type")
            || object.get("type").and_then(Value::as_str) == Some("error")
            || object.get("object").and_then(Value::as_str) == Some("error");
        let mut message: Option<String> = None;
        match object.get("error") {
            Some(Value::Object(error)) => {
                // Anthropic puts the precise code under error.details.error_code.
                if let Some(details) = error.get("details") {
                    if let Some(code) = details.get("error_code").and_then(Value::as_str) {
                        self.push_code(code);
                    }
                    self.read_google(|google| google.read_details(details));
                }
                if let Some(errors) = error.get("errors") {
                    self.read_google(|google| google.read_legacy_errors(errors));
                }
                self.read_code(error.get("code"));
                for key in ["type", "status"] {
                    if let Some(kind) = error.get(key).and_then(Value::as_str) {
                        self.push_code(kind);
                    }
                }
                self.read_status_fields(error);
                message = error
                    .get("message")
                    .or_else(|| error.get("msg"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                // OpenRouter: the upstream provider's own error is in metadata.raw.
                if let Some(raw) = error
                    .get("metadata")
                    .and_then(|metadata| metadata.get("raw"))
                    .and_then(Value::as_str)
                {
                    let joined = message.get_or_insert_with(String::new);
                    joined.push_str(" | ");
                    joined.push_str(raw);
                }
            }
            Some(Value::String(error)) => {
                if let Some(code) = object.get("code").and_then(Value::as_str) {
                    // xAI: {"code": "unauthenticated:bad-credentials", "error": "…"}.
                    message = Some(error.clone());
                    self.push_code(code);
                } else {
                    // OAuth (RFC 6749 §5.2): {"error": "invalid_grant", "error_description": "…"}.
                    self.push_code(error);
                    message = object
                        .get("error_description")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .or_else(|| (!looks_like_code(error)).then(|| error.clone()));
                }
            }
            _ if depth == 0 && !object.contains_key("message") => {
                // An event wrapping the error one level down (OpenAI Responses
                // `response.failed`: {"type":…,"response":{"error":{…}}}).
                let wrapped = object
                    .values()
                    .find(|value| value.get("error").is_some_and(Value::is_object));
                match wrapped {
                    Some(inner) => self.read_envelope(inner, depth + 1),
                    None => self.read_flat(object, &mut message),
                }
            }
            _ => self.read_flat(object, &mut message),
        }
        self.read_status_fields(object);
        if let Some(Value::Number(n)) = object.get("status")
            && self.numeric_code.is_none()
        {
            self.numeric_code = as_status(n);
        }
        if let Some(text) = &message
            && depth == 0
            && let Some(inner) = embedded_json(text)
        {
            // The @google/genai client and several routers serialise the provider's envelope
            // into their own message: its codes are the more specific ones.
            let outer_codes = std::mem::take(&mut self.codes);
            let outer_status = self.numeric_code.take();
            self.read_envelope(&inner, depth + 1);
            self.codes.extend(outer_codes);
            self.numeric_code = self.numeric_code.or(outer_status);
            if let Some(inner_message) = self.message.take() {
                message = Some(inner_message);
            }
        }
        if let Some(text) = message {
            let joined = self.message.get_or_insert_with(String::new);
            if !joined.is_empty() {
                joined.push_str(" | ");
            }
            joined.push_str(&text);
        }
    }

    /// Reads a flat envelope (Mistral, DashScope, AWS and others): {"object":"error",
    /// "message":…,"type":…,"code":…}, {"__type": "…", "message": …}, {"detail": "…"}.
    fn read_flat(&mut self, object: &serde_json::Map<String, Value>, message: &mut Option<String>) {
        self.read_code(object.get("code"));
        for key in ["__type", "errorType", "type"] {
            if let Some(kind) = object.get(key).and_then(Value::as_str)
                && kind != "error"
            {
                // AWS `__type` may carry a namespace: `…#ExpiredTokenException`.
                self.push_code(kind.rsplit('#').next().unwrap_or(kind));
            }
        }
        if let Some(details) = object.get("details") {
            self.read_google(|google| google.read_details(details));
        }
        *message = object
            .get("message")
            .or_else(|| object.get("errorMessage"))
            .or_else(|| object.get("detail"))
            .or_else(|| object.get("msg"))
            .map(|value| match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
    }

    /// Adds the error type AWS puts in a header (`x-amzn-ErrorType:
    /// ThrottlingException:http://…`) to the codes.
    pub fn read_headers(&mut self, headers: &[(String, String)]) {
        for (name, value) in headers {
            if name.trim().eq_ignore_ascii_case("x-amzn-errortype") {
                let code = value.split(':').next().unwrap_or("").trim();
                if !code.is_empty() {
                    self.error_found = true;
                    self.push_code(code);
                }
            }
        }
    }

    /// Reads Google details and keeps the new `ErrorInfo` reasons as codes: they are the most
    /// specific codes Google gives (`API_KEY_INVALID`, `RATE_LIMIT_EXCEEDED`).
    fn read_google(&mut self, read: impl FnOnce(&mut GoogleDetails)) {
        let before = self.google.reasons.len();
        read(&mut self.google);
        let new: Vec<String> = self.google.reasons[before..].to_vec();
        for reason in new {
            self.push_code(&reason);
        }
    }

    /// Reads a `code` member: a status number, a numeric string (`"429"`) or an identifier.
    fn read_code(&mut self, code: Option<&Value>) {
        match code {
            Some(Value::Number(n)) => {
                self.numeric_code = self.numeric_code.or_else(|| as_status(n));
            }
            Some(Value::String(code)) => match code.trim().parse::<u16>() {
                Ok(n) if (100..=599).contains(&n) => {
                    self.numeric_code = self.numeric_code.or(Some(n));
                }
                _ => self.push_code(code),
            },
            _ => {}
        }
    }

    /// Reads the status numbers clients and gateways copy into bodies.
    fn read_status_fields(&mut self, object: &serde_json::Map<String, Value>) {
        for key in [
            "status_code",
            "statusCode",
            "http_status",
            "raw_status_code",
        ] {
            if let Some(Value::Number(n)) = object.get(key) {
                self.numeric_code = self.numeric_code.or_else(|| as_status(n));
            }
        }
        if let Some(Value::Number(n)) = object
            .get("$metadata")
            .and_then(|m| m.get("httpStatusCode"))
        {
            self.numeric_code = self.numeric_code.or_else(|| as_status(n));
        }
    }

    /// Keeps identifier-like codes; a sentence in a code field (xAI) joins the text instead.
    fn push_code(&mut self, code: &str) {
        let code = code.trim();
        if code.is_empty() {
            return;
        }
        if looks_like_code(code) {
            self.codes.push(code.to_owned());
        } else {
            let message = self.message.get_or_insert_with(String::new);
            if !message.is_empty() {
                message.push_str(" | ");
            }
            message.push_str(code);
        }
    }

    /// Tells whether any code equals `code` (any case).
    pub fn has_code(&self, code: &str) -> bool {
        self.codes.iter().any(|c| c.eq_ignore_ascii_case(code)) || self.google.has_reason(code)
    }
}

/// Finds a JSON envelope serialised inside a message (`"{\n  \"error\": …}"`, `"Error from
/// provider(…): {…}"`); it must parse whole and carry an `error` member.
fn embedded_json(message: &str) -> Option<Value> {
    let start = message.find(['{', '['])?;
    let end = message.rfind(['}', ']'])?;
    let candidate = message.get(start..=end)?;
    let value = serde_json::from_str::<Value>(candidate).ok()?;
    let has_error = match &value {
        Value::Array(items) => items.iter().any(|item| item.get("error").is_some()),
        other => other.get("error").is_some(),
    };
    has_error.then_some(value)
}

/// Lower-cases ASCII and turns line breaks and tabs into spaces, so phrases match across the
/// line wraps of terminals and logs ("invalid\nx-api-key").
fn one_line_lower(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

pub(super) fn looks_like_code(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && !text.contains(char::is_whitespace)
}

fn as_status(number: &serde_json::Number) -> Option<u16> {
    number
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| (100..=599).contains(n))
}

pub(super) fn floor_char_boundary(text: &str, max: usize) -> usize {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Whether a body that is not JSON opens like an error envelope printed by a client:
/// `{'error': …` (a Python dict) or `{"error": …` cut short.
fn printed_envelope(head: &str) -> bool {
    let compact: String = head
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(12)
        .collect();
    compact.starts_with("{'error':") || compact.starts_with("{\"error\":")
}

/// Finds the first error frame in a server-sent-event body: a `data:` line after
/// `event: error`, or a `data:` JSON line carrying an `error` (or `"type":"error"`).
fn sse_error_frame(body: &str) -> Option<&str> {
    if !body.contains("data:") && !body.contains("event:") {
        return None;
    }
    let mut error_event = false;
    for line in body.lines().take(10_000) {
        let line = line.trim();
        if let Some(event) = line.strip_prefix("event:") {
            error_event = event.trim() == "error";
            continue;
        }
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let data = data.trim();
        let mentions_error = data.starts_with('{')
            && (data.contains("\"error\"") || data.contains("\"type\":\"error\""));
        if error_event || mentions_error {
            return Some(data);
        }
    }
    None
}

/// Returns the `<title>` of an HTML page, for the message.
fn html_title(page: &str) -> Option<String> {
    let head = &page[..floor_char_boundary(page, MAX_TEXT_BYTES)];
    let lower = head.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let title = head.get(open_end..close)?.trim();
    (!title.is_empty()).then(|| title.to_owned())
}
