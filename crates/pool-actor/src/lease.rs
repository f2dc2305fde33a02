//! Leases: a credential handed out by a pool, returned on release or drop.

use std::fmt;
use std::sync::Arc;

use credpool_core::{CredentialKind, EntryId, Generation, ProviderId, Secret};

use crate::fast::Counters;
use crate::handle::PoolHandle;

/// What names a lease in reports: which entry, at which token generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseTicket {
    /// Unique per pool run.
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
    pub(crate) pool: Option<PoolHandle>,
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
        self.pool.as_ref().map(PoolHandle::provider)
    }

    /// Detaches the lease from its pool without returning it (the pool takes it back itself,
    /// for example because a report consumed it).
    pub(crate) fn disarm(mut self) -> LeaseTicket {
        self.pool = None;
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
        if let Some(pool) = self.pool.take() {
            self.grant.leased.counters.release();
            pool.lease_returned();
        }
    }
}
