//! The HTTP API: every route and the role it needs in one table
//! ([`ROUTES`]), the middleware that enforces it (token, role, request
//! rate), and the handlers. Errors are JSON `{"error": "..."}` with the
//! status the [`Error`] maps to.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::auth::{Identity, Role, Verifier};
use super::commit::GroupCommit;
use super::document::{JobDocument, JobResult};
use super::limits::{RateLimiter, RoleLimits};
use super::runner::Runner;
use super::store::{AuditEntry, JobStatus, JobStore, SubjectUploads};
use crate::power::PowerState;
use crate::{Error, Runtime};

/// One route of the API: the least role that may call it (`None`: no
/// token needed), what it takes and answers (a schema of the OpenAPI
/// document, or `text`, `bytes`, `events`, `object`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub role: Option<Role>,
    pub body: Option<&'static str>,
    pub answer: &'static str,
    pub what: &'static str,
}

const fn route(
    method: &'static str,
    path: &'static str,
    role: Option<Role>,
    body: Option<&'static str>,
    answer: &'static str,
    what: &'static str,
) -> Route {
    Route {
        method,
        path,
        role,
        body,
        answer,
        what,
    }
}

/// Every route. The router serves the same paths, the middleware refuses
/// a request whose route is not here, and the OpenAPI document
/// (`/v1/openapi.json`) is made from it.
pub const ROUTES: &[Route] = &[
    route("GET", "/healthz", None, None, "text", "the process is up"),
    route(
        "GET",
        "/readyz",
        None,
        None,
        "text",
        "jobs are being taken (503 while draining)",
    ),
    route(
        "GET",
        "/v1/openapi.json",
        None,
        None,
        "object",
        "this API as an OpenAPI 3.1 document",
    ),
    route(
        "GET",
        "/metrics",
        Some(Role::Viewer),
        None,
        "text",
        "Prometheus metrics of the runtime",
    ),
    route(
        "GET",
        "/v1/units",
        Some(Role::Viewer),
        None,
        "Units",
        "the processing units and their state",
    ),
    route(
        "POST",
        "/v1/jobs",
        Some(Role::Submitter),
        Some("JobDocument"),
        "JobStatus",
        "submit a job document (202; Idempotency-Key header)",
    ),
    route(
        "GET",
        "/v1/jobs",
        Some(Role::Viewer),
        None,
        "JobList",
        "your jobs (?all=true: everyone's, operator)",
    ),
    route(
        "GET",
        "/v1/jobs/{id}",
        Some(Role::Viewer),
        None,
        "JobStatus",
        "a job's status (yours, or any for operators)",
    ),
    route(
        "GET",
        "/v1/jobs/{id}/results",
        Some(Role::Submitter),
        None,
        "Results",
        "your finished job's results as JSON (?data=false: names, dtypes, shapes)",
    ),
    route(
        "GET",
        "/v1/jobs/{id}/results/{name}",
        Some(Role::Submitter),
        None,
        "bytes",
        "one result's raw bytes (X-Xpu-Dtype, X-Xpu-Shape)",
    ),
    route(
        "GET",
        "/v1/jobs/{id}/events",
        Some(Role::Viewer),
        None,
        "events",
        "a job's progress as server-sent events until it ends",
    ),
    route(
        "POST",
        "/v1/jobs/{id}/cancel",
        Some(Role::Submitter),
        None,
        "JobStatus",
        "cancel your job (operators: any job)",
    ),
    route(
        "GET",
        "/v1/kernels",
        Some(Role::Viewer),
        None,
        "Kernels",
        "the kernels jobs may name: built in, and registered by admins",
    ),
    route(
        "PUT",
        "/v1/kernels/{name}",
        Some(Role::Admin),
        Some("KernelRegistration"),
        "Kernels",
        "register a kernel name for a built-in kernel's spec (a preset: parameters, never code)",
    ),
    route(
        "POST",
        "/v1/uploads",
        Some(Role::Submitter),
        Some("bytes"),
        "Upload",
        "upload a tensor's bytes (application/octet-stream, streamed to disk; at most max_tensor_bytes) for jobs to name",
    ),
    route(
        "PUT",
        "/v1/units/{unit}/power",
        Some(Role::Operator),
        Some("PowerRequest"),
        "UnitAnswer",
        "put a unit in a power state (low-power, normal, high-performance); its worker applies it between two tasks",
    ),
    route(
        "POST",
        "/v1/drain",
        Some(Role::Operator),
        None,
        "object",
        "stop taking queued jobs; running ones finish",
    ),
    route(
        "GET",
        "/v1/settings",
        Some(Role::Admin),
        None,
        "Settings",
        "the limits of every role",
    ),
    route(
        "PUT",
        "/v1/settings",
        Some(Role::Admin),
        Some("Settings"),
        "Settings",
        "replace the limits of every role",
    ),
    route(
        "GET",
        "/v1/audit",
        Some(Role::Admin),
        None,
        "AuditLog",
        "the audit log, newest first (?limit=N)",
    ),
];

