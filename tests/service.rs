//! The job service through real HTTP on loopback: tokens, roles on every
//! route, jobs and their results against a reference, isolation between
//! subjects, idempotency, limits, hostile requests, and restarts (in
//! process, and `kill -9` of `xpu serve` under load).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{json, Value};
use xpu::service::{
    Client, Issuer, JobDocument, JobState, Role, RoleLimits, ServeConfig, Server, Verifier, ROUTES,
};
use xpu::Runtime;

const SECRET: &[u8] = b"the secret of the service tests, 32+ bytes";
const WAIT: Duration = Duration::from_secs(60);

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xpu-service-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn runtime() -> Arc<Runtime> {
    Arc::new(Runtime::builder().device_discovery(false).build().unwrap())
}

/// A server on any free loopback port with HS256 tokens of [`SECRET`].
fn config(db: &Path) -> ServeConfig {
    let verifier = Verifier::new("HS256", SECRET, "xpu", "xpu").unwrap();
    ServeConfig::new("127.0.0.1:0".parse().unwrap(), db.to_path_buf(), verifier)
}

fn start(db: &Path, limits: RoleLimits) -> Server {
    let mut config = config(db);
    config.limits = limits;
    Server::start(runtime(), config).unwrap()
}

fn token(sub: &str, role: Role) -> String {
    Issuer::new("HS256", SECRET, "xpu", "xpu")
        .unwrap()
        .issue(sub, role, Duration::from_secs(600))
        .unwrap()
}

fn client(server: &Server, sub: &str, role: Role) -> Client {
    Client::new(&server.url(), Some(&token(sub, role)))
}

/// c = a·b for n x n matrices of known values, and the reference.
fn gemm_job(n: usize, seed: f64) -> (JobDocument, Vec<f64>) {
    let a: Vec<f64> = (0..n * n)
        .map(|i| ((i as f64 * 0.37 + seed) % 3.0) - 1.0)
        .collect();
    let b: Vec<f64> = (0..n * n)
        .map(|i| ((i as f64 * 0.11 + seed) % 2.0) - 0.5)
        .collect();
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            c[i * n + j] = (0..n).map(|k| a[i * n + k] * b[k * n + j]).sum();
        }
    }
    let doc = serde_json::from_value(json!({
        "tensors": {
            "a": {"dtype": "f64", "shape": [n, n], "data": a},
            "b": {"dtype": "f64", "shape": [n, n], "data": b},
            "c": {"dtype": "f64", "shape": [n, n]},
            "d": {"dtype": "f64", "shape": [n, n]}
        },
        "tasks": [
            {"kernel": {"name": "gemm"}, "args": ["a", "b", "c"]},
            {"kernel": {"name": "relu"}, "args": ["c", "d"]}
        ],
        "results": ["c", "d"]
    }))
    .unwrap();
    (doc, c)
}

fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-9 * (1.0 + w.abs()), "{g} != {w}");
    }
}

#[test]
fn a_job_runs_and_its_results_match_the_reference() {
    let d = dir("results");
    let server = start(&d.join("jobs.sqlite"), RoleLimits::default());
    let ada = client(&server, "ada", Role::Submitter);
    let (doc, want) = gemm_job(24, 0.5);
    let job = ada.submit(&doc, None).unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.tasks, 2);
    let done = ada.wait(&job.id, WAIT).unwrap();
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    assert_eq!(done.tasks_done, 2);
    let results = ada.results(&job.id).unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(
        (results[0].name.as_str(), results[0].shape.clone()),
        ("c", vec![24, 24])
    );
    assert_close(&results[0].values(), &want);
    let relu: Vec<f64> = want.iter().map(|v| v.max(0.0)).collect();
    assert_close(&results[1].values(), &relu);
    let raw = ada
        .call("GET", &format!("/v1/jobs/{}/results/c", job.id), None, &[])
        .unwrap();
    assert_eq!(raw.status, 200);
    assert_eq!(raw.dtype.as_deref(), Some("f64"));
    assert_eq!(raw.shape.as_deref(), Some("24,24"));
    assert_eq!(raw.body, results[0].bytes);
    server.stop().unwrap();
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(exp: i64, nbf: i64, iss: &str, aud: &str) -> Value {
    let t = now() as i64;
    json!({"sub": "eve", "role": "admin", "iss": iss, "aud": aud, "iat": t, "nbf": t + nbf, "exp": t + exp})
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

/// Each bad token is a 401 with a short reason, the secret never appears,
/// and the server goes on serving.
#[test]
fn bad_tokens_are_refused_with_a_reason_and_the_server_goes_on() {
    let d = dir("tokens");
    let server = start(&d.join("jobs.sqlite"), RoleLimits::default());
    let good = claims(600, 0, "xpu", "xpu");
    let none_token = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "no bearer token"),
        (
            "not bearer",
            Some("Basic YWRhOnB3".into()),
            "not `Bearer TOKEN`",
        ),
        ("garbage", Some("Bearer not.a.jwt".into()), "malformed"),
        (
            "bad signature",
            Some(format!(
                "Bearer {}",
                hs256(&good, b"a different secret of 32 bytes!!!")
            )),
            "bad signature",
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                hs256(&claims(-120, -300, "xpu", "xpu"), SECRET)
            )),
            "expired",
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                hs256(&claims(600, 300, "xpu", "xpu"), SECRET)
            )),
            "not valid yet",
        ),
        (
            "wrong audience",
            Some(format!(
                "Bearer {}",
                hs256(&claims(600, 0, "xpu", "elsewhere"), SECRET)
            )),
            "wrong audience",
        ),
        (
            "wrong issuer",
            Some(format!(
                "Bearer {}",
                hs256(&claims(600, 0, "mallory", "xpu"), SECRET)
            )),
            "wrong issuer",
        ),
        ("alg none", Some(format!("Bearer {none_token}")), ""),
        (
            "no role",
            Some(format!(
                "Bearer {}",
                hs256(
                    &json!({"sub": "eve", "iss": "xpu", "aud": "xpu", "nbf": now(), "exp": now() + 600}),
                    SECRET
                )
            )),
            "claims",
        ),
    ];
    let secret_text = String::from_utf8_lossy(SECRET).to_string();
    for (what, header, reason) in cases {
        let anonymous = Client::new(&server.url(), None);
        let headers: Vec<(&str, &str)> = header
            .as_deref()
            .map(|h| vec![("authorization", h)])
            .unwrap_or_default();
        let reply = anonymous.call("GET", "/v1/units", None, &headers).unwrap();
        assert_eq!(reply.status, 401, "{what}: {}", reply.text());
        assert!(reply.text().contains(reason), "{what}: {}", reply.text());
        assert!(
            !reply.text().contains(&secret_text),
            "{what} leaks the secret"
        );
        let alive = anonymous.call("GET", "/healthz", None, &[]).unwrap();
        assert_eq!(alive.status, 200, "after {what}");
    }
    server.stop().unwrap();
}

