//! The line dashboard: a read-only web server over the unit database. Pages
//! rendered on the server (`pages`, `chart`), live updates by server-sent
//! events (`live`), a versioned JSON API (`api`), Prometheus metrics
//! (`metrics`), and the access token for anything but loopback (`token`).
//!
//! Read-only by construction: it only calls the store's read side
//! (`store::queries`). Every response carries a Content-Security-Policy that
//! allows only this server's own script, so even text that slipped past
//! escaping could not run. Errors shown to a client never name the database
//! (the log line does, redacted).
//!
//! Not here: the command line (`cli::dashboard_cmd`) or writing the
//! database (stations do).

mod api;
mod chart;
pub mod conn;
mod live;
pub mod metrics;
mod pages;
pub mod token;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::Markup;
use tokio::sync::watch;

use crate::mac::Mac;
use crate::store::queries::export::{CSV_HEADER, csv_record};
use crate::store::queries::when::parse_time;
use crate::store::queries::{MAX_PAGE, MetricsData, RunFilter};
use crate::store::{Store, StoreError};

pub use token::{Token, TokenError};

/// Rows per page of `/units`.
pub const PAGE_ROWS: i64 = 50;

/// The most rows a CSV download holds (a quality export of more uses
/// `flashline units export`).
pub const CSV_MAX_ROWS: i64 = 100_000;

/// How the dashboard serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Required from every request when set; must be set to listen on
    /// anything but loopback.
    pub token: Option<Token>,
    /// The shift shown on `/`: this many hours back from now.
    pub shift_hours: u32,
}

/// A dashboard that may not start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(
        "listening on {address} (not loopback) needs --token-file: anyone on that network could read the line's records"
    )]
    TokenRequired { address: SocketAddr },
    #[error("cannot listen on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
    #[error("the dashboard server stopped: {source}")]
    Serve { source: std::io::Error },
}

impl crate::failure::Classify for DashboardError {
    fn class(&self) -> crate::failure::FailureClass {
        match self {
            DashboardError::TokenRequired { .. } => crate::failure::FailureClass::Input,
            DashboardError::Bind { .. } | DashboardError::Serve { .. } => crate::failure::FailureClass::Environment,
        }
    }
}

/// Checks that `address` may be served with `config`, and binds it.
pub async fn bind(address: SocketAddr, config: &Config) -> Result<tokio::net::TcpListener, DashboardError> {
    if !address.ip().is_loopback() && config.token.is_none() {
        return Err(DashboardError::TokenRequired { address });
    }
    tokio::net::TcpListener::bind(address).await.map_err(|source| DashboardError::Bind { address, source })
}

/// How long a computed set of `/metrics` totals serves while the database
/// keeps changing: counting every run and step of a long history takes
/// a second on SQLite, and a scrape every few seconds must not repeat it.
pub const METRICS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// The state every handler shares.
#[derive(Clone)]
struct App {
    store: Store,
    config: Arc<Config>,
    changes: watch::Receiver<u64>,
    totals: Arc<tokio::sync::Mutex<Option<Totals>>>,
}

/// The expensive part of `/metrics` (run counts and step histograms), with
/// the change count it was read at.
struct Totals {
    changes: u64,
    at: std::time::Instant,
    data: MetricsData,
}

impl App {
    fn shift_start(&self, now_ms: i64) -> i64 {
        now_ms - i64::from(self.config.shift_hours) * 3_600_000
    }
}

/// Serves the dashboard on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DashboardError> {
    let (changes_tx, changes) = watch::channel(0u64);
    let (stop_tx, stop) = watch::channel(false);
    let follower = tokio::spawn(live::follow(store.clone(), changes_tx, stop));
    let app = App { store, config: Arc::new(config), changes, totals: Arc::default() };
    let served = conn::serve(listener, router(app), async move {
        shutdown.await;
        // Ends the poller, which drops the change sender, which ends
        // every open event stream: the graceful shutdown can finish.
        let _ = stop_tx.send(true);
    })
    .await;
    let _ = follower.await;
    served.map_err(|source| DashboardError::Serve { source })
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(line))
        .route("/units", get(units))
        .route("/units.csv", get(units_csv))
        .route("/units/{mac}", get(unit))
        .route("/events", get(events))
        .route("/metrics", get(metrics_text))
        .route("/api/v1", get(api::index))
        .route("/api/v1/stations", get(api::stations))
        .route("/api/v1/shift", get(api::shift))
        .route("/api/v1/failures", get(api::failures))
        .route("/api/v1/runs", get(api::runs))
        .route("/api/v1/units/{mac}", get(api::unit))
        .route("/login", get(login_form).post(login))
        .route("/static/style.css", get(style))
        .route("/static/live.js", get(script))
        .fallback(not_found)
        .layer(middleware::from_fn(conn::bounded_body))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Every request: the token when one is configured (the login form and
/// the style sheet excepted), then the headers that keep a browser safe.
async fn guard(State(app): State<App>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let open = path == "/login" || path == "/static/style.css";
    let mut response = match &app.config.token {
        Some(token) if !open && !token.presented_in(request.headers()) => {
            let wants_page = request.method() == Method::GET
                && !path.starts_with("/api/")
                && path != "/metrics"
                && path != "/events"
                && path != "/units.csv";
            let mut response = if wants_page {
                (StatusCode::UNAUTHORIZED, pages::login(false)).into_response()
            } else {
                (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({ "error": "this dashboard needs its token" })))
                    .into_response()
            };
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"flashline\""));
            response
        }
        _ => next.run(request).await,
    };
    let headers = response.headers_mut();
    let csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
               form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    headers.insert("content-security-policy", HeaderValue::from_static(csp));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Why a request got no data.