/// An error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorAnswer {
    pub error: String,
}

/// A unit as `GET /v1/units` lists it.
#[derive(Serialize, ToSchema)]
pub struct UnitAnswer {
    pub id: usize,
    pub kind: String,
    pub backend: String,
    pub device: String,
    pub emulated: bool,
    pub node: usize,
    pub memory_bytes: usize,
    pub in_service: bool,
    pub down_reason: Option<String>,
    /// Its power state: low-power, normal or high-performance.
    pub power: String,
    /// Joules it used since the server started.
    pub energy_joules: f64,
    /// Whether that figure is `measured` or `modelled`.
    pub energy_source: String,
}

/// `PUT /v1/units/{unit}/power`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerRequest {
    /// low-power, normal or high-performance.
    pub state: String,
}

/// `GET /v1/units`.
#[derive(Serialize, ToSchema)]
pub struct Units {
    pub units: Vec<UnitAnswer>,
    pub policy: String,
}

/// `GET /v1/jobs`.
#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobStatus>,
}

/// One result; `data` (every element, row-major) unless `?data=false`.
#[derive(Serialize, ToSchema)]
pub struct ResultAnswer {
    pub name: String,
    #[schema(value_type = String, example = "f32")]
    pub dtype: crate::DType,
    pub shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<f64>>,
}

/// `GET /v1/jobs/{id}/results`.
#[derive(Serialize, ToSchema)]
pub struct Results {
    pub id: String,
    pub results: Vec<ResultAnswer>,
}

/// `GET` and `PUT /v1/settings`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Settings {
    pub limits: RoleLimits,
}

/// `POST /v1/uploads`: the id a tensor names as `"upload"`.
#[derive(Serialize, ToSchema)]
pub struct Upload {
    pub upload: String,
    pub bytes: u64,
}

/// `PUT /v1/kernels/{name}`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct KernelRegistration {
    /// A built-in kernel's spec, e.g. `{"name": "gemm", "alpha": 2}`.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
}

/// `GET /v1/kernels`.
#[derive(Serialize, ToSchema)]
pub struct Kernels {
    pub built_in: Vec<String>,
    /// Registered names and the spec each stands for.
    #[schema(value_type = Object)]
    pub registered: serde_json::Map<String, serde_json::Value>,
}

/// `GET /v1/audit`.
#[derive(Serialize, ToSchema)]
pub struct AuditLog {
    pub audit: Vec<AuditEntry>,
}

/// What every handler shares.
pub(crate) struct AppState {
    pub rt: Arc<Runtime>,
    pub store: Arc<JobStore>,
    /// Writes submitted jobs to `store`, in groups.
    pub commit: GroupCommit,
    pub runner: Arc<Runner>,
    pub verifier: Verifier,
    pub limits: Arc<RwLock<RoleLimits>>,
    /// Kernel names registered by admins and the spec each stands for (a
    /// copy of the queue file's, which keeps them across restarts).
    pub kernels: RwLock<serde_json::Map<String, serde_json::Value>>,
    pub rate: RateLimiter,
}

type Shared = State<Arc<AppState>>;

/// An error as an HTTP answer: a status and a message.
pub(crate) struct ApiError(StatusCode, String);

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError(status_of(&e), e.to_string())
    }
}