/// A server pinned to RS256 refuses an HS256 token signed with its own
/// public key as the HMAC secret (the algorithm switch), and ES256 works
/// end to end with a key pair.
#[test]
fn the_algorithm_is_pinned_by_the_server_never_taken_from_the_token() {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/service");
    let read = |f: &str| std::fs::read(keys.join(f)).unwrap();
    for (alg, public, private) in [
        ("RS256", "rsa-public.pem", "rsa-private.pem"),
        ("ES256", "ec-public.pem", "ec-private.pem"),
    ] {
        let d = dir(&format!("pinned-{alg}"));
        let verifier = Verifier::new(alg, &read(public), "xpu", "xpu").unwrap();
        let config = ServeConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            d.join("jobs.sqlite"),
            verifier,
        );
        let server = Server::start(runtime(), config).unwrap();
        let good = Issuer::new(alg, &read(private), "xpu", "xpu")
            .unwrap()
            .issue("ada", Role::Viewer, Duration::from_secs(60))
            .unwrap();
        let ok = Client::new(&server.url(), Some(&good))
            .call("GET", "/v1/units", None, &[])
            .unwrap();
        assert_eq!(ok.status, 200, "{alg}: {}", ok.text());
        let switched = hs256(&claims(600, 0, "xpu", "xpu"), &read(public));
        let reply = Client::new(&server.url(), Some(&switched))
            .call("GET", "/v1/units", None, &[])
            .unwrap();
        assert_eq!(reply.status, 401, "{alg}: {}", reply.text());
        assert!(
            reply.text().contains("algorithm not accepted"),
            "{}",
            reply.text()
        );
        server.stop().unwrap();
    }
}

/// Every route of the table with every role: below the route's role the
/// answer is 403 (401 without a token), at or above it never 401 or 403.
#[test]
fn every_route_answers_each_role_as_the_table_says() {
    let d = dir("routes");
    let server = start(&d.join("jobs.sqlite"), RoleLimits::default());
    let (doc, _) = gemm_job(4, 1.0);
    let body = serde_json::to_value(&doc).unwrap();
    let admin = client(&server, "root", Role::Admin);
    let settings: Value = admin
        .call("GET", "/v1/settings", None, &[])
        .unwrap()
        .json()
        .unwrap();
    let power = serde_json::json!({"state": "normal"});
    let callers: Vec<(Option<Role>, Client, String)> = [
        None,
        Some(Role::Viewer),
        Some(Role::Submitter),
        Some(Role::Operator),
        Some(Role::Admin),
    ]
    .into_iter()
    .map(|role| {
        let c = match role {
            Some(r) => client(&server, &format!("user-{r}"), r),
            None => Client::new(&server.url(), None),
        };
        // A finished job of the caller's own where a route names one.
        let own = match role {
            Some(r) if r >= Role::Submitter => {
                let job = c.submit(&doc, None).unwrap();
                c.wait(&job.id, WAIT).unwrap();
                job.id
            }
            _ => "0123456789abcdef0123456789abcdef".to_string(),
        };
        (role, c, own)
    })
    .collect();
    for route in ROUTES {
        for (role, c, own) in &callers {
            let role = *role;
            let path = route
                .path
                .replace("{id}", own)
                .replace("{name}", "c")
                .replace("{unit}", "0");
            let payload = match (route.method, route.path) {
                ("POST", "/v1/jobs") => Some(&body),
                ("PUT", "/v1/units/{unit}/power") => Some(&power),
                ("PUT", _) => Some(&settings),
                _ => None,
            };
            let reply = c.call(route.method, &path, payload, &[]).unwrap();
            let allowed = match (route.role, role) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(needs), Some(has)) => has >= needs,
            };
            let what = format!(
                "{} {} as {:?}: {} {}",
                route.method,
                path,
                role,
                reply.status,
                reply.text()
            );
            if allowed {
                // Served (not the fallback's 404 or a 405), and not refused.
                assert!(
                    ![401, 403, 405].contains(&reply.status) && reply.status < 500,
                    "{what}"
                );
                assert!(!reply.text().contains("no such route"), "{what}");
            } else if role.is_none() {
                assert_eq!(reply.status, 401, "{what}");
            } else {
                assert_eq!(reply.status, 403, "{what}");
            }
        }
    }
    server.stop().unwrap();
}

/// One subject never sees another's jobs or results; an operator sees
/// every job's status but not its data.
#[test]
fn one_subjects_jobs_and_results_are_not_anothers() {
    let d = dir("isolation");
    let server = start(&d.join("jobs.sqlite"), RoleLimits::default());
    let ada = client(&server, "ada", Role::Submitter);
    let bob = client(&server, "bob", Role::Submitter);
    let operator = client(&server, "olga", Role::Operator);
    let (doc, _) = gemm_job(8, 2.0);
    let job = ada.submit(&doc, None).unwrap();
    ada.wait(&job.id, WAIT).unwrap();
    for path in [
        format!("/v1/jobs/{}", job.id),
        format!("/v1/jobs/{}/results", job.id),
        format!("/v1/jobs/{}/results/c", job.id),
    ] {
        let reply = bob.call("GET", &path, None, &[]).unwrap();
        assert_eq!(reply.status, 404, "bob reads {path}: {}", reply.text());
    }
    assert_eq!(
        bob.call("POST", &format!("/v1/jobs/{}/cancel", job.id), None, &[])
            .unwrap()
            .status,
        404
    );
    assert!(bob.jobs(false).unwrap().is_empty());
    assert_eq!(operator.status(&job.id).unwrap().subject, "ada");
    assert_eq!(operator.jobs(true).unwrap().len(), 1);
    let reply = operator
        .call("GET", &format!("/v1/jobs/{}/results", job.id), None, &[])
        .unwrap();
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert_eq!(ada.results(&job.id).unwrap().len(), 2);
    server.stop().unwrap();
}

