//! The machine interface, `/api/v1/...`: the same data as the pages, as
//! JSON, for an MES. Version 1 only grows: fields are added, never renamed
//! or removed; a breaking change would be `/api/v2`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{App, Fault, parse_search};
use crate::mac::Mac;
use crate::store::queries::MAX_PAGE;

/// `/api/v1`: what this API offers.
pub async fn index() -> Json<serde_json::Value> {
    Json(json!({
        "api": "flashline dashboard",
        "version": 1,
        "endpoints": {
            "/api/v1/stations": "stations with heartbeat age, status and fixtures",
            "/api/v1/shift": "the shift's counts, total and per hour (?since=T, default the last shift)",
            "/api/v1/failures": "the latest failed or interrupted runs (?limit=N, default 20)",
            "/api/v1/runs": "runs, newest first (?mac=&serial=&station=&outcome=&since=&until=&limit=&offset=)",
            "/api/v1/units/{mac}": "one unit: every run with steps and images",
        },
        "times": "milliseconds since the Unix epoch, UTC",
    }))
}

pub async fn stations(State(app): State<App>) -> Result<Response, Fault> {
    Ok(Json(app.store.stations(crate::store::now_ms()).await?).into_response())
}

#[derive(Debug, serde::Deserialize)]
pub struct ShiftQuery {
    since: Option<String>,
}

pub async fn shift(State(app): State<App>, Query(query): Query<ShiftQuery>) -> Result<Response, Fault> {
    let now = crate::store::now_ms();
    let since = match &query.since {
        Some(text) => crate::store::queries::when::parse_time(text, now).map_err(|e| Fault::Input(e.to_string()))?,
        None => app.shift_start(now),
    };
    Ok(Json(app.store.shift(since, now + 1).await?).into_response())
}

#[derive(Debug, serde::Deserialize)]
pub struct LimitQuery {
    limit: Option<i64>,
}

pub async fn failures(State(app): State<App>, Query(query): Query<LimitQuery>) -> Result<Response, Fault> {
    Ok(Json(app.store.latest_failures(query.limit.unwrap_or(20)).await?).into_response())
}

#[derive(Debug, serde::Deserialize)]
pub struct RunsQuery {
    #[serde(flatten)]
    search: super::pages::Search,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn runs(State(app): State<App>, Query(query): Query<RunsQuery>) -> Result<Response, Fault> {
    let filter = parse_search(&query.search).map_err(Fault::Input)?;
    let page =
        app.store.runs(&filter, query.limit.unwrap_or(100).clamp(1, MAX_PAGE), query.offset.unwrap_or(0)).await?;
    Ok(Json(page).into_response())
}

pub async fn unit(State(app): State<App>, Path(mac): Path<String>) -> Result<Response, Fault> {
    let mac = Mac::parse_any_spelling(&mac).ok_or_else(|| Fault::Input("not a MAC: give six hex pairs".to_string()))?;
    match app.store.unit(&mac.to_string()).await? {
        Some(history) => Ok(Json(history).into_response()),
        None => Ok((StatusCode::NOT_FOUND, Json(json!({ "error": format!("unit {mac} is not in the database") })))
            .into_response()),
    }
}
