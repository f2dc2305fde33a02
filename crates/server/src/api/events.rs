//! `GET /v1/events`: the pools' events as server-sent events, with `id:` lines so that a
//! client that reconnects with `Last-Event-ID` gets what it missed (from each pool's history
//! of its last `EVENT_HISTORY` events). Without `?provider=`, pools started after the
//! subscription are followed too.
//!
//! **Invariant:** a stream ends when the service starts shutting down, so a graceful stop
//! never waits on a subscriber.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use credpool::{EventRecord, EventStream, ProviderId};
use futures::stream::{self, StreamExt};
use serde::Deserialize;

use super::ApiState;
use super::error::ApiError;

/// Events buffered for one subscriber before it is told it lagged.
const EVENT_BUFFER: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    provider: Option<String>,
}

fn sse_event(record: &EventRecord) -> Event {
    let value = serde_json::to_value(record).unwrap_or(serde_json::Value::Null);
    let name = value
        .get("event")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("event")
        .to_owned();
    Event::default()
        .id(record.id.to_string())
        .event(name)
        .data(value.to_string())
}

/// The event id a reconnecting client names, if any.
fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse().ok())
}

pub(super) async fn events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|error| ApiError::bad_request(error.body_text()))?;
    let since = last_event_id(&headers);
    let (subscription, providers): (EventStream, Vec<String>) = match query.provider {
        Some(provider) => {
            let provider = ProviderId::new(&provider);
            let stream = state
                .admin
                .subscribe(&provider, EVENT_BUFFER, since)
                .await?;
            (stream, vec![provider.to_string()])
        }
        None => {
            let stream = state.admin.subscribe_all(EVENT_BUFFER, since).await?;
            (stream, Vec::new())
        }
    };
    let hello = Event::default().event("subscribed").data(
        serde_json::json!({ "event": "subscribed", "providers": providers, "since": since })
            .to_string(),
    );
    let mut shutdown = state.shutdown.clone();
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    let records = stream::unfold(subscription, |mut subscription| async move {
        subscription
            .recv()
            .await
            .map(|record| (record, subscription))
    });
    let events = stream::once(async move { hello })
        .chain(records.map(|record| sse_event(&record)))
        .chain(stream::pending())
        .map(Ok::<_, Infallible>)
        .take_until(stopping);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