#[test]
fn an_idempotency_key_gives_one_job_however_often_it_is_sent() {
    let d = dir("idempotent");
    let server = start(&d.join("jobs.sqlite"), RoleLimits::default());
    let ada = client(&server, "ada", Role::Submitter);
    let (doc, _) = gemm_job(8, 3.0);
    let first = ada.submit(&doc, Some("order-17")).unwrap();
    let again = ada.submit(&doc, Some("order-17")).unwrap();
    assert_eq!(first.id, again.id);
    let (other, _) = gemm_job(8, 4.0);
    let err = ada.submit(&other, Some("order-17")).unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");
    // Keys are per subject.
    let bob = client(&server, "bob", Role::Submitter);
    assert_ne!(bob.submit(&doc, Some("order-17")).unwrap().id, first.id);
    assert_eq!(ada.jobs(false).unwrap().len(), 1);
    server.stop().unwrap();
}

#[test]
fn a_job_over_a_limit_is_refused_naming_the_limit_and_its_value() {
    let d = dir("limits");
    let limits = RoleLimits::from_toml(
        "[submitter]\nmax_tensor_bytes = 4096\nmax_tasks = 3\nmax_queued_jobs = 2\nmax_running_jobs = 1\n",
    )
    .unwrap();
    let server = start(&d.join("jobs.sqlite"), limits);
    let ada = client(&server, "ada", Role::Submitter);
    let (big, _) = gemm_job(24, 0.0); // 24*24*8 bytes per tensor
    let reply = ada
        .call(
            "POST",
            "/v1/jobs",
            Some(&serde_json::to_value(&big).unwrap()),
            &[],
        )
        .unwrap();
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(
        reply.text().contains("max_tensor_bytes") && reply.text().contains("4096"),
        "{}",
        reply.text()
    );
    let many = json!({
        "tensors": {"x": {"dtype": "f32", "shape": [4], "fill": 1}, "y": {"dtype": "f32", "shape": [4]}},
        "tasks": [
            {"kernel": {"name": "relu"}, "args": ["x", "y"]},
            {"kernel": {"name": "relu"}, "args": ["x", "y"]},
            {"kernel": {"name": "relu"}, "args": ["x", "y"]},
            {"kernel": {"name": "relu"}, "args": ["x", "y"]}
        ]
    });
    let reply = ada.call("POST", "/v1/jobs", Some(&many), &[]).unwrap();
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(
        reply.text().contains("max_tasks") && reply.text().contains("3 allowed"),
        "{}",
        reply.text()
    );
    server.stop().unwrap();
}

#[test]
fn a_subject_with_too_many_queued_jobs_or_requests_gets_429() {
    let d = dir("queue-limit");
    let db = d.join("jobs.sqlite");
    let server = start(&db, RoleLimits::default());
    let operator = client(&server, "olga", Role::Operator);
    operator.call("POST", "/v1/drain", None, &[]).unwrap();
    let ada = client(&server, "ada", Role::Submitter);
    let (doc, _) = gemm_job(4, 0.0);
    let body = serde_json::to_value(&doc).unwrap();
    // Draining refuses submissions and says it is not ready.
    assert_eq!(
        ada.call("POST", "/v1/jobs", Some(&body), &[])
            .unwrap()
            .status,
        503
    );
    assert_eq!(ada.call("GET", "/readyz", None, &[]).unwrap().status, 503);
    server.stop().unwrap();

    // With no job allowed to run, submitted jobs stay queued.
    let limits = RoleLimits::from_toml(
        "[submitter]\nmax_queued_jobs = 2\nmax_running_jobs = 0\nrequests_per_second = 1\nburst = 6\n",
    )
    .unwrap();
    let server = start(&db, limits);
    let ada = client(&server, "ada", Role::Submitter);
    assert_eq!(
        ada.call("POST", "/v1/jobs", Some(&body), &[])
            .unwrap()
            .status,
        202
    );
    assert_eq!(
        ada.call("POST", "/v1/jobs", Some(&body), &[])
            .unwrap()
            .status,
        202
    );
    let reply = ada.call("POST", "/v1/jobs", Some(&body), &[]).unwrap();
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert!(reply.text().contains("max_queued_jobs"), "{}", reply.text());
    // Three requests made; the burst of 6 runs out within three more.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(ada.call("GET", "/v1/jobs", None, &[]).unwrap().status);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    server.stop().unwrap();
}

/// A chain of 800 GEMMs of 256: long enough to outlast 50 ms, or a
/// cancel, on any machine here.
fn long_job() -> JobDocument {
    let n = 256;
    let mut tasks = Vec::new();
    for _ in 0..400 {
        tasks.push(json!({"kernel": {"name": "gemm"}, "args": ["a", "b", "c"]}));
        tasks.push(json!({"kernel": {"name": "gemm"}, "args": ["c", "b", "a"]}));
    }
    serde_json::from_value(json!({
        "tensors": {
            "a": {"dtype": "f32", "shape": [n, n], "fill": 0.001},
            "b": {"dtype": "f32", "shape": [n, n], "fill": 0.001},
            "c": {"dtype": "f32", "shape": [n, n]}
        },
        "tasks": tasks,
        "results": ["a"]
    }))
    .unwrap()
}

