//! [`PoolHandle`]: the typed way to talk to one provider's pool actor.
//!
//! Timeouts live here, at the edge, not on internal hops: `select` has none (it is answered
//! from memory: from the snapshot the actor published, see `fast.rs`, or by the actor), every
//! other call is bounded by the handle's `call_timeout` (a caller waiting on a refresh it
//! joined is bounded by the refresh's watchdog instead of a timer of its own).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use credpool_core::{
    Classification, CredentialKind, EntryId, FailureKind, Generation, Outcome, ProviderId,
};
use ractor::ActorRef;
use tokio::sync::oneshot;

use crate::admin::AdminOp;
use crate::error::{PoolError, Reply};
use crate::events::EventStream;
use crate::fast::{Claimed, Shared};
use crate::join::{JoinedRefresh, RefreshJoin};
use crate::lease::{Grant, Lease};
use crate::messages::{Answer, PoolMsg};
use crate::view::EntryView;

/// How `report_auth_failure` goes on once the snapshot has been consulted.
enum AuthPath {
    /// Answered from the snapshot (the lease was stale).
    Answered(Grant),
    /// Wait on a refresh in flight, or on another caller's report of the same token.
    Wait {
        entry: EntryId,
        reported: Generation,
        position: usize,
        join: Arc<RefreshJoin>,
    },
    /// Ask the actor, carrying the claim other callers wait on (if this caller made one).
    Message {
        lease: Lease,
        failure: Classification,
        claim: Option<Arc<RefreshJoin>>,
    },
}

/// A handle on one provider's pool. Cheap to clone (one reference count: every lease holds
/// a clone).
#[derive(Clone)]
pub struct PoolHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    provider: ProviderId,
    actor: ActorRef<PoolMsg>,
    /// The actor's published snapshot: `select` reads it without a message.
    shared: Arc<Shared>,
    call_timeout: Duration,
}

impl fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolHandle")
            .field("provider", &self.inner.provider)
            .finish_non_exhaustive()
    }
}

impl PoolHandle {
    pub(crate) fn new(
        provider: ProviderId,
        actor: ActorRef<PoolMsg>,
        shared: Arc<Shared>,
        call_timeout: Duration,
    ) -> Self {
        PoolHandle {
            inner: Arc::new(HandleInner {
                provider,
                actor,
                shared,
                call_timeout,
            }),
        }
    }

    /// Returns the provider.
    pub fn provider(&self) -> &ProviderId {
        &self.inner.provider
    }

    /// Tells whether the pool actor is still running.
    pub fn is_alive(&self) -> bool {
        matches!(
            self.inner.actor.get_status(),
            ractor::ActorStatus::Running
                | ractor::ActorStatus::Starting
                | ractor::ActorStatus::Upgrading
        )
    }

    async fn ask<T>(
        &self,
        build: impl FnOnce(Reply<T>) -> PoolMsg,
        timeout: Option<Duration>,
    ) -> Result<T, PoolError> {
        let (sender, receiver) = oneshot::channel();
        self.inner
            .actor
            .send_message(build(sender.into()))
            .map_err(|_| PoolError::Stopped)?;
        let answer = match timeout {
            None => receiver.await,
            // Boxed: the timer would make every caller's future larger (tokio copies a task's
            // whole future when it completes), including the paths that never time out.
            Some(limit) => Box::pin(tokio::time::timeout(limit, receiver))
                .await
                .map_err(|_| PoolError::Timeout)?,
        };
        answer.map_err(|_| PoolError::Stopped)?
    }

    fn lease(&self, grant: Grant) -> Lease {
        Lease { grant, armed: true }
    }

    /// Leases a credential, for `model` when given (per-model benches apply).
    ///
    /// Without a model, a fill-first pool with a soft cap answers from the snapshot its actor
    /// published, without a message; anything else is asked of the actor. When the only
    /// grants are waiting for their first token, it waits for that refresh.
    pub async fn select(&self, model: Option<&str>) -> Result<Lease, PoolError> {
        if model.is_none()
            && matches!(self.inner.actor.get_status(), ractor::ActorStatus::Running)
            && let Some(grant) = self.inner.shared.try_select()
        {
            return Ok(self.lease(grant));
        }
        let grant = self.select_by_message(model).await?;
        Ok(self.lease(grant))
    }

