//! A blocking client of `xpu serve` (what `xpu submit`, `xpu jobs` and
//! `xpu job` use): each error answer becomes [`Error::Server`] with the
//! server's message.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::document::{JobDocument, JobResult};
use super::store::JobStatus;
use crate::{DType, Error, Result};

/// The largest answer read (results can be large).
const MAX_ANSWER_BYTES: u64 = 1 << 32;

/// An answer: status, headers we use, body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// `X-Xpu-Dtype` and `X-Xpu-Shape` of a raw result, when present.
    pub dtype: Option<String>,
    pub shape: Option<String>,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Nothing if the status is 2xx, else the server's error.
    pub fn check(&self) -> Result<()> {
        if (200..300).contains(&self.status) {
            return Ok(());
        }
        let message = serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| self.text().trim().to_string());
        Err(Error::Server {
            status: self.status,
            message,
        })
    }

    /// The body as JSON of type `T` if the status is 2xx, else the
    /// server's error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        self.check()?;
        serde_json::from_slice(&self.body).map_err(|e| Error::Server {
            status: self.status,
            message: format!("unexpected answer ({e}): {}", self.text()),
        })
    }
}

/// A connection to one server, with one token.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the server at `base` (`http://127.0.0.1:8707`) sending
    /// `token` as its bearer token.
    pub fn new(base: &str, token: Option<&str>) -> Client {
        Client::with_tls(base, token, ureq::tls::TlsConfig::default())
    }

    /// A client of an HTTPS server whose certificate is signed by (or is)
    /// the PEM certificate `root`, instead of the usual web roots.
    pub fn with_root_certificate(base: &str, token: Option<&str>, root: &[u8]) -> Result<Client> {
        let cert = ureq::tls::Certificate::from_pem(root)
            .map_err(|e| Error::Config(format!("root certificate: {e}")))?;
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
            .build();
        Ok(Client::with_tls(base, token, tls))
    }

    fn with_tls(base: &str, token: Option<&str>, tls: ureq::tls::TlsConfig) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .tls_config(tls)
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
            agent,
        }
    }

    /// One request: `method` (GET, POST, PUT) on `path` with an optional
    /// JSON body and extra headers; any status comes back as a [`Reply`].
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply> {
        match body {
            None => self.call_raw(method, path, &[], headers),
            Some(v) => {
                let bytes = serde_json::to_vec(v).map_err(|e| Error::Io(e.to_string()))?;
                let mut all = vec![("content-type", "application/json")];
                all.extend_from_slice(headers);
                self.call_raw(method, path, &bytes, &all)
            }
        }
    }

    /// One request with a body of any bytes, sent as they are (the
    /// headers say what they are).
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Reply> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: ureq::Error| Error::Server {
            status: 0,
            message: format!("{method} {url}: {e}"),
        };
        let mut request = http_request(method, &url)?;
        if let Some(token) = &self.token {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body.to_vec())
            .map_err(|e| Error::Config(format!("{method} {url}: {e}")))?;
        let mut response = self.agent.run(request).map_err(unreachable)?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (dtype, shape) = (header("x-xpu-dtype"), header("x-xpu-shape"));
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .map_err(unreachable)?;
        Ok(Reply {
            status,
            body,
            dtype,
            shape,
        })
    }

    /// Submits a job; with `idempotency_key`, submitting the same document
    /// under the same key again returns the first job instead of a second.
    pub fn submit(&self, doc: &JobDocument, idempotency_key: Option<&str>) -> Result<JobStatus> {
        let body = serde_json::to_value(doc).map_err(|e| Error::Io(e.to_string()))?;
        let headers: Vec<(&str, &str)> = idempotency_key
            .map(|k| vec![("idempotency-key", k)])
            .unwrap_or_default();
        self.call("POST", "/v1/jobs", Some(&body), &headers)?.json()
    }

    /// Uploads a tensor's bytes (little-endian, row-major); a job names
    /// the returned id as a tensor's `"upload"`.
    pub fn upload(&self, bytes: &[u8]) -> Result<String> {
        #[derive(serde::Deserialize)]
        struct Uploaded {
            upload: String,
        }
        let reply = self.call_raw(
            "POST",
            "/v1/uploads",
            bytes,
            &[("content-type", "application/octet-stream")],
        )?;
        Ok(reply.json::<Uploaded>()?.upload)
    }

    /// A job's status.
    pub fn status(&self, id: &str) -> Result<JobStatus> {
        self.call("GET", &format!("/v1/jobs/{id}"), None, &[])?
            .json()
    }

    /// Waits until the job has ended (or `timeout` passed: then the error
    /// says so) and returns its last status.
    pub fn wait(&self, id: &str, timeout: Duration) -> Result<JobStatus> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let status = self.status(id)?;
            if status.state.is_final() {
                return Ok(status);
            }
            if start.elapsed() > timeout {
                return Err(Error::Server {
                    status: 0,
                    message: format!(
                        "job {id} is still {:?} after {:.0} s",
                        status.state,
                        timeout.as_secs_f64()
                    ),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Follows a job's server-sent events (`GET /v1/jobs/{id}/events`),
    /// calling `on_progress` with each status, until it ends; returns the
    /// final status.
    pub fn follow(&self, id: &str, on_progress: &mut dyn FnMut(&JobStatus)) -> Result<JobStatus> {
        let url = format!("{}/v1/jobs/{id}/events", self.base);
        let failed = |what: String| Error::Server {
            status: 0,
            message: format!("events of job {id}: {what}"),
        };
        let mut request = self.agent.get(&url);
        if let Some(token) = &self.token {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        let mut response = request.call().map_err(|e| failed(e.to_string()))?;
        if response.status().as_u16() != 200 {
            let status = response.status().as_u16();
            let body = response.body_mut().read_to_vec().unwrap_or_default();
            return Reply {
                status,
                body,
                dtype: None,
                shape: None,
            }
            .json();
        }
        let reader = std::io::BufReader::new(response.body_mut().as_reader());
        let mut event = String::new();
        for line in std::io::BufRead::lines(reader) {
            let line = line.map_err(|e| failed(e.to_string()))?;
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                if event == "error" {
                    return Err(failed(data.trim().to_string()));
                }
                let status: JobStatus =
                    serde_json::from_str(data.trim()).map_err(|e| failed(e.to_string()))?;
                on_progress(&status);
                if event == "end" {
                    return Ok(status);
                }
            }
        }
        Err(failed("the stream ended before the job did".into()))
    }

    /// A succeeded job's results (your own jobs only), each fetched as
    /// its raw bytes.
    pub fn results(&self, id: &str) -> Result<Vec<JobResult>> {
        #[derive(serde::Deserialize)]
        struct Listed {
            results: Vec<Meta>,
        }
        #[derive(serde::Deserialize)]
        struct Meta {
            name: String,
            dtype: DType,
            shape: Vec<usize>,
        }
        let listed: Listed = self
            .call(
                "GET",
                &format!("/v1/jobs/{id}/results?data=false"),
                None,
                &[],
            )?
            .json()?;
        listed
            .results
            .into_iter()
            .map(|m| {
                let reply = self.call("GET", &format!("/v1/jobs/{id}/results/{}", m.name), None, &[])?;
                reply.check()?;
                let expected = m.shape.iter().product::<usize>() * m.dtype.size();
                if reply.body.len() != expected {
                    return Err(Error::Server {
                        status: reply.status,
                        message: format!(
                            "result {} of job {id}: {} bytes for shape {:?} {}, expected {expected}",
                            m.name,
                            reply.body.len(),
                            m.shape,
                            m.dtype
                        ),
                    });
                }
                Ok(JobResult {
                    name: m.name,
                    dtype: m.dtype,
                    shape: m.shape,
                    bytes: reply.body,
                })
            })
            .collect()
    }

    /// Cancels a job.
    pub fn cancel(&self, id: &str) -> Result<JobStatus> {
        self.call("POST", &format!("/v1/jobs/{id}/cancel"), None, &[])?
            .json()
    }

    /// Your jobs, or with `all` (operators) everyone's, newest first.
    pub fn jobs(&self, all: bool) -> Result<Vec<JobStatus>> {
        let answer: Value = self
            .call("GET", &format!("/v1/jobs?all={all}"), None, &[])?
            .json()?;
        serde_json::from_value(answer.get("jobs").cloned().unwrap_or_default()).map_err(|e| {
            Error::Server {
                status: 200,
                message: format!("job list: {e}"),
            }
        })
    }
}

fn http_request(method: &str, url: &str) -> Result<ureq::http::request::Builder> {
    let method = ureq::http::Method::from_bytes(method.as_bytes())
        .map_err(|e| Error::Config(format!("HTTP method {method:?}: {e}")))?;
    Ok(ureq::http::Request::builder().method(method).uri(url))
}
