//! A strict fake OAuth provider and API on `127.0.0.1:0`.
//!
//! Routes:
//! - `POST /oauth/token`: the OAuth 2.0 `refresh_token` grant (form or JSON body). Access
//!   tokens live [`FakeProviderConfig::access_token_lifetime`]; refresh tokens are single use
//!   and rotate on every redemption. Presenting a spent refresh token revokes the whole grant
//!   family (RFC 9700 §4.14.2) and answers `400` with [`FakeProviderConfig::reuse_answer`],
//!   unless it is the immediate predecessor replayed within
//!   [`FakeProviderConfig::reuse_grace`], which returns the same pair again.
//! - `GET /.well-known/openid-configuration`: a discovery document whose `token_endpoint` is
//!   the token route (or what [`FakeProvider::set_discovery_token_endpoint`] says).
//! - `POST /v1/chat/completions`, `GET /v1/models`: accept a live access token or a registered
//!   API key (`Authorization: Bearer` or `x-api-key`). An expired OAuth access token gets
//!   xAI's answer, `403 {"code":"unauthenticated:bad-credentials",...}`; an unknown credential
//!   gets OpenAI's `401 invalid_api_key`.
//!
//! **Fault semantics (decided here, relied on by refresher tests):** a [`TokenFault`] fires
//! before the refresh token is looked at, so it never consumes the token — a real provider's
//! edge (load balancer, WAF, overloaded front end) fails the same way. The exceptions are
//! [`TokenFault::Slow`], which then succeeds normally, and [`TokenFault::LostResponse`], which
//! rotates the token and then drops the connection: the "response lost in flight" case that
//! makes the next attempt a reuse (hermes #81410). Queued faults fire first, one per request;
//! the sticky fault fires on every request when the queue is empty.
//!
//! **Invariant:** expiry reads the injected [`Clock`] only, so a `ManualClock` drives it.

mod control;
mod ledger;
mod listener;
mod routes;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use credpool_core::{Clock, Secret, SystemClock};
use tokio::task::JoinHandle;

pub use ledger::{AccessState, IssuedPair, Ledger, LedgerState, RefreshVerdict};

/// How the fake answers a detected refresh-token reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReuseAnswer {
    /// `{"error":"invalid_grant","error_description":"refresh token reuse detected"}` (Nous
    /// Portal style).
    #[default]
    InvalidGrant,
    /// `{"error":{"code":"refresh_token_reused",...}}` (OpenAI style).
    RefreshTokenReused,
}

/// One failure of the token endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFault {
    /// `500` with a JSON error body.
    Status500,
    /// `503` with a JSON error body.
    Status503,
    /// Never answers (holds for [`FakeProviderConfig::timeout_hold`]); the client times out.
    Timeout,
    /// Closes the connection without answering after the request was received.
    ConnectionReset,
    /// Waits this long, then answers normally (and redeems the token).
    Slow(Duration),
    /// A Cloudflare-like `502` HTML page.
    HtmlPage,
    /// `200` with `{not json`.
    MalformedJson,
    /// `200` with an empty body.
    Empty200,
    /// `200` with a JSON body lacking `access_token`.
    MissingAccessToken,
    /// `400 {"error":"invalid_grant"}` without touching the grant.
    InvalidGrant,
    /// `400` OpenAI-style `refresh_token_reused` without touching the grant.
    RefreshTokenReused,
    /// `429` with `Retry-After: <secs>`.
    RateLimited {
        /// The advertised wait, whole seconds.
        retry_after_secs: u64,
    },
    /// `429` as an HTML page (a WAF), with `Retry-After: <secs>`.
    RateLimitedHtml {
        /// The advertised wait, whole seconds.
        retry_after_secs: u64,
    },
    /// `403 {"error":"xai_oauth_tier_denied"}`: an entitlement refusal.
    TierDenied,
    /// `302` to this location.
    Redirect(String),
    /// `200` with a JSON body of this many bytes (a valid token padded out).
    Oversized(usize),
    /// `404 Not Found`.
    NotFound,
    /// Redeems the token (rotates it), then closes the connection without answering.
    LostResponse,
    /// `400 {"error":"weird_<the refresh token sent>"}`: a provider echoing its input in a
    /// code-shaped error (credpool must never repeat it).
    EchoedToken,
}