    /// Asks the actor for a lease and follows its answer (a refresh to wait for first).
    async fn select_by_message(&self, model: Option<&str>) -> Result<Grant, PoolError> {
        let owned = model.map(str::to_owned);
        let answer = self
            .ask(
                |reply| PoolMsg::Select {
                    model: owned,
                    reply,
                },
                None,
            )
            .await?;
        self.follow(answer, model).await
    }

    /// Turns an answer into a grant: the lease itself, or the wait for a refresh and what
    /// it produced.
    async fn follow(&self, answer: Answer, model: Option<&str>) -> Result<Grant, PoolError> {
        match answer {
            Answer::Lease(grant) => Ok(grant),
            Answer::AwaitRefresh {
                entry,
                reported,
                position,
                join,
            } => Box::pin(self.after_refresh(entry, reported, position, &join, model)).await,
        }
    }

    /// Returns the entry last handed out, if any.
    pub async fn current(&self) -> Result<Option<EntryView>, PoolError> {
        self.ask(
            |reply| PoolMsg::Current { reply },
            Some(self.inner.call_timeout),
        )
        .await
    }

    /// Force-refreshes the entry last handed out (or the first OAuth entry) and leases it.
    pub async fn try_refresh_current(&self) -> Result<Lease, PoolError> {
        let answer = self
            .ask(
                |reply| PoolMsg::TryRefreshCurrent { reply },
                Some(self.inner.call_timeout),
            )
            .await?;
        let grant = self.follow(answer, None).await?;
        Ok(self.lease(grant))
    }

    /// Reports that the lease's credential was rejected and returns what to retry with: the
    /// refreshed token, the current one (when the lease was stale), or another entry.
    ///
    /// Bounded by the handle's `call_timeout`: the report itself is, and a refresh it joins
    /// is waited for at most one `call_timeout` more (by the refresh's watchdog, not a timer
    /// per caller), after which the call fails with [`PoolError::Timeout`].
    pub async fn report_auth_failure(
        &self,
        lease: Lease,
        failure: Classification,
        model: Option<&str>,
    ) -> Result<Lease, PoolError> {
        // Decided before any await, so that a caller that only waits does not carry its
        // lease, its failure or the message path in its future (tokio copies a task's whole
        // future when it completes: 10,000 of them at the end of a stampede).
        match self.auth_failure_path(lease, failure, model.is_none()) {
            AuthPath::Answered(grant) => Ok(self.lease(grant)),
            AuthPath::Wait {
                entry,
                reported,
                position,
                join,
            } => {
                let grant = self
                    .after_refresh(entry, reported, position, &join, None)
                    .await?;
                Ok(self.lease(grant))
            }
            AuthPath::Message {
                lease,
                failure,
                claim,
            } => Box::pin(self.report_by_message(lease, failure, model, claim)).await,
        }
    }

    /// What the actor would answer, decided without asking it when the snapshot can: someone
    /// already rotated this token (answer with the current one, change nothing), a refresh of
    /// it is in flight (wait for it with everyone else), or — for an expired OAuth token —
    /// another caller already reported it (wait for what the actor makes of that report
    /// instead of sending a message that would queue ahead of the refresh's result).
    fn auth_failure_path(&self, lease: Lease, failure: Classification, no_model: bool) -> AuthPath {
        let (entry, reported, position) =
            (lease.entry_id(), lease.generation(), lease.grant.position);
        if !no_model || !matches!(self.inner.actor.get_status(), ractor::ActorStatus::Running) {
            return AuthPath::Message {
                lease,
                failure,
                claim: None,
            };
        }
        let shared = &self.inner.shared;
        if let Some(grant) = shared.lease_newer(entry, reported, position) {
            shared.count_stale_report();
            return AuthPath::Answered(grant);
        }
        let wait = |join| AuthPath::Wait {
            entry,
            reported,
            position,
            join,
        };
        if let Some(join) = shared.join_refresh(entry, reported) {
            return wait(join);
        }
        if failure.kind != FailureKind::AuthExpired
            || lease.credential_kind() != CredentialKind::OAuth
        {
            return AuthPath::Message {
                lease,
                failure,
                claim: None,
            };
        }
        match shared.claim_refresh(entry, reported, self.inner.call_timeout / 2) {
            Claimed::Joined(join) => wait(join),
            Claimed::First(claim) => AuthPath::Message {
                lease,
                failure,
                claim: Some(claim),
            },
        }
    }