/// A body that is not JSON, not the expected shape, or too large: the
/// status axum chose (400, 413, 415 or 422) and what it found.
impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        ApiError(r.status(), r.body_text())
    }
}

/// The HTTP status an error answers with.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden { .. } => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::LimitExceeded { limit, .. } => match *limit {
            "max_tensor_bytes" | "max_job_bytes" => StatusCode::PAYLOAD_TOO_LARGE,
            "max_tasks" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::TOO_MANY_REQUESTS,
        },
        Error::JobDocument { .. }
        | Error::KernelSpec { .. }
        | Error::ArgCount { .. }
        | Error::Shape { .. }
        | Error::DType { .. }
        | Error::AccessMode { .. }
        | Error::UnknownUnit(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Config(_) => StatusCode::BAD_REQUEST,
        Error::ShutDown => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_response(status: StatusCode, message: String) -> Response {
    let mut response = (status, Json(ErrorAnswer { error: message })).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"xpu\""),
        );
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.0, self.1)
    }
}

type Answer = Result<Response, ApiError>;

/// The router of every route in [`ROUTES`], behind the middleware; a
/// request not answered within `request_timeout` (a body that trickles
/// in, say) is answered 408.
pub(crate) fn router(
    state: Arc<AppState>,
    max_body: usize,
    request_timeout: std::time::Duration,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/v1/units", get(units))
        .route("/v1/jobs", post(submit).get(list))
        .route("/v1/jobs/{id}", get(status))
        .route("/v1/jobs/{id}/results", get(results))
        .route("/v1/jobs/{id}/results/{name}", get(result_bytes))
        .route("/v1/jobs/{id}/events", get(events))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/kernels", get(kernels))
        .route("/v1/kernels/{name}", axum::routing::put(register_kernel))
        .route("/v1/uploads", post(upload))
        .route("/v1/units/{unit}/power", axum::routing::put(set_power))
        .route("/v1/drain", post(drain))
        .route("/v1/settings", get(settings).put(set_settings))
        .route("/v1/audit", get(audit))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .fallback(|| async {
            error_response(
                StatusCode::NOT_FOUND,
                "no such route (see ROUTES in the docs)".into(),
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| async move {
                match tokio::time::timeout(request_timeout, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => error_response(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the request took longer than {:.1} s (request_timeout)",
                            request_timeout.as_secs_f64()
                        ),
                    ),
                }
            },
        ))
        .with_state(state)
}

/// Checks the token, the role the route needs and the request rate, and
/// hands the identity to the handler.
async fn authorize(
    State(s): Shared,
    matched: MatchedPath,
    method: Method,
    mut request: Request,
    next: Next,
) -> Response {
    let on_path: Vec<&Route> = ROUTES
        .iter()
        .filter(|r| r.path == matched.as_str())
        .collect();
    if on_path.is_empty() {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "{} is served but missing from the route table",
                matched.as_str()
            ),
        );
    }
    let Some(route) = on_path.iter().find(|r| r.method == method.as_str()) else {
        let methods: Vec<&str> = on_path.iter().map(|r| r.method).collect();
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{method} {}: this route takes {}",
                matched.as_str(),
                methods.join(", ")
            ),
        );
    };
    let Some(needs) = route.role else {
        return next.run(request).await;
    };
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let who = match s.verifier.verify(authorization) {
        Ok(who) => who,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if who.role < needs {
        return ApiError::from(Error::Forbidden {
            needs: needs.to_string(),
            has: who.role.to_string(),
        })
        .into_response();
    }
    let limits = s.limits.read().of(who.role).clone();
    if let Err(e) = s.rate.admit(&who.subject, &limits) {
        return ApiError::from(e).into_response();
    }
    request.extensions_mut().insert(who);
    next.run(request).await
}

async fn ready(State(s): Shared) -> Response {
    if s.runner.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

async fn openapi() -> Response {
    Json(super::openapi::document()).into_response()
}

async fn metrics(State(s): Shared) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.rt.metrics(),
    )
        .into_response()
}

