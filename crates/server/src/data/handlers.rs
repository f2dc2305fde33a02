//! The data plane's handlers: lease, report, release.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use credpool::{ClientError, Decision, Lease, ProviderId, RequestFailure, Timestamp, Verdict};

use super::leases::{Held, Taken, Tombstone};
use super::wire::{
    ClassificationJson, HeaderJson, LeaseJson, LeaseRequest, ReportAnswer, ReportRequest, Reported,
    cause_names,
};
use super::{DataState, provider_of, read_body};
use crate::api::error::ApiError;
use crate::api::requests::parse_json;

/// `POST /v1/lease`.
pub(super) async fn lease(
    State(state): State<DataState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: LeaseRequest = parse_json(&read_body(body)?)?;
    let provider = provider_of(&state.client, request.provider, request.url)?;
    let model = request.model;
    match state
        .client
        .acquire_for_model(&provider, model.as_deref())
        .await
    {
        Ok(lease) => {
            let json = hold(&state, lease, provider, model)?;
            Ok(Json(serde_json::json!({ "lease": json })).into_response())
        }
        Err(error) => exhausted_or(error, &state),
    }
}

/// `POST /v1/leases/{id}/report`.
pub(super) async fn report(
    State(state): State<DataState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: ReportRequest = parse_json(&read_body(body)?)?;
    let reported = request.read().map_err(ApiError::bad_request)?;
    let answer = match (state.leases.take(&id), reported) {
        (Taken::Unknown, _) => return Err(unknown_lease()),
        (Taken::Live(held), Reported::Success) => {
            held.lease.succeeded();
            released()
        }
        (Taken::Expired(_), Reported::Success) => released(),
        (Taken::Live(held), Reported::Failure(failure)) => {
            let decision = state
                .client
                .decide(held.lease, failure)
                .await
                .map_err(ApiError::from)?;
            answer_of(&state, decision, held.provider, held.model)?
        }
        (Taken::Expired(tombstone), Reported::Failure(failure)) => {
            late_report(&state, tombstone, failure).await?
        }
    };
    Ok(Json(answer).into_response())
}

/// `DELETE /v1/leases/{id}`.
pub(super) async fn release(
    State(state): State<DataState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.leases.take(&id) {
        Taken::Live(held) => drop(held),
        Taken::Expired(_) => {}
        Taken::Unknown => return Err(unknown_lease()),
    }
    Ok(Json(serde_json::json!({ "released": true })).into_response())
}

fn unknown_lease() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_lease",
        "no such lease: never issued, or expired too long ago",
    )
}

fn released() -> ReportAnswer {
    ReportAnswer {
        classification: None,
        action: "released",
        lease: None,
        retry_after_ms: 0,
        next_available_at: None,
        causes: Default::default(),
    }
}

/// Holds `lease` in the table and renders it.
fn hold(
    state: &DataState,
    lease: Lease,
    provider: ProviderId,
    model: Option<String>,
) -> Result<LeaseJson, ApiError> {
    let credential = state.client.credential(&lease).map_err(ApiError::from)?;
    let (name, value) = credential.header().map_err(ApiError::from)?;
    let value = value.to_str().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "invalid_credential",
            format!("credential {} cannot be sent as a header", lease.entry_id()),
        )
    })?;
    let header = HeaderJson {
        name: name.as_str().to_owned(),
        value: value.to_owned(),
    };
    let entry = lease.entry_id().to_string();
    let label = lease.label().to_owned();
    let generation = lease.generation().0;
    let kind = match lease.credential_kind() {
        credpool::CredentialKind::ApiKey => "api_key",
        credpool::CredentialKind::OAuth => "oauth",
    };
    let base_url = lease.base_url().map(str::to_owned);
    let held = Held {
        lease,
        provider: provider.clone(),
        model,
    };
    let (id, expires_at) = state.leases.insert(held, state.clock.now());
    Ok(LeaseJson {
        id,
        provider: provider.as_str().to_owned(),
        entry,
        label,
        generation,
        kind,
        base_url,
        header,
        expires_at: expires_at.to_rfc3339(),
    })
}

/// Renders a decision, holding its lease.
fn answer_of(
    state: &DataState,
    decision: Decision,
    provider: ProviderId,
    model: Option<String>,
) -> Result<ReportAnswer, ApiError> {
    let lease = decision
        .lease
        .map(|lease| hold(state, lease, provider, model))
        .transpose()?;
    Ok(ReportAnswer {
        classification: Some(ClassificationJson::from(&decision.classification)),
        action: decision.verdict.name(),
        lease,
        retry_after_ms: u64::try_from(decision.retry_after.as_millis()).unwrap_or(u64::MAX),
        next_available_at: decision.next_available_at.map(Timestamp::to_rfc3339),
        causes: cause_names(&decision.causes),
    })
}

/// A failure reported on a lease that already expired (the entry went back to the pool).
/// A fresh lease decides: its entry with a newer token → retry with it (someone rotated the
/// token: no refresh, no cooldown); the same entry and token → the report is made with it, as
/// for a live lease; another entry → rotate to it (the expired lease's entry cannot be blamed
/// any more: report within the lease's life for that).
async fn late_report(
    state: &DataState,
    tombstone: Tombstone,
    failure: RequestFailure,
) -> Result<ReportAnswer, ApiError> {
    let provider = tombstone.provider.clone();
    let classification = state.client.classify(&provider, tombstone.kind, &failure);
    let fresh = match state
        .client
        .acquire_for_model(&provider, tombstone.model.as_deref())
        .await
    {
        Ok(fresh) => fresh,
        Err(ClientError::Exhausted {
            next_available_at,
            causes,
            ..
        }) => {
            return Ok(ReportAnswer {
                classification: Some(ClassificationJson::from(&classification)),
                action: Verdict::Wait.name(),
                lease: None,
                retry_after_ms: 0,
                next_available_at: next_available_at.map(Timestamp::to_rfc3339),
                causes: cause_names(&causes),
            });
        }
        Err(error) => return Err(error.into()),
    };
    if fresh.entry_id() == tombstone.entry && fresh.generation() == tombstone.generation {
        let decision = state
            .client
            .decide(fresh, failure)
            .await
            .map_err(ApiError::from)?;
        return answer_of(state, decision, provider, tombstone.model);
    }
    let verdict = if fresh.entry_id() == tombstone.entry {
        Verdict::Retry
    } else {
        Verdict::Rotate
    };
    let lease = hold(state, fresh, provider, tombstone.model)?;
    Ok(ReportAnswer {
        classification: Some(ClassificationJson::from(&classification)),
        action: verdict.name(),
        lease: Some(lease),
        retry_after_ms: 0,
        next_available_at: None,
        causes: Default::default(),
    })
}

/// The answer for a lease request the pool could not serve: `503` with `Retry-After` for an
/// exhausted pool, the API's error otherwise.
fn exhausted_or(error: ClientError, state: &DataState) -> Result<Response, ApiError> {
    let ClientError::Exhausted {
        provider,
        next_available_at,
        causes,
        ..
    } = error
    else {
        return Err(ApiError::from(error));
    };
    let body = serde_json::json!({
        "error": {
            "code": "exhausted",
            "message": format!("no available credentials for {provider}"),
            "next_available_at": next_available_at.map(Timestamp::to_rfc3339),
            "causes": cause_names(&causes),
        }
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    if let Some(at) = next_available_at {
        let wait_ms = at.0.saturating_sub(state.clock.now().0).max(0);
        let seconds = (wait_ms + 999) / 1000;
        if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    Ok(response)
}