/// How an API key answers the API routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ApiKeyMode {
    /// `200`.
    #[default]
    Ok,
    /// `429` with `Retry-After: <secs>`.
    RateLimited {
        /// The advertised wait, whole seconds.
        retry_after_secs: u64,
    },
    /// `402 {"error":{"message":"Insufficient credits","code":402}}`.
    Billing402,
    /// `403` with a billing message.
    Billing403,
    /// `401 invalid_api_key`.
    Invalid,
}

/// Settings of a fake provider.
#[derive(Clone, Debug)]
pub struct FakeProviderConfig {
    /// Lifetime of issued access tokens, sent as `expires_in`.
    pub access_token_lifetime: Duration,
    /// Whether refresh tokens rotate (single use). When off, no `refresh_token` is returned
    /// and the old one stays valid.
    pub rotate_refresh_tokens: bool,
    /// How long a just-spent refresh token may be replayed for the same pair; zero disables.
    pub reuse_grace: Duration,
    /// The error a detected reuse answers with.
    pub reuse_answer: ReuseAnswer,
    /// When set, a token request with another `client_id` gets `401 invalid_client`.
    pub expected_client_id: Option<String>,
    /// How long [`TokenFault::Timeout`] holds a request before giving up.
    pub timeout_hold: Duration,
    /// The clock access-token expiry and the grace window read.
    pub clock: Arc<dyn Clock>,
    /// The address to bind; `127.0.0.1:0` when unset.
    pub bind: Option<SocketAddr>,
    /// A saved state to start from ([`FakeProvider::export_state`]).
    pub restore: Option<FakeState>,
    /// When set, the fake writes its state (JSON, mode 0600) to this file after every
    /// redemption, before it answers, as a real provider never forgets a rotation it made.
    pub persist: Option<std::path::PathBuf>,
}

/// What a fake provider saves between runs: its token book and its API keys. It holds the
/// fake's tokens in clear; callers store it with owner-only permissions. `Debug` shows counts
/// only.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FakeState {
    ledger: ledger::LedgerState,
    api_keys: Vec<(String, ApiKeyMode)>,
}

impl std::fmt::Debug for FakeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeState")
            .field("ledger", &self.ledger)
            .field("api_keys", &self.api_keys.len())
            .finish()
    }
}

impl Default for FakeProviderConfig {
    fn default() -> Self {
        FakeProviderConfig {
            access_token_lifetime: Duration::from_secs(3600),
            rotate_refresh_tokens: true,
            reuse_grace: Duration::ZERO,
            reuse_answer: ReuseAnswer::InvalidGrant,
            expected_client_id: None,
            timeout_hold: Duration::from_secs(600),
            clock: Arc::new(SystemClock),
            bind: None,
            restore: None,
            persist: None,
        }
    }
}

/// What the last token request looked like, without its secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenRequestRecord {
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `Accept` header.
    pub accept: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// Whether the body was JSON (rather than a form).
    pub json_body: bool,
    /// The `grant_type` field.
    pub grant_type: Option<String>,
    /// The `client_id` field.
    pub client_id: Option<String>,
    /// Whether a `refresh_token` field was present.
    pub had_refresh_token: bool,
}

#[derive(Default)]
struct Counters {
    token_requests: AtomicU64,
    refreshes: AtomicU64,
    reuse_detections: AtomicU64,
    api_requests: AtomicU64,
    discovery_requests: AtomicU64,
}

#[derive(Default)]
struct FaultPlan {
    queue: VecDeque<TokenFault>,
    sticky: Option<TokenFault>,
}

/// State shared by the handle and the handlers.
struct Shared {
    config: FakeProviderConfig,
    base_url: String,
    ledger: Mutex<Ledger>,
    faults: Mutex<FaultPlan>,
    api_keys: Mutex<HashMap<String, ApiKeyMode>>,
    requests_by_credential: Mutex<HashMap<String, u64>>,
    discovery_override: Mutex<Option<String>>,
    last_token_request: Mutex<Option<TokenRequestRecord>>,
    /// When the token endpoint last finished an answer (before the body is written).
    last_token_answer: Mutex<Option<std::time::Instant>>,
    counters: Counters,
    /// Serialises writes of the persisted state, so an older state never overwrites a newer.
    persist_lock: Mutex<()>,
}