#[test]
fn a_running_job_is_cancelled_by_its_owner_and_stops() {
    let d = dir("cancel-running");
    let server = start(&d.join("jobs.sqlite"), RoleLimits::default());
    let ada = client(&server, "ada", Role::Submitter);
    let job = ada.submit(&long_job(), None).unwrap();
    while ada.status(&job.id).unwrap().state == JobState::Queued {
        std::thread::sleep(Duration::from_millis(2));
    }
    let answer = ada.cancel(&job.id);
    let done = ada.wait(&job.id, WAIT).unwrap();
    match answer {
        Ok(_) => {
            assert_eq!(done.state, JobState::Cancelled, "{done:?}");
            assert!(done.error.unwrap_or_default().contains("cancelled by ada"));
            assert!(
                done.tasks_done < done.tasks,
                "{} of {}",
                done.tasks_done,
                done.tasks
            );
        }
        // It ended between the status and the cancel.
        Err(e) => assert!(e.to_string().contains("409"), "{e}"),
    }
    server.stop().unwrap();
}

#[test]
fn a_job_past_its_time_limit_is_cancelled_and_says_so() {
    let d = dir("time-limit");
    let limits = RoleLimits::from_toml("[submitter]\nmax_run_seconds = 0.05\n").unwrap();
    let server = start(&d.join("jobs.sqlite"), limits);
    let ada = client(&server, "ada", Role::Submitter);
    let job = ada.submit(&long_job(), None).unwrap();
    let done = ada.wait(&job.id, WAIT).unwrap();
    assert_eq!(done.state, JobState::Cancelled, "{done:?}");
    let why = done.error.unwrap_or_default();
    assert!(
        why.contains("time limit") && why.contains("max_run_seconds"),
        "{why}"
    );
    assert!(
        done.tasks_done < done.tasks,
        "{} of {}",
        done.tasks_done,
        done.tasks
    );
    server.stop().unwrap();
}

#[test]
fn a_job_can_be_cancelled_by_its_owner() {
    let d = dir("cancel");
    let limits = RoleLimits::from_toml("[submitter]\nmax_running_jobs = 0\n").unwrap();
    let server = start(&d.join("jobs.sqlite"), limits);
    let ada = client(&server, "ada", Role::Submitter);
    let (doc, _) = gemm_job(4, 0.0);
    let job = ada.submit(&doc, None).unwrap();
    let cancelled = ada.cancel(&job.id).unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled
        .error
        .unwrap_or_default()
        .contains("cancelled by ada"));
    let err = ada.cancel(&job.id).unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");
    let reply = ada
        .call("GET", &format!("/v1/jobs/{}/results", job.id), None, &[])
        .unwrap();
    assert_eq!(reply.status, 409, "{}", reply.text());
    server.stop().unwrap();
}

/// Hostile requests each get a 4xx that names what is wrong, and the
/// server serves a good job after all of them.
#[test]
fn hostile_requests_get_a_4xx_naming_the_problem() {
    let d = dir("hostile");
    let server = start(&d.join("jobs.sqlite"), RoleLimits::default());
    let ada = client(&server, "ada", Role::Submitter);
    let t = |tensors: Value, tasks: Value| json!({"tensors": tensors, "tasks": tasks});
    let x4 = json!({"x": {"dtype": "f32", "shape": [4], "fill": 1}, "y": {"dtype": "f32", "shape": [4]}});
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "wrong type",
            json!({"tensors": [], "tasks": []}),
            422,
            "tensors",
        ),
        (
            "unknown field",
            json!({"tensors": {}, "tasks": [], "extra": 1}),
            422,
            "extra",
        ),
        (
            "negative shape",
            t(json!({"x": {"dtype": "f32", "shape": [-1]}}), json!([])),
            422,
            "shape",
        ),
        (
            "zero dimension",
            t(json!({"x": {"dtype": "f32", "shape": [0]}}), json!([])),
            422,
            "shape[0]",
        ),
        (
            "huge shape",
            t(
                json!({"x": {"dtype": "f32", "shape": [1u64 << 40, 1u64 << 40]}}),
                json!([]),
            ),
            422,
            "overflows",
        ),
        (
            "big shape",
            t(
                json!({"x": {"dtype": "f32", "shape": [1u64 << 20, 1u64 << 20]}}),
                json!([]),
            ),
            413,
            "max_tensor_bytes",
        ),
        (
            "unknown dtype",
            t(json!({"x": {"dtype": "f7", "shape": [1]}}), json!([])),
            422,
            "dtype",
        ),
        (
            "data length",
            t(
                json!({"x": {"dtype": "f32", "shape": [3], "data": [1, 2]}}),
                json!([]),
            ),
            422,
            "needs 3 values",
        ),
        (
            "bad name",
            t(
                json!({"x y": {"dtype": "f32", "shape": [1], "fill": 0}}),
                json!([]),
            ),
            422,
            "tensor name",
        ),
        (
            "unknown kernel",
            t(
                x4.clone(),
                json!([{"kernel": {"name": "rm -rf"}, "args": ["x", "y"]}]),
            ),
            422,
            "tasks[0].kernel",
        ),
        (
            "unknown tensor",
            t(
                x4.clone(),
                json!([{"kernel": {"name": "relu"}, "args": ["x", "z"]}]),
            ),
            422,
            "tasks[0].args[1]",
        ),
        (
            "arg count",
            t(
                x4.clone(),
                json!([{"kernel": {"name": "relu"}, "args": ["x"]}]),
            ),
            422,
            "takes 2",
        ),
        (
            "shape mismatch",
            t(
                json!({"a": {"dtype": "f32", "shape": [2, 3], "fill": 1}, "b": {"dtype": "f32", "shape": [2, 3], "fill": 1}, "c": {"dtype": "f32", "shape": [2, 3]}}),
                json!([{"kernel": {"name": "gemm"}, "args": ["a", "b", "c"]}]),
            ),
            422,
            "tasks[0]",
        ),
        (
            "read before written",
            t(
                x4.clone(),
                json!([{"kernel": {"name": "relu"}, "args": ["y", "x"]}]),
            ),
            422,
            "read before",
        ),
        (
            "cycle",
            t(
                x4.clone(),
                json!([{"kernel": {"name": "relu"}, "args": ["x", "y"], "after": [1]}, {"kernel": {"name": "relu"}, "args": ["y", "x"], "after": [0]}]),
            ),
            422,
            "earlier",
        ),
        (
            "bad mode",
            t(
                x4.clone(),
                json!([{"kernel": {"name": "relu"}, "args": ["x", {"tensor": "y", "mode": "exec"}]}]),
            ),
            422,
            "mode",
        ),
        (
            "bad unit",
            t(
                x4.clone(),
                json!([{"kernel": {"name": "relu"}, "args": ["x", "y"], "unit": "quantum"}]),
            ),
            422,
            "tasks[0].unit",
        ),
        (
            "bad result",
            t(x4.clone(), json!([]))
                .as_object()
                .cloned()
                .map(|mut m| {
                    m.insert("results".into(), json!(["nope"]));
                    Value::Object(m)
                })
                .unwrap(),
            422,
            "results[0]",
        ),
        (
            "kernel param",
            t(
                x4.clone(),
                json!([{"kernel": {"name": "relu", "alpha": "x"}, "args": ["x", "y"]}]),
            ),
            422,
            "alpha",
        ),
    ];
    for (what, body, status, needle) in cases {
        let reply = ada.call("POST", "/v1/jobs", Some(&body), &[]).unwrap();
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        assert!(reply.text().contains(needle), "{what}: {}", reply.text());
    }
    // Not JSON, and the wrong content type.
    let raw = ada
        .call(
            "POST",
            "/v1/jobs",
            None,
            &[("content-type", "application/json")],
        )
        .unwrap();
    assert_eq!(raw.status, 400, "{}", raw.text());
    let reply = ada.call("POST", "/v1/jobs", None, &[]).unwrap();
    assert_eq!(reply.status, 415, "{}", reply.text());
    assert_eq!(
        ada.call("GET", "/v1/nothing", None, &[]).unwrap().status,
        404
    );
    assert_eq!(
        ada.call("DELETE", "/v1/jobs", None, &[]).unwrap().status,
        405
    );
    let (doc, want) = gemm_job(6, 0.25);
    let job = ada.submit(&doc, None).unwrap();
    assert_eq!(ada.wait(&job.id, WAIT).unwrap().state, JobState::Succeeded);
    assert_close(&ada.results(&job.id).unwrap()[0].values(), &want);
    server.stop().unwrap();
}

