//! The routes over pools and entries: each one a call of one admin operation.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use credpool::admin::{Add, Move, Refresh, Remove, Reset, SetStrategy, Snapshot, Stats};
use credpool::{ProviderId, Target};

use super::ApiState;
use super::error::ApiError;
use super::requests::{
    AddEntryRequest, MoveRequest, StrategyRequest, parse_json, parse_strategy, read_body,
};

pub(super) async fn list_providers(State(state): State<ApiState>) -> Result<Response, ApiError> {
    Ok(Json(state.admin.list_providers().await?).into_response())
}

pub(super) async fn status(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let providers = state.admin.list_providers().await?;
    let mut snapshots = Vec::with_capacity(providers.len());
    for summary in &providers {
        snapshots.push(state.admin.run(&summary.provider, Snapshot).await?);
    }
    Ok(Json(snapshots).into_response())
}

pub(super) async fn all_stats(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let providers = state.admin.list_providers().await?;
    let mut pools = Vec::with_capacity(providers.len());
    for summary in &providers {
        pools.push(state.admin.run(&summary.provider, Stats).await?);
    }
    let refresher = state
        .refresher
        .stats()
        .await
        .map_err(|error| ApiError::unavailable(error.to_string()))?;
    Ok(Json(serde_json::json!({ "pools": pools, "refresher": refresher })).into_response())
}

pub(super) async fn snapshot(
    State(state): State<ApiState>,
    Path(provider): Path<String>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    Ok(Json(state.admin.run(&provider, Snapshot).await?).into_response())
}

pub(super) async fn entry(
    State(state): State<ApiState>,
    Path((provider, target)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    let snapshot = state.admin.run(&provider, Snapshot).await?;
    let entry = snapshot.resolve(&Target(target))?;
    Ok(Json(entry).into_response())
}

pub(super) async fn add(
    State(state): State<ApiState>,
    Path(provider): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    let request: AddEntryRequest = parse_json(&read_body(body)?)?;
    let spec = state.providers.get(&provider);
    let entry = request
        .into_entry(
            state.clock.as_ref(),
            spec.as_ref(),
            state.allow_insecure_loopback,
        )
        .map_err(ApiError::bad_request)?;
    let view = state.admin.run(&provider, Add(entry)).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub(super) async fn remove(
    State(state): State<ApiState>,
    Path((provider, target)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    Ok(Json(state.admin.run(&provider, Remove(Target(target))).await?).into_response())
}

pub(super) async fn reset(
    State(state): State<ApiState>,
    Path((provider, target)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    Ok(Json(state.admin.run(&provider, Reset(Target(target))).await?).into_response())
}

pub(super) async fn refresh(
    State(state): State<ApiState>,
    Path((provider, target)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    Ok(Json(state.admin.run(&provider, Refresh(Target(target))).await?).into_response())
}

pub(super) async fn move_entry(
    State(state): State<ApiState>,
    Path((provider, target)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    let request: MoveRequest = parse_json(&read_body(body)?)?;
    let operation = Move {
        target: Target(target),
        position: request.position,
    };
    Ok(Json(state.admin.run(&provider, operation).await?).into_response())
}

pub(super) async fn strategy(
    State(state): State<ApiState>,
    Path(provider): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    let request: StrategyRequest = parse_json(&read_body(body)?)?;
    let strategy = parse_strategy(&request.strategy).map_err(ApiError::bad_request)?;
    state.admin.run(&provider, SetStrategy(strategy)).await?;
    Ok(Json(serde_json::json!({ "provider": provider, "strategy": strategy })).into_response())
}

pub(super) async fn stats(
    State(state): State<ApiState>,
    Path(provider): Path<String>,
) -> Result<Response, ApiError> {
    let provider = ProviderId::new(&provider);
    Ok(Json(state.admin.run(&provider, Stats).await?).into_response())
}
