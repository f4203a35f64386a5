//! The SQLite file: schema `xpu-history/2`, opened or created, set aside
//! when it is not ours; runs, tasks, footprints and links written in one
//! transaction per run.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};

use super::{KernelSummary, RunRecord, TaskRow, TaskStore, TASKS_KEPT};
use crate::error::{Error, Result};
use crate::perfmodel::{FootprintRow, LinkRow};

/// The schema this build writes; a file of another is set aside. (2 added
/// each task's footprint, its shapes, bytes and the nodes its data came
/// from, and each model footprint's latest samples.)
const SCHEMA: &str = "xpu-history/2";

/// The history file.
pub struct HistoryStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Tasks kept: the latest.
    keep: usize,
}

fn db_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("task history {}: {e}", path.display()))
}

impl HistoryStore {
    /// Keeps the latest `tasks` tasks instead of [`TASKS_KEPT`].
    pub fn keep_tasks(mut self, tasks: usize) -> HistoryStore {
        self.keep = tasks;
        self
    }

    /// Opens `path`, creating it (and its directory) if needed. A file
    /// that is not an xpu history is renamed aside and a fresh one made;
    /// the second value then says so.
    pub fn open(path: &Path) -> Result<(HistoryStore, Option<String>)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| db_error(path, e))?;
        }
        let mut warning = None;
        if path.exists() {
            if let Err(why) = Self::check(path) {
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let aside = path.with_extension(format!("sqlite.set-aside-{secs}"));
                std::fs::rename(path, &aside).map_err(|e| db_error(path, e))?;
                warning = Some(format!(
                    "task history {} is not usable ({why}); set aside as {}, starting a new one",
                    path.display(),
                    aside.display()
                ));
            }
        }
        let conn = Connection::open(path).map_err(|e| db_error(path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| db_error(path, e))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS runs(run INTEGER PRIMARY KEY, started INTEGER NOT NULL, policy TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS tasks(run INTEGER NOT NULL, kernel TEXT NOT NULL, unit TEXT NOT NULL,
                 node INTEGER NOT NULL, ready REAL NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
                 flops REAL NOT NULL, footprint INTEGER NOT NULL, shapes TEXT NOT NULL, bytes INTEGER NOT NULL,
                 bytes_fetched INTEGER NOT NULL, fetched_from TEXT NOT NULL, ok INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS footprints(kernel TEXT NOT NULL, unit TEXT NOT NULL, footprint INTEGER NOT NULL,
                 size REAL NOT NULL, count INTEGER NOT NULL, mean REAL NOT NULL, m2 REAL NOT NULL, recent TEXT NOT NULL,
                 PRIMARY KEY(kernel, unit, footprint));
             CREATE TABLE IF NOT EXISTS links(src TEXT NOT NULL, dst TEXT NOT NULL, n REAL NOT NULL, sx REAL NOT NULL,
                 sy REAL NOT NULL, sxx REAL NOT NULL, sxy REAL NOT NULL, PRIMARY KEY(src, dst));",
        )
        .map_err(|e| db_error(path, e))?;
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES('schema', ?1)",
            params![SCHEMA],
        )
        .map_err(|e| db_error(path, e))?;
        Ok((
            HistoryStore {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
                keep: TASKS_KEPT,
            },
            warning,
        ))
    }

    /// Why an existing file is not an xpu history, if it is not.
    fn check(path: &Path) -> std::result::Result<(), String> {
        let conn = Connection::open(path).map_err(|e| e.to_string())?;
        let schema: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| e.to_string())?;
        match schema {
            Some(s) if s == SCHEMA => Ok(()),
            Some(s) => Err(format!("schema `{s}`, expected `{SCHEMA}`")),
            None => Err("no schema recorded".into()),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every row `sql` selects, each made by `row`.
    fn query<T>(
        &self,
        sql: &str,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(sql).map_err(|e| db_error(&self.path, e))?;
        let rows = stmt
            .query_map([], row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| db_error(&self.path, e))?;
        Ok(rows)
    }
}

impl TaskStore for HistoryStore {
    /// Every stored footprint.
    fn footprints(&self) -> Result<Vec<FootprintRow>> {
        self.query(
            "SELECT kernel, unit, footprint, size, count, mean, m2, recent FROM footprints ORDER BY kernel, unit",
            |r| {
                Ok(FootprintRow {
                    kernel: r.get(0)?,
                    unit: r.get(1)?,
                    key: r.get::<_, i64>(2)? as u64,
                    size: r.get(3)?,
                    count: r.get::<_, i64>(4)? as u64,
                    mean: r.get(5)?,
                    m2: r.get(6)?,
                    recent: r
                        .get::<_, String>(7)?
                        .split(',')
                        .filter_map(|v| v.parse().ok())
                        .collect(),
                })
            },
        )
    }