#[test]
fn an_oversized_body_is_refused_with_413() {
    let d = dir("body");
    let mut config = config(&d.join("jobs.sqlite"));
    config.max_body_bytes = 1024;
    let server = Server::start(runtime(), config).unwrap();
    let ada = client(&server, "ada", Role::Submitter);
    let (doc, _) = gemm_job(16, 0.0);
    let reply = ada
        .call(
            "POST",
            "/v1/jobs",
            Some(&serde_json::to_value(&doc).unwrap()),
            &[],
        )
        .unwrap();
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(ada.call("GET", "/healthz", None, &[]).unwrap().status, 200);
    server.stop().unwrap();
}

/// Jobs accepted before a stop run after the restart, and the audit log
/// keeps who did what.
#[test]
fn accepted_jobs_survive_a_restart_and_the_audit_log_records_them() {
    let d = dir("restart");
    let db = d.join("jobs.sqlite");
    let limits = RoleLimits::from_toml("[submitter]\nmax_running_jobs = 0\n").unwrap();
    let server = start(&db, limits);
    let ada = client(&server, "ada", Role::Submitter);
    let mut wanted = Vec::new();
    for i in 0..3 {
        let (doc, want) = gemm_job(8, i as f64);
        wanted.push((ada.submit(&doc, None).unwrap().id, want));
    }
    server.stop().unwrap();
    let server = start(&db, RoleLimits::default());
    let ada = client(&server, "ada", Role::Submitter);
    for (id, want) in &wanted {
        assert_eq!(ada.wait(id, WAIT).unwrap().state, JobState::Succeeded);
        assert_close(&ada.results(id).unwrap()[0].values(), want);
    }
    let admin = client(&server, "root", Role::Admin);
    let audit: Value = admin
        .call("GET", "/v1/audit", None, &[])
        .unwrap()
        .json()
        .unwrap();
    let entries = audit["audit"].as_array().unwrap();
    let count = |action: &str| {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["subject"] == "ada")
            .count()
    };
    assert_eq!(count("submit"), 3);
    // Two results per job, each read once.
    assert_eq!(count("read"), 6);
    server.stop().unwrap();
}

#[test]
fn a_queue_file_of_another_schema_is_refused_not_replaced() {
    let d = dir("foreign");
    let db = d.join("jobs.sqlite");
    std::fs::write(&db, b"not a database at all, just text").unwrap();
    let config = config(&db);
    let err = Server::start(runtime(), config)
        .err()
        .expect("a text file is not a queue");
    assert!(err.to_string().contains("jobs.sqlite"), "{err}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        b"not a database at all, just text"
    );
}

struct Served {
    child: Child,
    url: String,
}