enum Fault {
    /// The database could not answer: logged (redacted), not shown.
    Store(StoreError),
    /// The request asked for something unreadable.
    Input(String),
}

impl From<StoreError> for Fault {
    fn from(error: StoreError) -> Fault {
        Fault::Store(error)
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        match self {
            Fault::Store(error) => {
                tracing::warn!("dashboard: {error}");
                let text = "the unit database cannot be read now; the server log says why";
                (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({ "error": text }))).into_response()
            }
            Fault::Input(text) => {
                (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({ "error": text }))).into_response()
            }
        }
    }
}

/// A page's fault as a page (the API's as JSON).
fn page_fault(fault: Fault) -> Response {
    match fault {
        Fault::Store(error) => {
            tracing::warn!("dashboard: {error}");
            let page = pages::message(
                "Database unavailable",
                "The unit database cannot be read now; the server log says why.",
            );
            (StatusCode::SERVICE_UNAVAILABLE, page).into_response()
        }
        Fault::Input(text) => (StatusCode::BAD_REQUEST, pages::message("Cannot show that", &text)).into_response(),
    }
}

/// The search form's fields as a filter, or what is wrong with one.
fn parse_search(search: &pages::Search) -> Result<RunFilter, String> {
    let now = crate::store::now_ms();
    let given = |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    let time = |value: &Option<String>| given(value).map(|text| parse_time(&text, now)).transpose();
    let filter = RunFilter {
        since_ms: time(&search.since).map_err(|e| e.to_string())?,
        until_ms: time(&search.until).map_err(|e| e.to_string())?,
        station: given(&search.station),
        outcome: given(&search.outcome),
        mac: given(&search.mac),
        serial: given(&search.serial),
    };
    filter.check().map_err(|e| e.to_string())?;
    Ok(filter)
}

/// What the dashboard makes of a request before it reads the store, for the
/// fuzz targets (not an API): the query string as axum's `Query` decodes it
/// for `/units`, `/units.csv`, `/api/runs`, `/api/shift` and
/// `/api/failures`, the search checked into a filter, the form page shown
/// with no rows, and whether `headers` present `token`. `None` when the
/// query is no URI's query (no request gets that far). Also returns the
/// query string the page links the next page with, and the page.
#[doc(hidden)]
pub fn read_request(
    query: &str,
    headers: &[(&[u8], &[u8])],
    token: &Token,
) -> Option<(Result<RunFilter, String>, String, String, bool)> {
    let uri: axum::http::Uri = format!("/units?{query}").parse().ok()?;
    let _ = Query::<api::RunsQuery>::try_from_uri(&uri);
    let _ = Query::<api::ShiftQuery>::try_from_uri(&uri);
    let _ = Query::<api::LimitQuery>::try_from_uri(&uri);
    let mut map = axum::http::HeaderMap::new();
    for (name, value) in headers {
        // hyper refuses a request whose header does not parse.
        if let (Ok(name), Ok(value)) =
            (axum::http::HeaderName::from_bytes(name), axum::http::HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    let presented = token.presented_in(&map);
    let Query(search) = Query::<pages::Search>::try_from_uri(&uri).ok()?;
    let page_number = search.page.unwrap_or(1).clamp(1, 1_000_000);
    let filter = parse_search(&search);
    let empty = crate::store::queries::RunPage { runs: Vec::new(), more: false };
    let page = pages::units(&search, &empty, page_number, filter.as_ref().err().map(String::as_str));
    Some((filter, search.query(Some(page_number)), page.into_string(), presented))
}

async fn line(State(app): State<App>) -> Response {
    let now = crate::store::now_ms();
    let read = async {
        let stations = app.store.stations(now).await?;
        let shift = app.store.shift(app.shift_start(now), now + 1).await?;
        let latest = app.store.runs(&RunFilter::default(), 10, 0).await?.runs;
        let failures = app.store.latest_failures(10).await?;
        Ok::<_, StoreError>(pages::line(&pages::LineView {
            stations: &stations,
            shift: &shift,
            latest: &latest,
            failures: &failures,
            now_ms: now,
        }))
    };
    match read.await {
        Ok(page) => page.into_response(),
        Err(error) => page_fault(Fault::Store(error)),
    }
}

async fn units(State(app): State<App>, Query(search): Query<pages::Search>) -> Response {
    let page_number = search.page.unwrap_or(1).clamp(1, 1_000_000);
    let filter = match parse_search(&search) {
        Ok(filter) => filter,
        // The form is shown again with the problem, and no rows.
        Err(problem) => {
            let empty = crate::store::queries::RunPage { runs: Vec::new(), more: false };
            return (StatusCode::BAD_REQUEST, pages::units(&search, &empty, page_number, Some(&problem)))
                .into_response();
        }
    };
    match app.store.runs(&filter, PAGE_ROWS, (page_number - 1) * PAGE_ROWS).await {
        Ok(page) => pages::units(&search, &page, page_number, None).into_response(),
        Err(error) => page_fault(Fault::Store(error)),
    }
}

async fn units_csv(State(app): State<App>, Query(search): Query<pages::Search>) -> Result<Response, Fault> {
    let filter = parse_search(&search).map_err(Fault::Input)?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(CSV_HEADER);
    for offset in (0..CSV_MAX_ROWS).step_by(MAX_PAGE as usize) {
        let page = app.store.runs(&filter, MAX_PAGE, offset).await?;
        for run in &page.runs {
            let _ = writer.write_record(csv_record(run));
        }
        if !page.more {
            break;
        }
    }
    let body = writer.into_inner().map_err(|error| Fault::Input(error.to_string()))?;
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
        (CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"units.csv\"")),
    ];
    Ok((headers, body).into_response())
}

