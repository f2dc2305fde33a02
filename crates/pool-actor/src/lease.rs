//! Leases: a credential handed out by a pool, returned on release or drop.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

use credpool_core::{CredentialKind, EntryId, Generation, ProviderId, Secret, Timestamp};

/// Lease count and fast-path usage of one entry, shared by its slot, the snapshot and leases.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Leases held now.
    leases: AtomicU32,
    /// Selections made by the fast path since the actor last folded them in.
    pub(crate) fast_selections: AtomicU64,
    /// Wall time (ms) of the latest fast selection, 0 for none since the last fold.
    pub(crate) fast_last_used: AtomicI64,
    /// Successes reported without a message ([`Lease::succeeded`]) since the last fold.
    successes: AtomicU64,
}

/// What leases did without the actor since it last looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FastUsage {
    /// Selections made by the fast path.
    pub(crate) selections: u64,
    /// The latest of them.
    pub(crate) last_used: Option<Timestamp>,
    /// Successes reported.
    pub(crate) successes: u64,
}

impl Counters {
    /// Leases held now.
    pub(crate) fn leases(&self) -> u32 {
        self.leases.load(Ordering::Relaxed)
    }

    /// Takes one lease (the actor's path; it decides caps itself).
    pub(crate) fn acquire(&self) {
        self.leases.fetch_add(1, Ordering::AcqRel);
    }

    /// Gives one lease back; never below zero.
    pub(crate) fn release(&self) {
        let _ = self
            .leases
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Takes one lease if fewer than `cap` are held.
    pub(crate) fn try_acquire_under(&self, cap: u32) -> bool {
        self.leases
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok()
    }

    /// Takes what leases did without the actor since the last call; `None` when nothing.
    pub(crate) fn take_fast_usage(&self) -> Option<FastUsage> {
        let selections = self.fast_selections.swap(0, Ordering::AcqRel);
        let last = self.fast_last_used.swap(0, Ordering::AcqRel);
        let successes = self.successes.swap(0, Ordering::AcqRel);
        (selections > 0 || successes > 0).then_some(FastUsage {
            selections,
            last_used: (selections > 0).then_some(Timestamp(last)),
            successes,
        })
    }
}

/// What a lease needs of its pool once handed out: one per pool, shared by every entry's
/// [`Leased`], so a lease holds no handle of its own (one reference count less to bump on
/// every lease, on a line all tasks write).
pub(crate) struct PoolLink {
    provider: ProviderId,
    /// Tells the pool actor a lease came back (sends it a `Release`); a closure so that
    /// leases need not know the actor's message type.
    on_return: Box<dyn Fn() + Send + Sync>,
    /// Whether a returned lease must also tell the actor (strict caps park waiters there).
    notify_release: AtomicBool,
}

impl PoolLink {
    /// The link of `provider`'s pool actor; `on_return` tells the actor a lease came back.
    pub(crate) fn new(provider: ProviderId, on_return: impl Fn() + Send + Sync + 'static) -> Self {
        PoolLink {
            provider,
            on_return: Box::new(on_return),
            notify_release: AtomicBool::new(false),
        }
    }

    /// Sets whether returned leases must send the actor a `Release` (the pool actor only).
    pub(crate) fn set_notify_release(&self, notify: bool) {
        self.notify_release.store(notify, Ordering::Release);
    }

    /// Tells the actor a lease came back when it has strict-cap waiters to serve (the lease
    /// has already given its count back).
    fn lease_returned(&self) {
        if self.notify_release.load(Ordering::Acquire) {
            (self.on_return)();
        }
    }
}

impl fmt::Debug for PoolLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolLink")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// What names a lease in reports: which entry, at which token generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseTicket {
    /// Unique in the process.
    pub lease_id: u64,
    /// The entry.
    pub entry: EntryId,
    /// The token generation the lease carries.
    pub generation: Generation,
}

/// What every lease of one entry's current credential shares, built once per change of the
/// entry: a grant clones one `Arc` instead of each field (fewer contended reference counts
/// when many tasks lease and return at once).
#[derive(Debug)]
pub(crate) struct Leased {
    pub(crate) id: EntryId,
    pub(crate) generation: Generation,
    pub(crate) label: Arc<str>,
    pub(crate) secret: Secret,
    pub(crate) base_url: Option<Arc<str>>,
    pub(crate) kind: CredentialKind,
    /// The entry's lease count; a lease gives its count back here when dropped.
    pub(crate) counters: Arc<Counters>,
    /// The pool the lease came from.
    pub(crate) link: Arc<PoolLink>,
}

/// What a pool replies when it grants a lease; turned into a [`Lease`] by the handle.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) ticket: LeaseTicket,
    pub(crate) leased: Arc<Leased>,
    /// The entry's position in the pool when granted: a hint to find it again quickly.
    pub(crate) position: usize,
}

/// A credential on loan from a pool.
///
/// Dropping it returns it (a lease counts against its entry's concurrency cap until then):
/// the count is given back at once, without a message to the pool unless the pool parks
/// strict-cap waiters.
/// Reporting an outcome through the pool consumes it.
pub struct Lease {
    pub(crate) grant: Grant,
    /// Whether dropping it returns it (false once a report consumed it).
    pub(crate) armed: bool,
}

impl Lease {
    /// Returns the ticket that names this lease in reports.
    pub fn ticket(&self) -> LeaseTicket {
        self.grant.ticket
    }

    /// Returns the entry's id.
    pub fn entry_id(&self) -> EntryId {
        self.grant.ticket.entry
    }

    /// Returns the token generation this lease carries.
    pub fn generation(&self) -> Generation {
        self.grant.ticket.generation
    }

    /// Returns the secret to send (API key or access token).
    pub fn secret(&self) -> &Secret {
        &self.grant.leased.secret
    }

    /// Returns the endpoint this credential is bound to.
    pub fn base_url(&self) -> Option<&str> {
        self.grant.leased.base_url.as_deref()
    }

    /// Returns the entry's label.
    pub fn label(&self) -> &str {
        &self.grant.leased.label
    }

    /// Returns whether the credential is an API key or an OAuth access token.
    pub fn credential_kind(&self) -> CredentialKind {
        self.grant.leased.kind
    }

    /// Returns the provider the lease came from.
    pub fn provider(&self) -> Option<&ProviderId> {
        Some(&self.grant.leased.link.provider)
    }

    /// Reports that the request made with this lease succeeded and gives it back at once:
    /// the success is counted in the entry's shared counters (the pool folds them into its
    /// usage and writes them behind), without a message to the pool.
    pub fn succeeded(self) {
        self.grant
            .leased
            .counters
            .successes
            .fetch_add(1, Ordering::Relaxed);
        drop(self);
    }

    /// Detaches the lease from its pool without returning it (the pool takes it back itself,
    /// for example because a report consumed it).
    pub(crate) fn disarm(mut self) -> LeaseTicket {
        self.armed = false;
        self.grant.ticket
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("entry", &self.grant.ticket.entry)
            .field("generation", &self.grant.ticket.generation)
            .field("label", &self.grant.leased.label)
            .field("secret", &self.grant.leased.secret)
            .finish_non_exhaustive()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if std::mem::take(&mut self.armed) {
            self.grant.leased.counters.release();
            self.grant.leased.link.lease_returned();
        }
    }
}