fn serve_process(data: &Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xpu"))
        .args([
            "--cpu-only",
            "--no-history",
            "serve",
            "--addr",
            "127.0.0.1:0",
        ])
        .env("XPU_DATA_DIR", data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Served { child, url }
}

/// `kill -9` while jobs are queued and running, then a restart: every job
/// the server accepted runs to completion once, and a client that sends
/// them all again under their idempotency keys gets the same jobs back.
#[test]
fn kill_9_under_load_loses_no_accepted_job_and_runs_none_twice_visibly() {
    let data = dir("kill9");
    let mut served = serve_process(&data);
    let secret = std::fs::read_to_string(data.join("service/jwt-secret")).unwrap();
    let tok = Issuer::new("HS256", secret.trim().as_bytes(), "xpu", "xpu")
        .unwrap()
        .issue("ada", Role::Submitter, Duration::from_secs(600))
        .unwrap();
    let jobs: Vec<(String, JobDocument, Vec<f64>)> = (0..40)
        .map(|i| {
            let (doc, want) = gemm_job(48, i as f64 * 0.1);
            (format!("key-{i}"), doc, want)
        })
        .collect();
    let client = Client::new(&served.url, Some(&tok));
    let mut accepted = Vec::new();
    for (key, doc, _) in &jobs {
        accepted.push(client.submit(doc, Some(key)).unwrap().id);
    }
    served.child.kill().unwrap(); // SIGKILL
    served.child.wait().unwrap();

    let mut served = serve_process(&data);
    let client = Client::new(&served.url, Some(&tok));
    for ((key, doc, want), id) in jobs.iter().zip(&accepted) {
        let again = client.submit(doc, Some(key)).unwrap();
        assert_eq!(&again.id, id, "{key} became a second job");
        let done = client.wait(id, WAIT).unwrap();
        assert_eq!(done.state, JobState::Succeeded, "{key}: {:?}", done.error);
        assert_close(&client.results(id).unwrap()[0].values(), want);
    }
    assert_eq!(client.jobs(false).unwrap().len(), jobs.len());
    served.child.kill().ok();
    served.child.wait().ok();
}

/// The event stream reports progress and ends with the final status; a
/// stranger's stream is refused.
#[test]
fn a_jobs_events_follow_it_to_its_end() {
    let d = dir("events");
    let server = start(&d.join("jobs.sqlite"), RoleLimits::default());
    let ada = client(&server, "ada", Role::Submitter);
    let (doc, _) = gemm_job(32, 0.0);
    let job = ada.submit(&doc, None).unwrap();
    let mut seen = Vec::new();
    let end = ada.follow(&job.id, &mut |s| seen.push(s.clone())).unwrap();
    assert_eq!(end.state, JobState::Succeeded);
    assert_eq!(end.tasks_done, 2);
    assert_eq!(seen.last(), Some(&end));
    assert!(
        seen.windows(2).all(|w| w[0].tasks_done <= w[1].tasks_done),
        "{seen:?}"
    );
    let bob = client(&server, "bob", Role::Submitter);
    let err = bob.follow(&job.id, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    server.stop().unwrap();
}

/// The load test's own checks: every job ends once with the right result.
#[test]
fn a_small_load_test_finds_every_job_done_once_and_right() {
    let d = dir("load");
    let server = start(&d.join("jobs.sqlite"), RoleLimits::default());
    let plan = xpu::service::LoadPlan {
        jobs: 60,
        clients: 6,
        size: 16,
        key_prefix: None,
    };
    let report = xpu::service::load_test(
        &server.url(),
        &token("load", Role::Submitter),
        &plan,
        &|_| {},
    )
    .unwrap();
    assert_eq!(report.jobs, 60);
    assert_eq!(
        (report.failed, report.wrong, report.duplicated),
        (0, 0, 0),
        "{report:?}"
    );
    assert!(report.submit_p50_ms <= report.submit_p99_ms);
    server.stop().unwrap();
}

/// With a certificate the server speaks HTTPS only: a client that trusts
/// the certificate gets its job done; plain HTTP gets nowhere.
#[test]
fn with_a_certificate_the_server_speaks_tls() {
    let d = dir("tls");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/service");
    let mut config = config(&d.join("jobs.sqlite"));
    config.tls = Some((data.join("tls-cert.pem"), data.join("tls-key.pem")));
    let server = Server::start(runtime(), config).unwrap();
    assert!(server.url().starts_with("https://"), "{}", server.url());
    let root = std::fs::read(data.join("tls-ca.pem")).unwrap();
    let ada =
        Client::with_root_certificate(&server.url(), Some(&token("ada", Role::Submitter)), &root)
            .unwrap();
    let (doc, want) = gemm_job(8, 0.75);
    let job = ada.submit(&doc, None).unwrap();
    assert_eq!(ada.wait(&job.id, WAIT).unwrap().state, JobState::Succeeded);
    assert_close(&ada.results(&job.id).unwrap()[0].values(), &want);
    let plain = Client::new(&format!("http://{}", server.addr()), None);
    assert!(plain.call("GET", "/healthz", None, &[]).is_err());
    // A client that does not trust the certificate refuses the server.
    let untrusting = Client::new(&server.url(), None);
    assert!(untrusting.call("GET", "/healthz", None, &[]).is_err());
    server.stop().unwrap();
}

/// A client that never finishes its headers is dropped after the
/// deadline, connections over the limit are answered 429, and the server
/// serves others throughout.
#[test]
fn slow_clients_and_too_many_connections_do_not_stop_the_server() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let d = dir("connections");
    let mut config = config(&d.join("jobs.sqlite"));
    config.max_connections = 5;
    config.header_timeout = Duration::from_millis(300);
    config.request_timeout = Duration::from_millis(300);
    let server = Server::start(runtime(), config).unwrap();
    // A body that trickles in is answered 408 once the request runs late.
    let mut trickle = TcpStream::connect(server.addr()).unwrap();
    let bearer = token("ada", Role::Submitter);
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {bearer}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"tensors\""
    );
    trickle.write_all(head.as_bytes()).unwrap();
    // Three slow clients: half a request line each, then nothing.
    let mut slow: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr()).unwrap();
            s.write_all(b"GET /healthz HT").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // The fourth connection is served; a fifth, held open beside it, is refused.
    let mut fourth = TcpStream::connect(server.addr()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut fifth = TcpStream::connect(server.addr()).unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    fifth.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("max_connections"), "{answer}");
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    fourth.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    trickle
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    let _ = trickle.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    // After the header deadline the slow clients are gone.
    std::thread::sleep(Duration::from_millis(600));
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    }
    let ok = Client::new(&server.url(), None)
        .call("GET", "/healthz", None, &[])
        .unwrap();
    assert_eq!(ok.status, 200);
    server.stop().unwrap();
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// The OpenAPI document has every route of the table with its method, a
/// bearer requirement exactly where the route needs a role, and every
/// schema it refers to.
#[test]
fn the_openapi_document_matches_the_route_table() {
    let d = dir("openapi");
    let server = start(&d.join("jobs.sqlite"), RoleLimits::default());
    let doc: Value = Client::new(&server.url(), None)
        .call("GET", "/v1/openapi.json", None, &[])
        .unwrap()
        .json()
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let route = ROUTES
                .iter()
                .find(|r| r.path == path && r.method.eq_ignore_ascii_case(method))
                .unwrap_or_else(|| panic!("{method} {path} is documented but not in the table"));
            assert_eq!(
                op["security"].is_array(),
                route.role.is_some(),
                "{method} {path}"
            );
            assert_eq!(
                op["requestBody"].is_object(),
                route.body.is_some(),
                "{method} {path}"
            );
            documented += 1;
        }
    }
    assert_eq!(documented, ROUTES.len());
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 10, "{found:?}");
    for r in found {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} is not in the components"
        );
    }
    server.stop().unwrap();
}