/// Every unit as the API lists it.
fn unit_answers(rt: &Runtime) -> Vec<UnitAnswer> {
    let energy = rt.energy();
    rt.units()
        .iter()
        .zip(energy.units)
        .map(|(u, e)| UnitAnswer {
            id: u.id,
            kind: u.kind.to_string(),
            backend: u.backend.clone(),
            device: u.device.clone(),
            emulated: u.emulated,
            node: u.node,
            memory_bytes: u.memory_bytes,
            in_service: !u.is_down(),
            down_reason: u.down_reason(),
            power: rt.power_state(u.id).unwrap_or(e.state).to_string(),
            energy_joules: e.joules(),
            energy_source: e.source.as_str().to_string(),
        })
        .collect()
}

async fn units(State(s): Shared) -> Response {
    Json(Units {
        units: unit_answers(&s.rt),
        policy: s.rt.policy().as_str().to_string(),
    })
    .into_response()
}

async fn set_power(
    State(s): Shared,
    Extension(who): Extension<Identity>,
    Path(unit): Path<String>,
    body: Result<Json<PowerRequest>, JsonRejection>,
) -> Answer {
    let Json(PowerRequest { state }) = body?;
    let id: usize = unit
        .parse()
        .map_err(|_| Error::UnknownUnit(format!("`{unit}` is not a unit id")))?;
    let state = PowerState::parse(&state).map_err(|e| Error::JobDocument {
        field: "state".into(),
        what: e.to_string(),
    })?;
    s.rt.set_power_state(id, state)?;
    s.store
        .audit(&who, "power", None, &format!("unit {id}: {state}"))?;
    let answer = unit_answers(&s.rt).into_iter().nth(id);
    Ok(Json(answer).into_response())
}