/// Locks a mutex, ignoring poisoning: a panicking test thread must not cascade.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn export(&self) -> FakeState {
        FakeState {
            ledger: lock(&self.ledger).export(),
            api_keys: lock(&self.api_keys)
                .iter()
                .map(|(key, mode)| (key.clone(), *mode))
                .collect(),
        }
    }

    /// Writes the state to `config.persist` (atomically, 0600) when set. Synchronous on
    /// purpose: the answer that follows must never be ahead of what is saved.
    fn persist(&self) {
        let Some(path) = &self.config.persist else {
            return;
        };
        let _order = lock(&self.persist_lock);
        let written = serde_json::to_vec(&self.export())
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_private(path, &bytes));
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "fake provider could not save its state");
        }
    }

    fn next_fault(&self) -> Option<TokenFault> {
        let mut plan = lock(&self.faults);
        plan.queue.pop_front().or_else(|| plan.sticky.clone())
    }
}

/// A running fake provider; the server stops when this handle drops.
pub struct FakeProvider {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProvider")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeProvider {
    /// Binds `127.0.0.1:0` and serves until the handle drops.
    ///
    /// # Panics
    /// When loopback cannot be bound (test fixture).
    pub async fn start(config: FakeProviderConfig) -> FakeProvider {
        Self::try_start(config)
            .await
            .expect("bind loopback for the fake provider")
    }