/// A corpus of hostile requests (tests/data/service/bad-requests.json):
/// each is answered with the 4xx it lists, naming what is wrong, and the
/// server runs a good job after all of them.
#[test]
fn a_corpus_of_bad_requests_gets_4xx_answers_and_the_server_lives() {
    let d = dir("corpus");
    let server = start(&d.join("jobs.sqlite"), RoleLimits::default());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/service/bad-requests.json");
    let corpus: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(corpus.len() >= 50, "{} requests", corpus.len());
    let bearer = format!("Bearer {}", token("mallory", Role::Submitter));
    let raw = Client::new(&server.url(), None);
    for case in &corpus {
        let what = case["what"].as_str().unwrap();
        let body = case["body"].as_str().unwrap();
        let body: Vec<u8> = match body.strip_prefix("hex:") {
            Some(hex) => (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect(),
            None => body.as_bytes().to_vec(),
        };
        let extra = case["headers"].as_object().unwrap();
        let mut headers: Vec<(&str, &str)> = extra
            .iter()
            .filter(|(_, v)| !v.as_str().unwrap().is_empty())
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        if !extra.contains_key("authorization") {
            headers.push(("authorization", &bearer));
        }
        let content_type = case["content_type"].as_str().unwrap();
        if !content_type.is_empty() {
            headers.push(("content-type", content_type));
        }
        let reply = raw
            .call_raw(
                case["method"].as_str().unwrap(),
                case["path"].as_str().unwrap(),
                &body,
                &headers,
            )
            .unwrap();
        let status = case["status"].as_u64().unwrap() as u16;
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        assert!(
            reply.text().contains(case["needle"].as_str().unwrap()),
            "{what}: {}",
            reply.text()
        );
        let alive = raw.call("GET", "/healthz", None, &[]).unwrap();
        assert_eq!(alive.status, 200, "after {what}");
    }
    let ada = client(&server, "ada", Role::Submitter);
    let (doc, want) = gemm_job(6, 0.5);
    let job = ada.submit(&doc, None).unwrap();
    assert_eq!(ada.wait(&job.id, WAIT).unwrap().state, JobState::Succeeded);
    assert_close(&ada.results(&job.id).unwrap()[0].values(), &want);
    server.stop().unwrap();
}

/// Random job documents, valid or not: each is accepted (202) or refused
/// with a 4xx, never a 5xx; every accepted one succeeds, with the results
/// of the same document run in this process.
#[test]
fn random_documents_are_refused_cleanly_or_run_to_the_right_result() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let d = dir("proptest");
    let server = start(&d.join("jobs.sqlite"), RoleLimits::default());
    let ada = client(&server, "ada", Role::Submitter);
    let local = runtime();
    let names = ["a", "b", "c", "d"];
    let tensor = (
        prop::sample::select(vec![
            vec![2usize],
            vec![3],
            vec![2, 2],
            vec![2, 3],
            vec![3, 2],
        ]),
        prop::option::of(-2.0f64..2.0),
    );
    let task = (
        prop::sample::select(vec![
            "relu", "exp", "add", "mul", "gemm", "sum", "softmax", "nope",
        ]),
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "d", "e"]), 1..4),
    );
    let strategy = (
        prop::collection::vec(tensor, 4),
        prop::collection::vec(task, 0..5),
        prop::collection::vec(prop::sample::select(names.to_vec()), 0..3),
    );
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let (accepted, refused) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    runner
        .run(&strategy, |(tensors, tasks, results)| {
            let tensors: serde_json::Map<String, Value> = names
                .iter()
                .zip(&tensors)
                .map(|(n, (shape, fill))| {
                    let mut t = json!({"dtype": "f32", "shape": shape});
                    if let Some(v) = fill {
                        t["fill"] = json!(v);
                    }
                    (n.to_string(), t)
                })
                .collect();
            let tasks: Vec<Value> = tasks
                .iter()
                .map(|(k, args)| {
                    let kernel = if *k == "sum" {
                        json!({"name": k, "axis": 0})
                    } else {
                        json!({"name": k})
                    };
                    json!({"kernel": kernel, "args": args})
                })
                .collect();
            let body = json!({"tensors": tensors, "tasks": tasks, "results": results});
            let reply = ada.call("POST", "/v1/jobs", Some(&body), &[]).unwrap();
            prop_assert!(
                reply.status == 202 || (400..500).contains(&reply.status),
                "{} {}",
                reply.status,
                reply.text()
            );
            if reply.status != 202 {
                refused.set(refused.get() + 1);
                return Ok(());
            }
            accepted.set(accepted.get() + 1);
            let status: xpu::service::JobStatus = reply.json().unwrap();
            let done = ada.wait(&status.id, WAIT).unwrap();
            prop_assert_eq!(
                done.state,
                JobState::Succeeded,
                "{:?} for {}",
                done.error,
                body
            );
            let doc: JobDocument = serde_json::from_value(body).unwrap();
            let want = doc
                .run(&local, &xpu::Job::new(), &xpu::service::NoUploads, &|_| ())
                .unwrap();
            let got = ada.results(&status.id).unwrap();
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert_eq!(&g.shape, &w.shape);
                for (x, y) in g.values().iter().zip(w.values()) {
                    prop_assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{} vs {}", x, y);
                }
            }
            Ok(())
        })
        .unwrap();
    assert!(
        accepted.get() > 0 && refused.get() > 0,
        "accepted {} refused {}",
        accepted.get(),
        refused.get()
    );
    server.stop().unwrap();
}