async fn submit(
    State(s): Shared,
    Extension(who): Extension<Identity>,
    headers: HeaderMap,
    body: Result<Json<JobDocument>, JsonRejection>,
) -> Answer {
    if s.runner.is_draining() {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is draining: it takes no new jobs".into(),
        ));
    }
    let Json(mut doc) = body?;
    doc.expand_kernels(&|name| s.kernels.read().get(name).cloned());
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .ok_or_else(|| Error::JobDocument {
                    field: "Idempotency-Key".into(),
                    what: "must be 1 to 200 visible ASCII characters".into(),
                })?
                .to_string(),
        ),
    };
    let limits = s.limits.read().of(who.role).clone();
    let uploads = SubjectUploads {
        store: &s.store,
        subject: &who.subject,
    };
    let checked = doc.check(&s.rt, &limits, &uploads)?;
    let text = serde_json::to_string(&doc).map_err(|e| Error::Io(e.to_string()))?;
    let (job, new) = s
        .commit
        .submit(&who, key.as_deref(), text, checked.tasks, &limits)
        .await?;
    if new {
        s.runner.wake();
    }
    let code = if new {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let location = format!("/v1/jobs/{}", job.id);
    let mut response = (code, Json(job)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// A job `who` may see: their own, or any for operators. Another's job is
/// "not found", so that ids do not leak.
fn visible(s: &AppState, who: &Identity, id: &str) -> Result<JobStatus, ApiError> {
    // Progress first: the runner commits a job's end before it forgets
    // its progress, so a job gone from the runner is final in the store.
    let live = s.runner.progress(id);
    let mut job = s
        .store
        .status(id)?
        .filter(|j| j.subject == who.subject || who.role >= Role::Operator)
        .ok_or_else(|| Error::NotFound(format!("job {id}")))?;
    if let (false, Some(done)) = (job.state.is_final(), live) {
        job.tasks_done = job.tasks_done.max(done);
    }
    Ok(job)
}

/// A job of `who`'s own that has succeeded (results are only ever its
/// owner's).
fn own_finished(s: &AppState, who: &Identity, id: &str) -> Result<JobStatus, ApiError> {
    let job = s
        .store
        .status(id)?
        .filter(|j| j.subject == who.subject)
        .ok_or_else(|| Error::NotFound(format!("job {id}")))?;
    match job.state {
        super::store::JobState::Succeeded => Ok(job),
        state => Err(Error::Conflict(format!(
            "job {id} is {}{}: it has no results",
            serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            job.error.map(|e| format!(" ({e})")).unwrap_or_default()
        ))
        .into()),
    }
}

async fn status(
    State(s): Shared,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Answer {
    Ok(Json(visible(&s, &who, &id)?).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
    #[serde(default = "default_list_limit")]
    limit: usize,
}

fn default_list_limit() -> usize {
    100
}

async fn list(
    State(s): Shared,
    Extension(who): Extension<Identity>,
    Query(q): Query<ListQuery>,
) -> Answer {
    if q.all && who.role < Role::Operator {
        return Err(Error::Forbidden {
            needs: Role::Operator.to_string(),
            has: who.role.to_string(),
        }
        .into());
    }
    let subject = (!q.all).then_some(who.subject.as_str());
    let mut jobs = s.store.list(subject, q.limit.min(10_000))?;
    for job in &mut jobs {
        if let Some(done) = s.runner.progress(&job.id) {
            job.tasks_done = done;
        }
    }
    Ok(Json(JobList { jobs }).into_response())
}

fn result_answer(r: &JobResult, data: bool) -> ResultAnswer {
    ResultAnswer {
        name: r.name.clone(),
        dtype: r.dtype,
        shape: r.shape.clone(),
        data: data.then(|| r.values()),
    }
}

#[derive(Deserialize)]
struct ResultsQuery {
    /// With `false`, only each result's name, dtype and shape (fetch the
    /// bytes from `results/{name}`).
    #[serde(default = "yes")]
    data: bool,
}

fn yes() -> bool {
    true
}

async fn results(
    State(s): Shared,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> Answer {
    own_finished(&s, &who, &id)?;
    let results = s.store.results(&id)?;
    if q.data {
        s.store.audit(&who, "read", Some(&id), "results")?;
    }
    let results = results.iter().map(|r| result_answer(r, q.data)).collect();
    Ok(Json(Results { id, results }).into_response())
}

async fn result_bytes(
    State(s): Shared,
    Extension(who): Extension<Identity>,
    Path((id, name)): Path<(String, String)>,
) -> Answer {
    own_finished(&s, &who, &id)?;
    let result = s
        .store
        .results(&id)?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| Error::NotFound(format!("result {name:?} of job {id}")))?;
    s.store
        .audit(&who, "read", Some(&id), &format!("result {name}"))?;
    let shape: Vec<String> = result.shape.iter().map(usize::to_string).collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::HeaderName::from_static("x-xpu-dtype"),
                result.dtype.to_string(),
            ),
            (
                header::HeaderName::from_static("x-xpu-shape"),
                shape.join(","),
            ),
        ],
        Body::from(result.bytes),
    )
        .into_response())
}