    /// Every stored link model.
    fn links(&self) -> Result<Vec<LinkRow>> {
        self.query("SELECT src, dst, n, sx, sy, sxx, sxy FROM links", |r| {
            Ok(LinkRow {
                from: r.get(0)?,
                to: r.get(1)?,
                sums: [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?],
            })
        })
    }

    /// Stores a run: its tasks, and the models as they stand at its end
    /// (they include what earlier runs stored).
    fn store_run(&self, run: &RunRecord) -> Result<()> {
        let mut conn = self.conn.lock();
        let fail = |e: rusqlite::Error| db_error(&self.path, e);
        let tx = conn.transaction().map_err(fail)?;
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        tx.execute(
            "INSERT INTO runs(started, policy) VALUES(?1, ?2)",
            params![started, run.policy],
        )
        .map_err(fail)?;
        let id = tx.last_insert_rowid();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO tasks(run, kernel, unit, node, ready, start, end, flops, footprint, shapes,
                         bytes, bytes_fetched, fetched_from, ok)
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .map_err(fail)?;
            // Only what is kept: the run's latest tasks.
            let skipped = run.tasks.len().saturating_sub(self.keep);
            for t in &run.tasks[skipped..] {
                insert
                    .execute(params![
                        id,
                        t.kernel,
                        t.unit,
                        t.node as i64,
                        t.ready,
                        t.start,
                        t.end,
                        t.flops,
                        t.footprint as i64,
                        t.shapes,
                        t.bytes as i64,
                        t.bytes_fetched as i64,
                        node_list(&t.fetched_from),
                        t.ok
                    ])
                    .map_err(fail)?;
            }
            let mut upsert = tx
                .prepare(
                    "INSERT OR REPLACE INTO footprints(kernel, unit, footprint, size, count, mean, m2, recent)
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(fail)?;
            for f in &run.footprints {
                upsert
                    .execute(params![
                        f.kernel,
                        f.unit,
                        f.key as i64,
                        f.size,
                        f.count as i64,
                        f.mean,
                        f.m2,
                        f.recent
                            .iter()
                            .map(|v| v.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    ])
                    .map_err(fail)?;
            }
            let mut link = tx
                .prepare("INSERT OR REPLACE INTO links(src, dst, n, sx, sy, sxx, sxy) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)")
                .map_err(fail)?;
            for l in &run.links {
                let [n, sx, sy, sxx, sxy] = l.sums;
                link.execute(params![l.from, l.to, n, sx, sy, sxx, sxy])
                    .map_err(fail)?;
            }
        }
        // Row ids grow with each insert, so the newest `keep` are the
        // highest.
        let keep = i64::try_from(self.keep).unwrap_or(i64::MAX);
        tx.execute(
            "DELETE FROM tasks WHERE rowid <= (SELECT MAX(rowid) FROM tasks) - ?1",
            params![keep],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)
    }

    /// Runs stored.
    fn runs(&self) -> Result<u64> {
        self.conn
            .lock()
            .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| db_error(&self.path, e))
    }

    /// Tasks per kernel and unit over the tasks kept.
    fn summary(&self) -> Result<Vec<KernelSummary>> {
        self.query(
            "SELECT kernel, unit, COUNT(*), SUM(1 - ok), AVG(end - start), SUM(end - start)
             FROM tasks GROUP BY kernel, unit ORDER BY kernel, unit",
            |r| {
                Ok(KernelSummary {
                    kernel: r.get(0)?,
                    unit: r.get(1)?,
                    tasks: r.get::<_, i64>(2)? as u64,
                    failed: r.get::<_, i64>(3)? as u64,
                    mean_seconds: r.get(4)?,
                    total_seconds: r.get(5)?,
                })
            },
        )
    }

    fn tasks(&self, limit: usize) -> Result<Vec<TaskRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query(
            &format!(
                "SELECT kernel, unit, node, ready, start, end, flops, footprint, shapes, bytes,
                        bytes_fetched, fetched_from, ok
                 FROM (SELECT rowid AS id, * FROM tasks ORDER BY rowid DESC LIMIT {limit}) ORDER BY id"
            ),
            |r| {
                Ok(TaskRow {
                    kernel: r.get(0)?,
                    unit: r.get(1)?,
                    node: r.get::<_, i64>(2)? as usize,
                    ready: r.get(3)?,
                    start: r.get(4)?,
                    end: r.get(5)?,
                    flops: r.get(6)?,
                    footprint: r.get::<_, i64>(7)? as u64,
                    shapes: r.get(8)?,
                    bytes: r.get::<_, i64>(9)? as u64,
                    bytes_fetched: r.get::<_, i64>(10)? as u64,
                    fetched_from: parse_node_list(&r.get::<_, String>(11)?),
                    ok: r.get(12)?,
                })
            },
        )
    }
}

/// Nodes as stored: `0,2`.
fn node_list(nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_node_list(text: &str) -> Vec<usize> {
    text.split(',').filter_map(|n| n.parse().ok()).collect()
}