/// A large tensor goes up as raw bytes (streamed to disk) and a job names
/// it; uploads are their owner's alone and bounded by max_tensor_bytes.
#[test]
fn an_uploaded_tensor_feeds_a_job_of_its_owner_only() {
    let d = dir("uploads");
    let limits = RoleLimits::from_toml("[submitter]\nmax_tensor_bytes = 1048576\n").unwrap();
    let server = start(&d.join("jobs.sqlite"), limits);
    let ada = client(&server, "ada", Role::Submitter);
    let n = 256;
    let values: Vec<f32> = (0..n * n).map(|i| (i % 17) as f32 - 8.0).collect();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let id = ada.upload(&bytes).unwrap();
    let doc = |id: &str| -> JobDocument {
        serde_json::from_value(json!({
            "tensors": {
                "x": {"dtype": "f32", "shape": [n, n], "upload": id},
                "y": {"dtype": "f32", "shape": [n, n]}
            },
            "tasks": [{"kernel": {"name": "relu"}, "args": ["x", "y"]}],
            "results": ["y"]
        }))
        .unwrap()
    };
    let job = ada.submit(&doc(&id), None).unwrap();
    assert_eq!(ada.wait(&job.id, WAIT).unwrap().state, JobState::Succeeded);
    let want: Vec<f64> = values.iter().map(|&v| v.max(0.0) as f64).collect();
    assert_eq!(ada.results(&job.id).unwrap()[0].values(), want);
    // Another subject cannot name it.
    let bob = client(&server, "bob", Role::Submitter);
    let err = bob.submit(&doc(&id), None).unwrap_err();
    assert!(
        err.to_string().contains("422") && err.to_string().contains("no upload"),
        "{err}"
    );
    // The wrong size for the shape, too much, and the wrong content type.
    let small = ada.upload(&bytes[..1024]).unwrap();
    let err = ada.submit(&doc(&small), None).unwrap_err();
    assert!(err.to_string().contains("1024 bytes"), "{err}");
    let big = vec![0u8; (1 << 20) + 4];
    let reply = ada
        .call_raw(
            "POST",
            "/v1/uploads",
            &big,
            &[("content-type", "application/octet-stream")],
        )
        .unwrap();
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(
        reply.text().contains("max_tensor_bytes"),
        "{}",
        reply.text()
    );
    let reply = ada
        .call_raw(
            "POST",
            "/v1/uploads",
            b"1234",
            &[("content-type", "text/plain")],
        )
        .unwrap();
    assert_eq!(reply.status, 415, "{}", reply.text());
    // Nothing of the refused upload stays behind.
    let left: Vec<_> = std::fs::read_dir(d.join("uploads")).unwrap().collect();
    assert_eq!(left.len(), 2, "{left:?}");
    server.stop().unwrap();
}

/// An admin registers a name for a built-in kernel's spec; jobs name it;
/// it outlives a restart; built-in names and bad specs are refused.
#[test]
fn an_admin_registers_kernel_names_that_jobs_use() {
    let d = dir("kernels");
    let db = d.join("jobs.sqlite");
    let server = start(&db, RoleLimits::default());
    let admin = client(&server, "root", Role::Admin);
    let spec = json!({"spec": {"name": "gemm", "alpha": 2.0}});
    let reply = admin
        .call("PUT", "/v1/kernels/double_gemm", Some(&spec), &[])
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let taken = admin
        .call("PUT", "/v1/kernels/relu", Some(&spec), &[])
        .unwrap();
    assert_eq!(taken.status, 409, "{}", taken.text());
    let bad = json!({"spec": {"name": "gemm", "alpha": "two"}});
    let reply = admin
        .call("PUT", "/v1/kernels/broken", Some(&bad), &[])
        .unwrap();
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(reply.text().contains("alpha"), "{}", reply.text());
    server.stop().unwrap();

    let server = start(&db, RoleLimits::default());
    let ada = client(&server, "ada", Role::Submitter);
    let listed: Value = ada
        .call("GET", "/v1/kernels", None, &[])
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["registered"]["double_gemm"]["alpha"], 2.0);
    assert!(listed["built_in"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k == "gemm"));
    let (mut doc, want) = gemm_job(8, 1.5);
    doc.tasks[0].kernel = json!({"name": "double_gemm"});
    let job = ada.submit(&doc, None).unwrap();
    assert_eq!(ada.wait(&job.id, WAIT).unwrap().state, JobState::Succeeded);
    let doubled: Vec<f64> = want.iter().map(|v| 2.0 * v).collect();
    assert_close(&ada.results(&job.id).unwrap()[0].values(), &doubled);
    server.stop().unwrap();
}

/// Operators put units in power states; the unit list shows each unit's
/// state and energy; bad requests name what is wrong.
#[test]
fn operators_set_power_states_and_units_report_state_and_energy() {
    let d = dir("power");
    let server = start(&d.join("jobs.sqlite"), RoleLimits::default());
    let operator = client(&server, "olga", Role::Operator);
    let reply = operator
        .call(
            "PUT",
            "/v1/units/0/power",
            Some(&serde_json::json!({"state": "low-power"})),
            &[],
        )
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let unit: Value = reply.json().unwrap();
    assert_eq!(unit["power"], "low-power", "{unit}");
    let units: Value = operator
        .call("GET", "/v1/units", None, &[])
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(units["units"][0]["power"], "low-power", "{units}");
    assert!(units["units"][0]["energy_joules"].as_f64().unwrap() >= 0.0);
    assert!(
        ["measured", "modelled"].contains(&units["units"][0]["energy_source"].as_str().unwrap())
    );
    for (path, body, says) in [
        (
            "/v1/units/0/power",
            serde_json::json!({"state": "turbo"}),
            "unknown power state `turbo`",
        ),
        (
            "/v1/units/99/power",
            serde_json::json!({"state": "normal"}),
            "unit 99",
        ),
        (
            "/v1/units/x/power",
            serde_json::json!({"state": "normal"}),
            "`x` is not a unit id",
        ),
        (
            "/v1/units/0/power",
            serde_json::json!({"level": 3}),
            "level",
        ),
    ] {
        let reply = operator.call("PUT", path, Some(&body), &[]).unwrap();
        assert!(
            (400..500).contains(&reply.status),
            "{path} {body}: {}",
            reply.status
        );
        assert!(
            reply.text().contains(says),
            "{path} {body}: {}",
            reply.text()
        );
    }
    server.stop().unwrap();
}