    /// Sends the report to the actor (with the claim other callers wait on, if any) and
    /// follows its answer.
    async fn report_by_message(
        &self,
        lease: Lease,
        failure: Classification,
        model: Option<&str>,
        claim: Option<Arc<RefreshJoin>>,
    ) -> Result<Lease, PoolError> {
        let ticket = lease.disarm();
        let owned = model.map(str::to_owned);
        let asked = self
            .ask(
                |reply| PoolMsg::ReportAuthFailure {
                    ticket,
                    failure,
                    model: owned,
                    claim: claim.clone(),
                    reply,
                },
                Some(self.inner.call_timeout),
            )
            .await;
        if let (Err(PoolError::Stopped), Some(claim)) = (&asked, &claim) {
            // Nobody will act on the claim: release whoever waits on it.
            self.inner
                .shared
                .drop_claims(ticket.entry, ticket.generation);
            claim.settle(None);
        }
        let grant = self.follow(asked?, model).await?;
        Ok(self.lease(grant))
    }

    /// Waits for a refresh of `entry`, then leases what it produced (or the entry from the
    /// published snapshot) if its generation moved past `reported`; else (the refresh
    /// failed, the entry went away) — and always for a `model`, whose benches only the actor
    /// knows — asks the actor for a lease.
    async fn after_refresh(
        &self,
        entry: EntryId,
        reported: Generation,
        position: usize,
        join: &RefreshJoin,
        model: Option<&str>,
    ) -> Result<Grant, PoolError> {
        if join.wait().await == JoinedRefresh::Overdue {
            return Err(PoolError::Timeout);
        }
        let shared = &self.inner.shared;
        let leased = match model {
            Some(_) => None,
            None => shared
                .lease_refreshed(join, reported)
                .or_else(|| shared.lease_newer(entry, reported, position)),
        };
        match leased {
            Some(grant) => Ok(grant),
            None => self.select_by_message(model).await,
        }
    }

    /// Reports how a request went and returns the lease; answers once any status change is
    /// durable.
    pub async fn report(
        &self,
        lease: Lease,
        outcome: Outcome,
        model: Option<&str>,
    ) -> Result<(), PoolError> {
        let ticket = lease.disarm();
        let model = model.map(str::to_owned);
        self.ask(
            |reply| PoolMsg::ReportOutcome {
                ticket,
                outcome,
                model,
                reply: Some(reply),
            },
            Some(self.inner.call_timeout),
        )
        .await
    }

    /// Reports a success without a message or a wait (the hot path): see
    /// [`Lease::succeeded`].
    pub fn report_success(&self, lease: Lease) {
        lease.succeeded();
    }

    /// Tells the pool a proactive refresh of (entry, generation) is due. Used by refreshers.
    pub fn refresh_due(&self, entry: EntryId, generation: Generation) {
        let _ = self
            .inner
            .actor
            .send_message(PoolMsg::RefreshDue { entry, generation });
    }

    /// Runs one admin operation ([`crate::admin`]) and returns its answer; changes are
    /// durable when it returns.
    pub async fn admin<O: AdminOp>(&self, operation: O) -> Result<O::Reply, PoolError> {
        self.ask(
            |reply| PoolMsg::Admin(operation.into_msg(reply)),
            Some(self.inner.call_timeout),
        )
        .await
    }

    /// Subscribes to the pool's events with a buffer of `capacity` events; with `since`, the
    /// events after that id still in the pool's history come first.
    pub async fn subscribe(
        &self,
        capacity: usize,
        since: Option<u64>,
    ) -> Result<EventStream, PoolError> {
        let (subscription, stream) = EventStream::channel(capacity, since);
        self.inner
            .actor
            .send_message(PoolMsg::Subscribe(subscription))
            .map_err(|_| PoolError::Stopped)?;
        Ok(stream)
    }

    /// Writes behind pending counters and flushes the store.
    pub async fn flush(&self) -> Result<(), PoolError> {
        self.ask(
            |reply| PoolMsg::Flush { reply },
            Some(self.inner.call_timeout),
        )
        .await
    }

    pub(crate) fn actor(&self) -> &ActorRef<PoolMsg> {
        &self.inner.actor
    }
}