async fn unit(State(app): State<App>, Path(mac): Path<String>) -> Response {
    let Some(mac) = Mac::parse_any_spelling(&mac) else {
        return page_fault(Fault::Input("That is not a MAC: give six hex pairs, e.g. 00:40:9D:3A:00:01.".to_string()));
    };
    match app.store.unit(&mac.to_string()).await {
        Ok(Some(history)) => pages::unit(&history).into_response(),
        Ok(None) => {
            (StatusCode::NOT_FOUND, pages::message("Unknown unit", &format!("Unit {mac} is not in the database.")))
                .into_response()
        }
        Err(error) => page_fault(Fault::Store(error)),
    }
}

async fn events(State(app): State<App>) -> Response {
    // From now on: a change before the stream opened is not announced.
    let mut changes = app.changes.clone();
    changes.mark_unchanged();
    live::events(changes).into_response()
}

/// The totals are read again when the database changed since they were
/// read, at most every [`METRICS_MAX_AGE`]; one read at a time (scrapes
/// arriving together wait for it). Stations and heartbeat ages are read
/// fresh for every scrape: a dead station changes nothing in the database,
/// and its growing heartbeat age is the alert.
async fn metrics_text(State(app): State<App>) -> Result<Response, Fault> {
    let now = crate::store::now_ms();
    let changes = *app.changes.borrow();
    let mut totals = app.totals.lock().await;
    let mut data = match totals.as_ref() {
        Some(kept) if kept.changes == changes || kept.at.elapsed() < METRICS_MAX_AGE => kept.data.clone(),
        _ => {
            let data = app.store.metrics().await?;
            *totals = Some(Totals { changes, at: std::time::Instant::now(), data: data.clone() });
            data
        }
    };
    drop(totals);
    data.stations = app.store.stations(now).await?;
    Ok(([(CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE))], metrics::render(&data)).into_response())
}

async fn login_form() -> Markup {
    pages::login(false)
}

#[derive(Debug, serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(app): State<App>, Form(form): Form<LoginForm>) -> Response {
    match &app.config.token {
        Some(token) if token.matches(form.token.trim()) => {
            let cookie = HeaderValue::from_str(&token.cookie()).unwrap_or(HeaderValue::from_static(""));
            (StatusCode::SEE_OTHER, [(SET_COOKIE, cookie), (LOCATION, HeaderValue::from_static("/"))]).into_response()
        }
        Some(_) => {
            // A wrong guess costs time: a token is not found by trying.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            (StatusCode::UNAUTHORIZED, pages::login(true)).into_response()
        }
        None => (StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_static("/"))]).into_response(),
    }
}

async fn style() -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
        (CACHE_CONTROL, HeaderValue::from_static("max-age=300")),
    ];
    (headers, include_str!("static/style.css")).into_response()
}

async fn script() -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
        (CACHE_CONTROL, HeaderValue::from_static("max-age=300")),
    ];
    (headers, include_str!("static/live.js")).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, pages::message("Not found", "There is no such page.")).into_response()
}
