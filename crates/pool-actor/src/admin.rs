//! Admin operations: each one a request type with its reply type, sent through one generic
//! [`crate::PoolHandle::admin`] and handled in one place by the pool actor.
//!
//! ```ignore
//! let view = pool.admin(Remove(Target::from("team-key"))).await?;
//! ```
//!
//! [`resolve_target`] is the one way to find an entry from what an admin typed; the actor
//! uses it over its slots and [`crate::PoolSnapshot::resolve`] over a snapshot.
//!
//! **Invariants:** every operation that changes the pool is durable (flushed) when it
//! answers and emits an event; none of them ever returns a secret.

use std::fmt;

use credpool_core::{EntryId, EntryKind, SecretSource, Strategy};
use serde::Serialize;

use crate::error::{PoolError, Reply};
use crate::view::{EntryView, PoolSnapshot, PoolStats};

/// How an admin names an entry: its id, its label (case-insensitive), or its 1-based
/// position in priority order, tried in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(pub String);

impl From<&str> for Target {
    fn from(text: &str) -> Self {
        Target(text.to_owned())
    }
}

impl From<EntryId> for Target {
    fn from(id: EntryId) -> Self {
        Target(id.to_string())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An entry to add.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Its label: unique in its pool, not empty, at most [`MAX_LABEL_CHARS`] characters and
    /// free of control characters.
    pub label: String,
    /// The credential.
    pub kind: EntryKind,
    /// Where it came from.
    pub source: SecretSource,
    /// Its priority; `None` puts it last.
    pub priority: Option<u32>,
    /// The endpoint it is bound to; `None` uses the provider's default.
    pub base_url: Option<String>,
    /// Weight for `weighted_random` (at least 1).
    pub weight: Option<u32>,
}

/// The longest label accepted, in characters.
pub const MAX_LABEL_CHARS: usize = 128;

/// Checks a label: trimmed, not empty, at most [`MAX_LABEL_CHARS`] characters, and without
/// control characters (a label is written to logs and terminals: a newline or an escape
/// sequence in it could forge a log line). Returns the trimmed label.
pub fn check_label(label: &str) -> Result<&str, PoolError> {
    let label = label.trim();
    if label.is_empty() {
        return Err(PoolError::Invalid("label must not be empty".to_owned()));
    }
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(PoolError::Invalid(format!(
            "label is longer than {MAX_LABEL_CHARS} characters"
        )));
    }
    if label.chars().any(char::is_control) {
        return Err(PoolError::Invalid(
            "label must not contain control characters".to_owned(),
        ));
    }
    Ok(label)
}

/// Finds `target` among `entries` (id and label, in priority order): an entry id, then a
/// label matching exactly one entry (case-insensitive; several is
/// [`PoolError::AmbiguousTarget`]), then a 1-based position. Returns the entry's position.
pub fn resolve_target<'a>(
    target: &Target,
    entries: impl Iterator<Item = (EntryId, &'a str)> + Clone,
) -> Result<usize, PoolError> {
    let text = target.0.trim();
    if text.is_empty() {
        return Err(PoolError::Invalid("no entry target given".to_owned()));
    }
    if let Ok(id) = text.parse::<EntryId>()
        && let Some(at) = entries.clone().position(|(entry, _)| entry == id)
    {
        return Ok(at);
    }
    let mut by_label = entries
        .clone()
        .enumerate()
        .filter(|(_, (_, label))| label.eq_ignore_ascii_case(text))
        .map(|(at, _)| at);
    match (by_label.next(), by_label.next()) {
        (Some(at), None) => return Ok(at),
        (Some(_), Some(_)) => return Err(PoolError::AmbiguousTarget(text.to_owned())),
        (None, _) => {}
    }
    if let Ok(position) = text.parse::<usize>() {
        return if (1..=entries.count()).contains(&position) {
            Ok(position - 1)
        } else {
            Err(PoolError::NoSuchEntry(format!("#{position}")))
        };
    }
    Err(PoolError::NoSuchEntry(text.to_owned()))
}

/// What [`Ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ensured {
    /// The entry with that label, added now or found.
    pub entry: EntryView,
    /// Whether it was added by this call.
    pub added: bool,
}

/// An admin operation: a request whose answer is [`AdminOp::Reply`].
///
/// Implemented by [`Snapshot`], [`Stats`], [`Add`], [`Ensure`], [`Remove`], [`Reset`],
/// [`Refresh`], [`Move`] and [`SetStrategy`]; sealed.
pub trait AdminOp: Clone + Send + 'static + sealed::Sealed {
    /// What the pool answers.
    type Reply: Send + 'static;

    /// Wraps the request with its reply port (the pool actor's side).
    #[doc(hidden)]
    fn into_msg(self, reply: Reply<Self::Reply>) -> AdminMsg;
}

mod sealed {
    pub trait Sealed {}
}

/// Returns a redacted snapshot of the pool.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot;

/// Returns the pool's counters.
#[derive(Debug, Clone, Copy)]
pub struct Stats;

/// Adds an entry; a label the pool already holds is [`PoolError::LabelTaken`].
#[derive(Debug, Clone)]
pub struct Add(pub NewEntry);

/// Adds an entry unless one with its label exists (idempotent: what config seeding and a
/// restarted embedder use).
#[derive(Debug, Clone)]
pub struct Ensure(pub NewEntry);

/// Removes an entry.
#[derive(Debug, Clone)]
pub struct Remove(pub Target);

/// Clears an entry's cooldown, model benches or death.
#[derive(Debug, Clone)]
pub struct Reset(pub Target);

/// Starts a refresh of an OAuth entry now (the answer does not wait for its result; the
/// marker is durable when it comes). A refresh that cannot start because the store is
/// failing is [`PoolError::Store`].
#[derive(Debug, Clone)]
pub struct Refresh(pub Target);

/// Moves an entry to a 1-based position in priority order.
#[derive(Debug, Clone)]
pub struct Move {
    /// The entry.
    pub target: Target,
    /// Where to (1 is first; past the end is last).
    pub position: usize,
}

/// Sets the pool's selection strategy.
#[derive(Debug, Clone, Copy)]
pub struct SetStrategy(pub Strategy);

impl PoolSnapshot {
    /// Finds `target` the way the pool does for its admin operations (see
    /// [`resolve_target`]).
    pub fn resolve(&self, target: &Target) -> Result<&EntryView, PoolError> {
        let at = resolve_target(
            target,
            self.entries
                .iter()
                .map(|entry| (entry.id, entry.label.as_str())),
        )?;
        self.entries
            .get(at)
            .ok_or_else(|| PoolError::NoSuchEntry(target.to_string()))
    }
}

/// Defines the message enum and each operation's `AdminOp` impl from one list.
macro_rules! admin_ops {
    ($($op:ident => $reply:ty),* $(,)?) => {
        /// Admin requests as the pool actor receives them: the operation and its reply port.
        #[doc(hidden)]
        pub enum AdminMsg {
            $(
                #[allow(missing_docs)]
                $op($op, Reply<$reply>),
            )*
        }

        $(
            impl sealed::Sealed for $op {}

            impl AdminOp for $op {
                type Reply = $reply;

                fn into_msg(self, reply: Reply<$reply>) -> AdminMsg {
                    AdminMsg::$op(self, reply)
                }
            }
        )*
    };
}

admin_ops! {
    Snapshot => PoolSnapshot,
    Stats => PoolStats,
    Add => EntryView,
    Ensure => Ensured,
    Remove => EntryView,
    Reset => EntryView,
    Refresh => EntryView,
    Move => EntryView,
    SetStrategy => Strategy,
}

#[cfg(test)]
mod tests;
