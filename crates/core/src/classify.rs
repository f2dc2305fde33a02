//! Failure classification: one function from a provider's answer to a typed [`Classification`].
//!
//! (Placeholder being replaced by the full classifier.)

use std::time::Duration;

use crate::clock::Timestamp;
use crate::entry::CredentialKind;
use crate::outcome::{Classification, FailureKind};

/// A provider's answer, as the classifier sees it.
#[derive(Debug, Clone, Copy)]
pub struct ClassifyInput<'a> {
    /// The provider the request went to; a hint, unknown names are generic.
    pub provider: Option<&'a str>,
    /// The kind of credential used; decides how a plain 401 is read.
    pub entry_kind: Option<CredentialKind>,
    /// The HTTP status, or `None` for a transport failure or a bare message.
    pub status: Option<u16>,
    /// Response headers as (name, value) pairs; names in any case.
    pub headers: &'a [(String, String)],
    /// The response body, possibly empty, possibly not UTF-8.
    pub body: &'a [u8],
}

/// Classifies a provider's answer; reset times are clamped to `now + reset_ceiling`.
pub fn classify(
    input: &ClassifyInput<'_>,
    now: Timestamp,
    reset_ceiling: Duration,
) -> Classification {
    let _ = (now, reset_ceiling);
    let kind = match input.status {
        Some(401) => FailureKind::AuthExpired,
        _ => FailureKind::Other,
    };
    Classification {
        status: input.status,
        ..Classification::of(kind)
    }
}
