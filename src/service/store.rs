//! The job queue in SQLite (WAL): a job is written before the server says
//! it accepted it; a job that was running when the process died is queued
//! again at the next start; results are written in the same transaction
//! that finishes the job, so a client sees one result or none; finished
//! jobs are kept until the retention limit; an audit log records who did
//! what. A file of another schema is refused, never trusted or replaced.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Identity, Role};
use super::document::{JobResult, Uploads};
use super::limits::Limits;
use crate::{DType, Error, Result};

const SCHEMA: &str = "xpu-service/1";

/// How often the server copies the write-ahead log into the queue's file.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

/// Log pages a checkpoint may leave for the copy that holds up writes.
const CHECKPOINT_PAUSE_PAGES: i64 = 256;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> JobState {
        match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Failed,
        }
    }

    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// A job as its owner (or an operator) sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobStatus {
    pub id: String,
    pub subject: String,
    pub state: JobState,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    pub tasks: u64,
    /// Tasks finished so far (live while it runs).
    pub tasks_done: u64,
    /// Milliseconds since the Unix epoch.
    pub submitted_ms: u64,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// How many times it was started (more than once after a restart).
    pub attempts: u64,
}

/// A job taken from the queue to run.
pub struct Claimed {
    pub id: String,
    pub subject: String,
    pub document: String,
    /// The role it was submitted with (its limits apply).
    pub role: Role,
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub at_ms: u64,
    pub subject: String,
    pub role: String,
    pub action: String,
    pub job: Option<String>,
    pub detail: String,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A fresh job id: 16 random bytes as hex.
fn new_id() -> Result<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| Error::Io(format!("no random bytes for an id: {e}")))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// A job to queue: who submits it, under which idempotency key, its
/// document (as JSON), its task count, and the submitter's limits.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    pub who: &'a Identity,
    pub idempotency_key: Option<&'a str>,
    pub document: &'a str,
    pub tasks: usize,
    pub limits: &'a Limits,
}

/// How a running job ended: its state, its error, its results (for a job
/// that succeeded) and the tasks it finished.
#[derive(Debug, Clone, Copy)]
pub struct Ending<'a> {
    pub id: &'a str,
    pub state: JobState,
    pub error: Option<&'a str>,
    pub results: &'a [JobResult],
    pub tasks_done: u64,
}

/// Why one submission of a group was not queued: refused on its own
/// (the others go on), or the database failed (the group fails).
enum Queue {
    Refused(Error),
    Database(rusqlite::Error),
}

impl From<rusqlite::Error> for Queue {
    fn from(e: rusqlite::Error) -> Queue {
        Queue::Database(e)
    }
}

/// The queue's file.
pub struct JobStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// A read-only connection for status, results and listings: in WAL
    /// mode they read the latest commit beside the writes, so a reader
    /// never waits for a transaction (nor an HTTP thread behind it).
    reads: Mutex<Connection>,
    /// A third connection, for checkpoints ([`JobStore::checkpoint`]):
    /// they copy the log into the file beside the writes, not inside one.
    checkpoints: Mutex<Connection>,
}

const STATUS_COLUMNS: &str =
    "id, subject, state, error, tasks, tasks_done, submitted_ms, started_ms, finished_ms, attempts";

fn status_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobStatus> {
    Ok(JobStatus {
        id: r.get(0)?,
        subject: r.get(1)?,
        state: JobState::parse(&r.get::<_, String>(2)?),
        error: r.get(3)?,
        tasks: r.get(4)?,
        tasks_done: r.get(5)?,
        submitted_ms: r.get(6)?,
        started_ms: r.get(7)?,
        finished_ms: r.get(8)?,
        attempts: r.get(9)?,
    })
}

