//! Group commit of submissions: one writer thread queues every submitted
//! job. Submissions that arrive while it writes wait for it and then go
//! into the next transaction together, so a burst of clients costs one
//! write of the log instead of one each, and the HTTP threads never wait
//! on the queue's file.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::auth::Identity;
use super::limits::Limits;
use super::store::{JobStatus, JobStore, Submission};
use crate::{Error, Result};

/// Submissions written in one transaction, at most.
const GROUP: usize = 256;

/// A submission waiting for the writer, with where its answer goes.
struct Pending {
    who: Identity,
    idempotency_key: Option<String>,
    document: String,
    tasks: usize,
    limits: Limits,
    answer: oneshot::Sender<Result<(JobStatus, bool)>>,
}

/// The writer thread, and the way to it.
pub(crate) struct GroupCommit {
    to_writer: Option<mpsc::Sender<Pending>>,
    writer: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the writer thread for `store`.
    pub fn start(store: Arc<JobStore>) -> Result<GroupCommit> {
        let (to_writer, pending) = mpsc::channel::<Pending>();
        let writer = std::thread::Builder::new()
            .name("xpu-serve-commit".into())
            .spawn(move || write_groups(&store, &pending))
            .map_err(|e| Error::Io(format!("cannot start the queue's writer thread: {e}")))?;
        Ok(GroupCommit {
            to_writer: Some(to_writer),
            writer: Some(writer),
        })
    }

    /// Queues a job as [`JobStore::submit`] does, and answers once the
    /// transaction that holds it is committed.
    pub async fn submit(
        &self,
        who: &Identity,
        idempotency_key: Option<&str>,
        document: String,
        tasks: usize,
        limits: &Limits,
    ) -> Result<(JobStatus, bool)> {
        let gone = || Error::Io("the queue's writer thread has stopped".into());
        let (answer, answered) = oneshot::channel();
        self.to_writer
            .as_ref()
            .ok_or_else(gone)?
            .send(Pending {
                who: who.clone(),
                idempotency_key: idempotency_key.map(str::to_string),
                document,
                tasks,
                limits: limits.clone(),
                answer,
            })
            .map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // The writer ends when the channel closes, after the last group.
        self.to_writer = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer: waits for a submission, takes every other one already
/// waiting (up to [`GROUP`]), writes them in one transaction, answers each.
fn write_groups(store: &JobStore, pending: &mpsc::Receiver<Pending>) {
    while let Ok(first) = pending.recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match pending.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let submissions: Vec<Submission<'_>> = group
            .iter()
            .map(|p| Submission {
                who: &p.who,
                idempotency_key: p.idempotency_key.as_deref(),
                document: &p.document,
                tasks: p.tasks,
                limits: &p.limits,
            })
            .collect();
        let answers = store.submit_all(&submissions);
        drop(submissions);
        for (p, answer) in group.into_iter().zip(answers) {
            // A client that went away no longer waits for its answer; its
            // job is queued all the same, as it would be after a 202.
            let _ = p.answer.send(answer);
        }
    }
}
