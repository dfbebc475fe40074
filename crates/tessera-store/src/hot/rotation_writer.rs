//! Refresh rotations on a SQLite file, written in batches (group commit).
//!
//! SQLite has one writer at a time, so under load every refresh waits for the ones
//! before it, and what each costs the writer is what bounds refreshes per second. Most
//! of that is the commit: the same few pages (the token index, the session row, the
//! audit log's tail) written to the WAL again for every refresh. Here one task owns the
//! rotations: it takes every rotation queued while the last batch was being written and
//! writes them all in one transaction, each in a savepoint of its own, so a batch of
//! one costs what a lone rotation did and a batch of fifty costs little more. Every
//! caller still gets its own answer, and only after the commit that made it durable.

use std::sync::Arc;

use sqlx::SqlitePool;
use tessera_domain::Error;
use tokio::sync::{mpsc, oneshot};

use super::sqlite_direct::SqliteDirect;
use crate::error::rusqlite_error;
use crate::query::sessions::Rotation;

/// The most rotations one transaction writes.
const MAX_BATCH: usize = 128;
/// How many batches in a row keep the writer's turn while more rotations wait.
const MAX_HELD: usize = 8;
/// Rotations waiting beyond the one being written; senders wait for room beyond that.
const QUEUE: usize = 1024;

type Job = (Rotation, oneshot::Sender<Result<bool, Error>>);

/// The queue of a SQLite file's rotations and the task that writes them.
pub(crate) struct RotationWriter {
    jobs: mpsc::Sender<Job>,
}

impl RotationWriter {
    /// Starts the writing task on the current runtime. It holds the writer pool's one
    /// connection while it writes (across up to `MAX_HELD` batches in a row), so no
    /// other write of this process interleaves, and stops when the writer is dropped.
    pub(crate) fn start(direct: Arc<SqliteDirect>, writer: SqlitePool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(direct, writer, queue));
        Self { jobs }
    }

    /// Writes one rotation; `false` when the counter had moved on.
    pub(crate) async fn rotate(&self, rotation: Rotation) -> Result<bool, Error> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::Unavailable("the rotation writer has stopped".to_owned());
        self.jobs.send((rotation, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_batches(direct: Arc<SqliteDirect>, writer: SqlitePool, mut queue: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    // The writer's turn, kept from one batch to the next while rotations keep coming
    // (handing it back and taking it again costs a round trip to sqlx's connection
    // thread), but never for more than MAX_HELD batches running, so other writes get in.
    let mut turn = None;
    let mut held = 0;
    loop {
        if queue.is_empty() || held >= MAX_HELD {
            turn = None;
            held = 0;
        }
        if queue.recv_many(&mut jobs, MAX_BATCH).await == 0 {
            return;
        }
        let (rotations, replies): (Vec<Rotation>, Vec<_>) = jobs.drain(..).unzip();
        if turn.is_none() {
            turn = writer.acquire().await.map_err(|e| tracing::warn!(error = %e, "no writer turn for rotations")).ok();
        }
        let results = match turn {
            Some(_) => write_batch(&direct, rotations).await,
            None => Err(Error::Unavailable("the database writer is unavailable".to_owned())),
        };
        held += 1;
        match results {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result.map_err(|e| rusqlite_error(&e)));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batch = replies.len(), "a batch of refresh rotations failed");
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// One transaction for the batch, on a blocking thread (the caller holds the writer's
/// turn); the outer error (for every caller) means nothing was committed.
async fn write_batch(
    direct: &Arc<SqliteDirect>,
    rotations: Vec<Rotation>,
) -> Result<Vec<Result<bool, rusqlite::Error>>, Error> {
    let direct = direct.clone();
    tokio::task::spawn_blocking(move || direct.rotate_all(&rotations))
        .await
        .map_err(|e| Error::Internal(format!("rotation task: {e}")))?
        .map_err(|e| rusqlite_error(&e))
}