/// How often a progress stream looks at its job.
const EVENT_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// `progress` events (the status, each time it changes) and a last `end`
/// event with the final status.
async fn events(
    State(s): Shared,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Answer {
    visible(&s, &who, &id)?;
    let stream = futures_util::stream::unfold(
        (s, who, id, None::<JobStatus>, false),
        |(s, who, id, last, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let status = match visible(&s, &who, &id) {
                    Ok(status) => status,
                    Err(ApiError(_, message)) => {
                        let event = Event::default().event("error").data(message);
                        return Some((Ok(event), (s, who, id, last, true)));
                    }
                };
                if last.as_ref() != Some(&status) {
                    let end = status.state.is_final();
                    let event = Event::default()
                        .event(if end { "end" } else { "progress" })
                        .json_data(&status)
                        .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()));
                    return Some((
                        Ok::<Event, std::convert::Infallible>(event),
                        (s, who, id, Some(status), end),
                    ));
                }
                tokio::time::sleep(EVENT_POLL).await;
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn cancel(
    State(s): Shared,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Answer {
    let job = visible(&s, &who, &id)?;
    if job.subject != who.subject && who.role < Role::Operator {
        return Err(Error::NotFound(format!("job {id}")).into());
    }
    if job.state.is_final() {
        return Err(Error::Conflict(format!("job {id} has already ended")).into());
    }
    if !s
        .runner
        .cancel(&id, &format!("cancelled by {}", who.subject))?
    {
        return Err(Error::Conflict(format!("job {id} has already ended")).into());
    }
    s.store.audit(&who, "cancel", Some(&id), "")?;
    Ok((StatusCode::ACCEPTED, Json(visible(&s, &who, &id)?)).into_response())
}

/// Streams the body to a file under the queue's directory, never holding
/// it whole, and stops at the role's `max_tensor_bytes`.
async fn upload(
    State(s): Shared,
    Extension(who): Extension<Identity>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/octet-stream" {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("an upload is application/octet-stream, not {content_type:?}"),
        ));
    }
    let limits = s.limits.read().of(who.role).clone();
    let dir = s.store.upload_dir();
    let io = |e: std::io::Error| Error::Io(format!("upload into {}: {e}", dir.display()));
    tokio::fs::create_dir_all(&dir).await.map_err(io)?;
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).map_err(|e| Error::Io(format!("no random bytes: {e}")))?;
    let part = dir.join(format!(
        ".part-{}",
        raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let mut file = tokio::fs::File::create(&part).await.map_err(io)?;
    let mut stream = body.into_data_stream();
    let mut bytes: u64 = 0;
    let outcome: Result<(), ApiError> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError(StatusCode::BAD_REQUEST, format!("reading the upload: {e}"))
            })?;
            bytes += chunk.len() as u64;
            limits.check_tensor_bytes(bytes)?;
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = outcome {
        tokio::fs::remove_file(&part).await.ok();
        return Err(e);
    }
    let id = s.store.add_upload(&who, &part, bytes)?;
    Ok((StatusCode::CREATED, Json(Upload { upload: id, bytes })).into_response())
}

async fn kernels(State(s): Shared) -> Answer {
    Ok(Json(Kernels {
        built_in: crate::kernel::spec_names()
            .into_iter()
            .map(str::to_string)
            .collect(),
        registered: s.kernels.read().clone(),
    })
    .into_response())
}

/// Registers a name for a built-in kernel's spec, checked first; a
/// built-in name cannot be taken.
async fn register_kernel(
    State(s): Shared,
    Extension(who): Extension<Identity>,
    Path(name): Path<String>,
    body: Result<Json<KernelRegistration>, JsonRejection>,
) -> Answer {
    let Json(KernelRegistration { spec }) = body?;
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(Error::Config(format!(
            "kernel name {name:?}: use 1 to 64 letters, digits or `_`"
        ))
        .into());
    }
    if crate::kernel::spec_names().contains(&name.as_str()) {
        return Err(Error::Conflict(format!("`{name}` is a built-in kernel")).into());
    }
    crate::Kernel::from_spec(&spec).map_err(|e| Error::JobDocument {
        field: "spec".into(),
        what: e.to_string(),
    })?;
    s.store.set_kernel(&who, &name, &spec)?;
    s.kernels.write().insert(name, spec);
    kernels(State(s)).await
}

async fn drain(State(s): Shared, Extension(who): Extension<Identity>) -> Answer {
    s.runner.drain();
    s.store.audit(&who, "drain", None, "")?;
    Ok(Json(json!({ "draining": true, "running": s.runner.running() })).into_response())
}

async fn settings(State(s): Shared) -> Answer {
    Ok(Json(Settings {
        limits: s.limits.read().clone(),
    })
    .into_response())
}

async fn set_settings(
    State(s): Shared,
    Extension(who): Extension<Identity>,
    body: Result<Json<Settings>, JsonRejection>,
) -> Answer {
    let Json(Settings { limits }) = body?;
    let text = serde_json::to_string(&limits).map_err(|e| Error::Io(e.to_string()))?;
    *s.limits.write() = limits.named();
    s.store.audit(&who, "settings", None, &text)?;
    settings(State(s)).await
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default = "default_list_limit")]
    limit: usize,
}

async fn audit(State(s): Shared, Query(q): Query<AuditQuery>) -> Answer {
    Ok(Json(AuditLog {
        audit: s.store.audit_log(q.limit.min(10_000))?,
    })
    .into_response())
}