impl JobStore {
    /// Opens or creates the queue at `path`. Jobs that were running when
    /// the last process stopped are queued again; the second value is how
    /// many.
    pub fn open(path: &Path) -> Result<(JobStore, usize)> {
        let db = |e: rusqlite::Error| Error::Io(format!("job queue {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Io(format!("job queue {}: {e}", path.display())))?;
        }
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        let has_tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| {
                Error::Io(format!(
                    "job queue {}: not an SQLite file ({e})",
                    path.display()
                ))
            })?;
        if has_tables > 0 {
            let schema: Option<String> = conn
                .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                    r.get(0)
                })
                .optional()
                .unwrap_or(None);
            if schema.as_deref() != Some(SCHEMA) {
                return Err(Error::Io(format!(
                    "job queue {}: holds {}, not `{SCHEMA}`; not touching it (move it away or pass another --db)",
                    path.display(),
                    schema.map_or("another database".to_string(), |s| format!("schema `{s}`"))
                )));
            }
        }
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS jobs(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                 subject TEXT NOT NULL, role TEXT NOT NULL, idempotency_key TEXT, document TEXT NOT NULL,
                 state TEXT NOT NULL, error TEXT, tasks INTEGER NOT NULL, tasks_done INTEGER NOT NULL DEFAULT 0,
                 submitted_ms INTEGER NOT NULL, started_ms INTEGER, finished_ms INTEGER,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 UNIQUE(subject, idempotency_key));
             CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
             CREATE INDEX IF NOT EXISTS jobs_subject ON jobs(subject, state);
             CREATE TABLE IF NOT EXISTS results(job TEXT NOT NULL, position INTEGER NOT NULL, name TEXT NOT NULL,
                 dtype TEXT NOT NULL, shape TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY(job, name));
             CREATE TABLE IF NOT EXISTS kernels(name TEXT PRIMARY KEY, spec TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS uploads(id TEXT PRIMARY KEY, subject TEXT NOT NULL, bytes INTEGER NOT NULL,
                 created_ms INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS audit(seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,
                 subject TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL, job TEXT, detail TEXT NOT NULL);
             -- Each subject's queued and running jobs, kept by triggers so
             -- that a submission reads its count instead of counting its
             -- queue; worked out afresh at every start.
             CREATE TABLE IF NOT EXISTS unfinished(subject TEXT PRIMARY KEY, jobs INTEGER NOT NULL);
             CREATE TRIGGER IF NOT EXISTS unfinished_insert AFTER INSERT ON jobs
                 WHEN NEW.state IN ('queued', 'running') BEGIN
                 INSERT INTO unfinished(subject, jobs) VALUES(NEW.subject, 1)
                     ON CONFLICT(subject) DO UPDATE SET jobs = jobs + 1; END;
             CREATE TRIGGER IF NOT EXISTS unfinished_end AFTER UPDATE OF state ON jobs
                 WHEN OLD.state IN ('queued', 'running') AND NEW.state NOT IN ('queued', 'running') BEGIN
                 UPDATE unfinished SET jobs = jobs - 1 WHERE subject = OLD.subject; END;
             CREATE TRIGGER IF NOT EXISTS unfinished_again AFTER UPDATE OF state ON jobs
                 WHEN OLD.state NOT IN ('queued', 'running') AND NEW.state IN ('queued', 'running') BEGIN
                 INSERT INTO unfinished(subject, jobs) VALUES(NEW.subject, 1)
                     ON CONFLICT(subject) DO UPDATE SET jobs = jobs + 1; END;
             CREATE TRIGGER IF NOT EXISTS unfinished_delete AFTER DELETE ON jobs
                 WHEN OLD.state IN ('queued', 'running') BEGIN
                 UPDATE unfinished SET jobs = jobs - 1 WHERE subject = OLD.subject; END;
             DELETE FROM unfinished;
             INSERT INTO unfinished(subject, jobs)
                 SELECT subject, COUNT(*) FROM jobs WHERE state IN ('queued', 'running') GROUP BY subject;",
        )
        .map_err(db)?;
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES('schema', ?1)",
            params![SCHEMA],
        )
        .map_err(db)?;
        let requeued = conn
            .execute(
                "UPDATE jobs SET state = 'queued', tasks_done = 0 WHERE state = 'running'",
                [],
            )
            .map_err(db)?;
        let reads = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db)?;
        let checkpoints = Connection::open(path).map_err(db)?;
        for c in [&reads, &checkpoints] {
            c.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        }
        Ok((
            JobStore {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
                reads: Mutex::new(reads),
                checkpoints: Mutex::new(checkpoints),
            },
            requeued,
        ))
    }

    /// Copies what the write-ahead log holds into the file, so that the
    /// log starts again from its beginning. Under a steady stream of
    /// writes a checkpoint beside them never catches up (the log grew
    /// without bound), and one inside a commit holds up every submission
    /// for its whole copy. So: the bulk is copied beside the writes, again
    /// while much was written meanwhile, and then writes wait only while
    /// the last few pages are copied. The queue's own connection never
    /// checkpoints; the server calls this every `CHECKPOINT_EVERY`.
    pub fn checkpoint(&self) -> Result<()> {
        let checkpoints = self.checkpoints.lock();
        // Pages of the log not yet in the file, after a passive checkpoint.
        let passive = || {
            checkpoints
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok(r.get::<_, i64>(1)? - r.get::<_, i64>(2)?)
                })
                .map_err(|e| self.db(e))
        };
        let mut left = passive()?;
        for _ in 0..3 {
            if left <= CHECKPOINT_PAUSE_PAGES {
                break;
            }
            left = passive()?;
        }
        let _writes = self.conn.lock();
        passive().map(|_| ())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self, e: impl std::fmt::Display) -> Error {
        Error::Io(format!("job queue {}: {e}", self.path.display()))
    }

    /// Queues a job of `who`, unless the subject already submitted one with
    /// this idempotency key: then that job (the same document) is returned
    /// and nothing is queued, and a different document under the key is a
    /// conflict. `limits` bound the subject's unfinished jobs. The
    /// second value is whether the job is new. The job is on disk when
    /// this returns.
    pub fn submit(
        &self,
        who: &Identity,
        idempotency_key: Option<&str>,
        document: &str,
        tasks: usize,
        limits: &Limits,
    ) -> Result<(JobStatus, bool)> {
        let one = Submission {
            who,
            idempotency_key,
            document,
            tasks,
            limits,
        };
        self.submit_all(&[one])
            .pop()
            .unwrap_or_else(|| Err(Error::Io("a submission went unanswered".into())))
    }

    /// [`JobStore::submit`] for several submissions in one transaction
    /// (group commit: one write of the log for all of them); an answer
    /// for each, in order. Each sees the ones before it, so a key or a
    /// queue limit holds within the group as across groups. When the
    /// transaction cannot be committed, every submission gets its error.
    pub fn submit_all(&self, submissions: &[Submission<'_>]) -> Vec<Result<(JobStatus, bool)>> {
        // A database failure is every submission's answer.
        let failed = |e: rusqlite::Error| submissions.iter().map(|_| Err(self.db(&e))).collect();
        let mut conn = self.conn.lock();
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => return failed(e),
        };
        let mut answers = Vec::with_capacity(submissions.len());
        for one in submissions {
            match Self::submit_in(&tx, one) {
                Ok(answer) => answers.push(Ok(answer)),
                Err(Queue::Refused(e)) => answers.push(Err(e)),
                Err(Queue::Database(e)) => return failed(e),
            }
        }
        match tx.commit() {
            Ok(()) => answers,
            Err(e) => failed(e),
        }
    }

    /// One submission inside the group's transaction.
    fn submit_in(
        tx: &Connection,
        one: &Submission<'_>,
    ) -> std::result::Result<(JobStatus, bool), Queue> {
        let who = one.who;
        if let Some(key) = one.idempotency_key {
            let existing: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT id, document FROM jobs WHERE subject = ?1 AND idempotency_key = ?2",
                )
                .and_then(|mut q| {
                    q.query_row(params![who.subject, key], |r| Ok((r.get(0)?, r.get(1)?)))
                })
                .optional()?;
            if let Some((id, stored)) = existing {
                if stored != one.document {
                    return Err(Queue::Refused(Error::Conflict(format!(
                        "idempotency key {key:?} was used for another document (job {id})"
                    ))));
                }
                let status = Self::status_in(tx, &id)?
                    .ok_or_else(|| Queue::Refused(Error::NotFound(format!("job {id}"))))?;
                return Ok((status, false));
            }
        }
        let unfinished: u64 = tx
            .prepare_cached("SELECT jobs FROM unfinished WHERE subject = ?1")
            .and_then(|mut q| q.query_row(params![who.subject], |r| r.get(0)))
            .optional()?
            .unwrap_or(0);
        one.limits.check_queue(unfinished).map_err(Queue::Refused)?;
        let id = new_id().map_err(Queue::Refused)?;
        tx.prepare_cached(
            "INSERT INTO jobs(id, subject, role, idempotency_key, document, state, tasks, submitted_ms)
             VALUES(?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7)",
        )
        .and_then(|mut q| {
            q.execute(params![
                id,
                who.subject,
                who.role.to_string(),
                one.idempotency_key,
                one.document,
                one.tasks as u64,
                now_ms(),
            ])
        })?;
        Self::audit_in(tx, who, "submit", Some(&id), "")?;
        let status = Self::status_in(tx, &id)?
            .ok_or_else(|| Queue::Refused(Error::NotFound(format!("job {id}"))))?;
        Ok((status, true))
    }

    fn status_in(conn: &Connection, id: &str) -> rusqlite::Result<Option<JobStatus>> {
        conn.prepare_cached(&format!("SELECT {STATUS_COLUMNS} FROM jobs WHERE id = ?1"))?
            .query_row(params![id], status_row)
            .optional()
    }

    fn audit_in(
        conn: &Connection,
        who: &Identity,
        action: &str,
        job: Option<&str>,
        detail: &str,
    ) -> rusqlite::Result<usize> {
        conn.prepare_cached(
            "INSERT INTO audit(at_ms, subject, role, action, job, detail) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![now_ms(), who.subject, who.role.to_string(), action, job, detail])
    }

    /// Records that `who` did `action` (on `job`).
    pub fn audit(
        &self,
        who: &Identity,
        action: &str,
        job: Option<&str>,
        detail: &str,
    ) -> Result<()> {
        Self::audit_in(&self.conn.lock(), who, action, job, detail)
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    /// The latest `limit` audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let conn = self.reads.lock();
        let mut stmt = conn
            .prepare("SELECT at_ms, subject, role, action, job, detail FROM audit ORDER BY seq DESC LIMIT ?1")
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok(AuditEntry {
                    at_ms: r.get(0)?,
                    subject: r.get(1)?,
                    role: r.get(2)?,
                    action: r.get(3)?,
                    job: r.get(4)?,
                    detail: r.get(5)?,
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.db(e))
    }

    /// A job's status.
    pub fn status(&self, id: &str) -> Result<Option<JobStatus>> {
        Self::status_in(&self.reads.lock(), id).map_err(|e| self.db(e))
    }

    /// The latest `limit` jobs (of `subject`, or everyone's), newest first.
    pub fn list(&self, subject: Option<&str>, limit: usize) -> Result<Vec<JobStatus>> {
        let conn = self.reads.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {STATUS_COLUMNS} FROM jobs WHERE ?1 IS NULL OR subject = ?1 ORDER BY seq DESC LIMIT ?2"
            ))
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(params![subject, limit as i64], status_row)
            .map_err(|e| self.db(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.db(e))
    }

    /// Takes the oldest queued job whose subject runs fewer jobs than
    /// `max_running` allows for the job's role, and marks it running.
    pub fn claim_next(&self, max_running: &dyn Fn(Role) -> u64) -> Result<Option<Claimed>> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        let claimed = self.claim_in(&tx, max_running)?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(claimed)
    }

    /// Ends a running job: its results and its state in one transaction.
    pub fn finish(&self, ending: &Ending<'_>) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        self.finish_in(&tx, ending)?;
        tx.commit().map_err(|e| self.db(e))
    }

    /// [`JobStore::finish`] then [`JobStore::claim_next`], in one
    /// transaction: a job thread that ends a job takes its next one with
    /// one write of the log instead of two.
    pub fn finish_and_claim(
        &self,
        ending: &Ending<'_>,
        max_running: &dyn Fn(Role) -> u64,
    ) -> Result<Option<Claimed>> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db(e))?;
        self.finish_in(&tx, ending)?;
        let claimed = self.claim_in(&tx, max_running)?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(claimed)
    }

    fn claim_in(
        &self,
        tx: &Connection,
        max_running: &dyn Fn(Role) -> u64,
    ) -> Result<Option<Claimed>> {
        let running: HashMap<String, u64> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT subject, COUNT(*) FROM jobs WHERE state = 'running' GROUP BY subject",
                )
                .map_err(|e| self.db(e))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| self.db(e))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(|e| self.db(e))?
        };
        let next = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, subject, role FROM jobs WHERE state = 'queued' ORDER BY seq",
                )
                .map_err(|e| self.db(e))?;
            let mut rows = stmt.query([]).map_err(|e| self.db(e))?;
            let mut found = None;
            while let Some(row) = rows.next().map_err(|e| self.db(e))? {
                let subject: String = row.get(1).map_err(|e| self.db(e))?;
                let role = Role::parse(&row.get::<_, String>(2).map_err(|e| self.db(e))?)?;
                if running.get(&subject).copied().unwrap_or(0) < max_running(role) {
                    found = Some((
                        row.get::<_, String>(0).map_err(|e| self.db(e))?,
                        subject,
                        role,
                    ));
                    break;
                }
            }
            found
        };
        let Some((id, subject, role)) = next else {
            return Ok(None);
        };
        let document: String = tx
            .query_row(
                "UPDATE jobs SET state = 'running', started_ms = ?2, attempts = attempts + 1 WHERE id = ?1 RETURNING document",
                params![id, now_ms()],
                |r| r.get(0),
            )
            .map_err(|e| self.db(e))?;
        Ok(Some(Claimed {
            id,
            subject,
            document,
            role,
        }))
    }

    fn finish_in(&self, tx: &Connection, ending: &Ending<'_>) -> Result<()> {
        for (position, r) in ending.results.iter().enumerate() {
            let shape = serde_json::to_string(&r.shape).unwrap_or_default();
            tx.prepare_cached(
                "INSERT OR REPLACE INTO results(job, position, name, dtype, shape, data) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut q| {
                q.execute(params![ending.id, position as i64, r.name, r.dtype.to_string(), shape, r.bytes])
            })
            .map_err(|e| self.db(e))?;
        }
        tx.prepare_cached(
            "UPDATE jobs SET state = ?2, error = ?3, finished_ms = ?4, tasks_done = ?5 WHERE id = ?1",
        )
        .and_then(|mut q| {
            q.execute(params![
                ending.id,
                ending.state.as_str(),
                ending.error,
                now_ms(),
                ending.tasks_done
            ])
        })
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Cancels a job that has not started; returns whether it was queued.
    pub fn cancel_queued(&self, id: &str, why: &str) -> Result<bool> {
        let conn = self.conn.lock();
        let changed = conn
            .execute(
                "UPDATE jobs SET state = 'cancelled', error = ?2, finished_ms = ?3 WHERE id = ?1 AND state = 'queued'",
                params![id, why, now_ms()],
            )
            .map_err(|e| self.db(e))?;
        Ok(changed > 0)
    }

    /// A finished job's results, in the document's order.
    pub fn results(&self, id: &str) -> Result<Vec<JobResult>> {
        let conn = self.reads.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT name, dtype, shape, data FROM results WHERE job = ?1 ORDER BY position",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(params![id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, dtype, shape, bytes) = row.map_err(|e| self.db(e))?;
            out.push(JobResult {
                name,
                dtype: DType::parse(&dtype)?,
                shape: serde_json::from_str(&shape)
                    .map_err(|e| Error::Io(format!("job queue: stored shape {shape:?}: {e}")))?,
                bytes,
            });
        }
        Ok(out)
    }

    /// Registers (or replaces) a named kernel: `spec` under another name.
    pub fn set_kernel(&self, who: &Identity, name: &str, spec: &serde_json::Value) -> Result<()> {
        let conn = self.conn.lock();
        conn.execute(
            "INSERT OR REPLACE INTO kernels(name, spec) VALUES(?1, ?2)",
            params![name, spec.to_string()],
        )
        .map_err(|e| self.db(e))?;
        Self::audit_in(&conn, who, "kernel", None, &format!("{name} = {spec}"))
            .map(|_| ())
            .map_err(|e| self.db(e))
    }

    /// The registered kernels: name and spec.
    pub fn kernels(&self) -> Result<Vec<(String, serde_json::Value)>> {
        let conn = self.reads.lock();
        let mut stmt = conn
            .prepare("SELECT name, spec FROM kernels ORDER BY name")
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.db(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, spec) = row.map_err(|e| self.db(e))?;
            let spec = serde_json::from_str(&spec)
                .map_err(|e| Error::Io(format!("job queue: kernel {name}: {e}")))?;
            out.push((name, spec));
        }
        Ok(out)
    }

    /// Where uploads are kept: `uploads/` beside the queue's file.
    pub fn upload_dir(&self) -> PathBuf {
        self.path.with_file_name("uploads")
    }

    /// Takes an upload of `who` whose bytes were written to `file`: moves
    /// it in place and records it; returns its id.
    pub fn add_upload(&self, who: &Identity, file: &Path, bytes: u64) -> Result<String> {
        let id = new_id()?;
        let path = self.upload_dir().join(&id);
        std::fs::rename(file, &path)
            .map_err(|e| Error::Io(format!("upload {}: {e}", path.display())))?;
        let conn = self.conn.lock();
        conn.execute(
            "INSERT INTO uploads(id, subject, bytes, created_ms) VALUES(?1, ?2, ?3, ?4)",
            params![id, who.subject, bytes, now_ms()],
        )
        .map_err(|e| self.db(e))?;
        Self::audit_in(&conn, who, "upload", None, &format!("{id}: {bytes} bytes"))
            .map_err(|e| self.db(e))?;
        Ok(id)
    }

    /// The size of an upload of `subject`.
    pub fn upload_size(&self, subject: &str, id: &str) -> Option<u64> {
        let conn = self.reads.lock();
        conn.query_row(
            "SELECT bytes FROM uploads WHERE id = ?1 AND subject = ?2",
            params![id, subject],
            |r| r.get(0),
        )
        .ok()
    }

    /// The bytes of an upload of `subject`.
    pub fn read_upload(&self, subject: &str, id: &str) -> Result<Vec<u8>> {
        if self.upload_size(subject, id).is_none() {
            return Err(Error::NotFound(format!("upload {id:?}")));
        }
        let path = self.upload_dir().join(id);
        std::fs::read(&path).map_err(|e| Error::Io(format!("upload {}: {e}", path.display())))
    }

    /// Deletes jobs (and their results) that finished, and uploads made,
    /// more than `keep` ago; returns how many jobs.
    pub fn prune(&self, keep: Duration) -> Result<usize> {
        let cutoff = now_ms().saturating_sub(keep.as_millis() as u64);
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| self.db(e))?;
        let old: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT id FROM uploads WHERE created_ms < ?1")
                .map_err(|e| self.db(e))?;
            let rows = stmt
                .query_map(params![cutoff], |r| r.get(0))
                .map_err(|e| self.db(e))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(|e| self.db(e))?
        };
        for id in &old {
            std::fs::remove_file(self.upload_dir().join(id)).ok();
        }
        tx.execute("DELETE FROM uploads WHERE created_ms < ?1", params![cutoff])
            .map_err(|e| self.db(e))?;
        tx.execute(
            "DELETE FROM results WHERE job IN (SELECT id FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms < ?1)",
            params![cutoff],
        )
        .map_err(|e| self.db(e))?;
        let n = tx
            .execute(
                "DELETE FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms < ?1",
                params![cutoff],
            )
            .map_err(|e| self.db(e))?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(n)
    }
}

