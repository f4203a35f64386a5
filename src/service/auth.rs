//! Bearer tokens (JWT) and roles. The algorithm is pinned by the server's
//! configuration (HS256 with a shared secret, RS256 or ES256 with a public
//! key), never taken from the token; issuer, audience, expiry and
//! not-before are checked with a bounded clock skew.
//!
//! ```
//! use std::time::Duration;
//! use xpu::service::{Issuer, Role, Verifier};
//! let secret = b"an example secret of at least 32 bytes";
//! let issuer = Issuer::new("HS256", secret, "xpu", "xpu")?;
//! let token = issuer.issue("ada", Role::Submitter, Duration::from_secs(3600))?;
//! let verifier = Verifier::new("HS256", secret, "xpu", "xpu")?;
//! let who = verifier.verify(Some(&format!("Bearer {token}")))?;
//! assert_eq!((who.subject.as_str(), who.role), ("ada", Role::Submitter));
//!
//! let other = Verifier::new("HS256", b"another secret, also 32 bytes long", "xpu", "xpu")?;
//! let err = other.verify(Some(&format!("Bearer {token}"))).unwrap_err();
//! assert_eq!(err.to_string(), "unauthorized: bad signature");
//! assert!(verifier.verify(None).is_err());
//! # Ok::<(), xpu::Error>(())
//! ```

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What a token lets its bearer do; each role can do what the ones before
/// it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Units, metrics, the status of its own jobs.
    Viewer,
    /// And: submit jobs, cancel its own, read their results.
    Submitter,
    /// And: every job's status, cancel any job, drain the server.
    Operator,
    /// And: settings (limits), kernel registration.
    Admin,
}

impl Role {
    /// Every role, least first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Submitter, Role::Operator, Role::Admin];

    /// Parses `viewer`, `submitter`, `operator` or `admin`.
    pub fn parse(s: &str) -> Result<Role> {
        crate::named::parse_named(s, "role", &Role::ALL, |r| r.to_string())
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Submitter => "submitter",
            Role::Operator => "operator",
            Role::Admin => "admin",
        })
    }
}

/// The claims xpu's tokens carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub role: Role,
}

/// Clock skew allowed between the issuer and this server.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// Shortest HS256 secret accepted.
pub const MIN_SECRET_BYTES: usize = 32;

fn algorithm(name: &str) -> Result<Algorithm> {
    match name.to_ascii_uppercase().as_str() {
        "HS256" => Ok(Algorithm::HS256),
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        other => Err(Error::Config(format!(
            "token algorithm `{other}`: expected HS256, RS256 or ES256"
        ))),
    }
}

fn key_error(algorithm: Algorithm, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{algorithm:?} {what}: {e}"))
}

fn check_secret(secret: &[u8]) -> Result<()> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(Error::Config(format!(
            "the HS256 secret has {} bytes; at least {MIN_SECRET_BYTES} are needed",
            secret.len()
        )));
    }
    Ok(())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks bearer tokens.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    /// A verifier for one algorithm: `HS256` with the shared secret, or
    /// `RS256`/`ES256` with the issuer's public key (PEM).
    pub fn new(alg: &str, key: &[u8], issuer: &str, audience: &str) -> Result<Verifier> {
        let alg = algorithm(alg)?;
        let key = match alg {
            Algorithm::HS256 => {
                check_secret(key)?;
                DecodingKey::from_secret(key)
            }
            Algorithm::RS256 => DecodingKey::from_rsa_pem(key),
            _ => DecodingKey::from_ec_pem(key),
        }
        .map_err(|e| key_error(alg, "public key", e))?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY.as_secs();
        Ok(Verifier { key, validation })
    }

    /// The identity of an `Authorization` header's bearer token, or why
    /// there is none (short; never the key or the token).
    pub fn verify(&self, authorization: Option<&str>) -> Result<Identity> {
        let reject = |why: &str| Error::Unauthorized(why.to_string());
        let header = authorization.ok_or_else(|| reject("no bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| reject("the Authorization header is not `Bearer TOKEN`"))?;
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
                reject(match e.kind() {
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::ImmatureSignature => "token not valid yet",
                    ErrorKind::InvalidAudience => "wrong audience",
                    ErrorKind::InvalidIssuer => "wrong issuer",
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        "algorithm not accepted"
                    }
                    ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                    ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => "malformed claims",
                    _ => "malformed token",
                })
            })?;
        if data.claims.sub.is_empty() {
            return Err(reject("empty subject"));
        }
        Ok(Identity {
            subject: data.claims.sub,
            role: data.claims.role,
        })
    }
}

/// Mints tokens (`xpu token issue`).
pub struct Issuer {
    alg: Algorithm,
    key: EncodingKey,
    issuer: String,
    audience: String,
}

impl Issuer {
    /// An issuer for one algorithm: `HS256` with the shared secret, or
    /// `RS256`/`ES256` with a private key (PEM).
    pub fn new(alg: &str, key: &[u8], issuer: &str, audience: &str) -> Result<Issuer> {
        let alg = algorithm(alg)?;
        let key = match alg {
            Algorithm::HS256 => {
                check_secret(key)?;
                EncodingKey::from_secret(key)
            }
            Algorithm::RS256 => EncodingKey::from_rsa_pem(key),
            _ => EncodingKey::from_ec_pem(key),
        }
        .map_err(|e| key_error(alg, "private key", e))?;
        Ok(Issuer {
            alg,
            key,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
        })
    }

    /// A token for `subject` with `role`, valid from now for `ttl`.
    pub fn issue(&self, subject: &str, role: Role, ttl: Duration) -> Result<String> {
        if subject.is_empty() {
            return Err(Error::Config("a token needs a non-empty subject".into()));
        }
        let iat = now();
        let claims = Claims {
            sub: subject.to_string(),
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat,
            nbf: iat,
            exp: iat.saturating_add(ttl.as_secs()),
        };
        jsonwebtoken::encode(&Header::new(self.alg), &claims, &self.key)
            .map_err(|e| key_error(self.alg, "signing", e))
    }
}

/// The HS256 secret in `path` (surrounding whitespace trimmed), made first
/// if there is none: 32 random bytes as hex, readable by its owner only.
/// The second value says whether it was made now.
pub fn secret_file(path: &Path) -> Result<(Vec<u8>, bool)> {
    let io = |e: std::io::Error| Error::Io(format!("secret file {}: {e}", path.display()));
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            Ok((text.trim().as_bytes().to_vec(), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = [0u8; 32];
            getrandom::fill(&mut raw)
                .map_err(|e| Error::Io(format!("no random bytes for a secret: {e}")))?;
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(io)?;
            std::io::Write::write_all(&mut file, hex.as_bytes()).map_err(io)?;
            Ok((hex.into_bytes(), true))
        }
        Err(e) => Err(io(e)),
    }
}