    /// Binds `config.bind` (default `127.0.0.1:0`) and serves until the handle drops.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn try_start(mut config: FakeProviderConfig) -> std::io::Result<FakeProvider> {
        let bind = config
            .bind
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let restore = config.restore.take();
        let mut ledger = Ledger::new(
            Arc::clone(&config.clock),
            config.access_token_lifetime,
            config.reuse_grace,
            config.rotate_refresh_tokens,
        );
        let mut api_keys = HashMap::new();
        if let Some(state) = restore {
            ledger.restore(state.ledger);
            api_keys.extend(state.api_keys);
        }
        let shared = Arc::new(Shared {
            config,
            base_url: format!("http://{addr}"),
            ledger: Mutex::new(ledger),
            faults: Mutex::default(),
            api_keys: Mutex::new(api_keys),
            requests_by_credential: Mutex::default(),
            discovery_override: Mutex::default(),
            last_token_request: Mutex::default(),
            last_token_answer: Mutex::default(),
            counters: Counters::default(),
            persist_lock: Mutex::default(),
        });
        let app = routes::router(Arc::clone(&shared))
            .merge(control::router(Arc::clone(&shared)))
            .into_make_service_with_connect_info::<listener::ConnKill>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener::KillableListener(listener), app).await;
        });
        Ok(FakeProvider {
            shared,
            addr,
            server,
        })
    }

    /// Stops serving and waits until the listening socket is closed (so the address can be
    /// bound again at once). Dropping the handle stops it too, a moment later.
    pub async fn stop(&mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }

    /// The fake's token book and API keys, to start another fake from
    /// ([`FakeProviderConfig::restore`]).
    pub fn export_state(&self) -> FakeState {
        self.shared.export()
    }

    /// Writes the state to [`FakeProviderConfig::persist`] now (no-op when unset).
    pub fn persist_state(&self) {
        self.shared.persist();
    }

    /// Starts a fake with the default configuration.
    pub async fn start_default() -> FakeProvider {
        Self::start(FakeProviderConfig::default()).await
    }

    /// Returns `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Returns the bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the token endpoint URL.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.shared.base_url)
    }

    /// Returns the API base URL (`…/v1`).
    pub fn api_url(&self) -> String {
        format!("{}/v1", self.shared.base_url)
    }

    /// Returns the OpenID discovery document URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.shared.base_url)
    }

    /// Starts a new grant family labelled `label` and returns its `(access, refresh)` pair.
    pub fn grant(&self, label: &str) -> (Secret, Secret) {
        let (access, refresh) = lock(&self.shared.ledger).grant(label);
        (Secret::new(access), Secret::new(refresh))
    }

    /// Revokes every grant family labelled `label`, as an administrator would.
    pub fn revoke(&self, label: &str) {
        lock(&self.shared.ledger).revoke(label);
    }

    /// Tells whether a grant family labelled `label` is revoked (by reuse or by hand).
    pub fn is_revoked(&self, label: &str) -> bool {
        lock(&self.shared.ledger).is_revoked(label)
    }

    /// Tells whether an access token would be accepted by the API right now.
    pub fn is_access_valid(&self, token: &str) -> bool {
        self.access_state(token) == AccessState::Valid
    }

    /// Classifies an access token as the API would.
    pub fn access_state(&self, token: &str) -> AccessState {
        lock(&self.shared.ledger).access_state(token)
    }

    /// Expires every access token issued so far (later ones live normally).
    pub fn expire_access_tokens(&self) {
        lock(&self.shared.ledger).expire_access_tokens();
    }

    /// Expires the access tokens issued at least `age` ago; younger ones stay valid.
    pub fn expire_access_tokens_older_than(&self, age: Duration) {
        lock(&self.shared.ledger).expire_access_tokens_older_than(age);
    }

    /// Registers an API key (or changes its mode).
    pub fn add_api_key(&self, key: &str, mode: ApiKeyMode) {
        lock(&self.shared.api_keys).insert(key.to_owned(), mode);
    }

    /// Changes how a registered API key answers; registers it when unknown.
    pub fn set_api_key_mode(&self, key: &str, mode: ApiKeyMode) {
        self.add_api_key(key, mode);
    }

    /// Queues `count` copies of a fault for the next token requests.
    pub fn fail_next(&self, fault: TokenFault, count: usize) {
        let mut plan = lock(&self.shared.faults);
        plan.queue.extend(std::iter::repeat_n(fault, count));
    }

    /// Queues one fault after those already queued.
    pub fn push_fault(&self, fault: TokenFault) {
        self.fail_next(fault, 1);
    }

    /// Sets (or clears) the fault every token request gets once the queue is empty.
    pub fn set_sticky_fault(&self, fault: Option<TokenFault>) {
        lock(&self.shared.faults).sticky = fault;
    }

    /// Clears the queue and the sticky fault.
    pub fn clear_faults(&self) {
        *lock(&self.shared.faults) = FaultPlan::default();
    }

    /// Makes discovery advertise another `token_endpoint` (`None` restores the real one).
    pub fn set_discovery_token_endpoint(&self, endpoint: Option<String>) {
        *lock(&self.shared.discovery_override) = endpoint;
    }

    /// Returns the token requests received, faulted ones included.
    pub fn token_requests(&self) -> u64 {
        self.shared.counters.token_requests.load(Ordering::SeqCst)
    }

    /// Returns the refreshes that issued a new pair (grace replays excluded).
    pub fn refreshes(&self) -> u64 {
        self.shared.counters.refreshes.load(Ordering::SeqCst)
    }

    /// Returns how many reuses were detected (each one revoked a family).
    pub fn reuse_detections(&self) -> u64 {
        self.shared.counters.reuse_detections.load(Ordering::SeqCst)
    }

    /// Returns the API requests received.
    pub fn api_requests(&self) -> u64 {
        self.shared.counters.api_requests.load(Ordering::SeqCst)
    }

    /// Returns the API requests made with this credential (API key or access token).
    pub fn api_requests_with(&self, credential: &str) -> u64 {
        lock(&self.shared.requests_by_credential)
            .get(credential)
            .copied()
            .unwrap_or(0)
    }

    /// Returns the discovery requests received.
    pub fn discovery_requests(&self) -> u64 {
        self.shared
            .counters
            .discovery_requests
            .load(Ordering::SeqCst)
    }

    /// Returns what the last token request looked like.
    pub fn last_token_request(&self) -> Option<TokenRequestRecord> {
        lock(&self.shared.last_token_request).clone()
    }

    /// Returns when the token endpoint last had its answer ready (the handler returned; the
    /// body is written after). For benches that time what follows a refresh.
    pub fn last_token_answer_at(&self) -> Option<std::time::Instant> {
        *lock(&self.shared.last_token_answer)
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, with mode 0600.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