/// One subject's uploads, as a job of theirs sees them.
pub struct SubjectUploads<'a> {
    pub store: &'a JobStore,
    pub subject: &'a str,
}

impl Uploads for SubjectUploads<'_> {
    fn size(&self, id: &str) -> Option<u64> {
        self.store.upload_size(self.subject, id)
    }

    fn read(&self, id: &str) -> Result<Vec<u8>> {
        self.store.read_upload(self.subject, id)
    }
}

#[cfg(test)]
mod tests {
    use super::{Ending, JobState, JobStore, Submission};
    use crate::service::{Identity, Limits, Role, RoleLimits};

    #[test]
    fn a_group_of_submissions_keeps_keys_and_queue_limits_and_the_counts_survive_a_restart() {
        let path =
            std::env::temp_dir().join(format!("xpu-store-group-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let ada = Identity {
            subject: "ada".into(),
            role: Role::Submitter,
        };
        let limits: Limits = RoleLimits::from_toml("[submitter]\nmax_queued_jobs = 2\n")
            .unwrap()
            .of(Role::Submitter)
            .clone();
        let job = |key, document| Submission {
            who: &ada,
            idempotency_key: key,
            document,
            tasks: 1,
            limits: &limits,
        };
        let (store, _) = JobStore::open(&path).unwrap();
        // In one group: a key used twice gives one job; the queue limit
        // counts the jobs queued earlier in the group.
        let answers = store.submit_all(&[
            job(Some("k"), "{}"),
            job(Some("k"), "{}"),
            job(Some("k"), "{\"other\":1}"),
            job(None, "{}"),
            job(None, "{}"),
        ]);
        let first = answers[0].as_ref().unwrap();
        let again = answers[1].as_ref().unwrap();
        assert!(first.1 && !again.1 && first.0.id == again.0.id);
        assert!(answers[2]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("idempotency key"));
        assert!(answers[3].as_ref().unwrap().1);
        let refused = answers[4].as_ref().unwrap_err().to_string();
        assert!(refused.contains("max_queued_jobs"), "{refused}");
        // A job that ends makes room; the count is worked out again at
        // the next start.
        assert!(store.cancel_queued(&first.0.id, "test").unwrap());
        assert!(store.submit(&ada, None, "{}", 1, &limits).unwrap().1);
        let running = store.claim_next(&|_| 1).unwrap().unwrap();
        assert!(store.submit(&ada, None, "{}", 1, &limits).is_err());
        store
            .finish(&Ending {
                id: &running.id,
                state: JobState::Succeeded,
                error: None,
                results: &[],
                tasks_done: 1,
            })
            .unwrap();
        assert!(store.submit(&ada, None, "{}", 1, &limits).unwrap().1);
        // Ending a job and taking the next in one transaction: with one
        // job running at most, the next is the queued one.
        let first = store.claim_next(&|_| 1).unwrap().unwrap();
        let ending = Ending {
            id: &first.id,
            state: JobState::Failed,
            error: Some("test"),
            results: &[],
            tasks_done: 0,
        };
        let next = store.finish_and_claim(&ending, &|_| 1).unwrap().unwrap();
        assert_ne!(next.id, first.id);
        assert_eq!(
            store.status(&first.id).unwrap().unwrap().state,
            JobState::Failed
        );
        assert_eq!(
            store.status(&next.id).unwrap().unwrap().state,
            JobState::Running
        );
        drop(store);
        // One job is unfinished: at the next start, one more fits.
        let (store, _) = JobStore::open(&path).unwrap();
        assert!(store.submit(&ada, None, "{}", 1, &limits).unwrap().1);
        let refused = store.submit(&ada, None, "{}", 1, &limits).unwrap_err();
        assert!(refused.to_string().contains("max_queued_jobs"), "{refused}");
        drop(store);
        let _ = std::fs::remove_file(&path);
    }
}
