//! Refresh rotations and sign-ins on a SQLite file, written in batches (group commit).
//!
//! SQLite has one writer at a time, so under load every refresh or sign-in waits for
//! the ones before it, and what each costs the writer is what bounds them per second.
//! Most of that is the commit: the same few pages (the session table and its indexes,
//! the audit log's tail) written to the WAL again for every one, and, through sqlx, a
//! thread hand-off per statement while the writer is held. Here one task owns these
//! writes: it takes every one queued while the last batch was being written and writes
//! them all in one transaction on a blocking thread, each in a savepoint of its own, so
//! a batch of one costs what a lone write did and a batch of fifty costs little more.
//! Every caller still gets its own answer, and only after the commit that made it
//! durable.

use std::sync::Arc;

use sqlx::SqlitePool;
use tessera_domain::Error;
use tokio::sync::{mpsc, oneshot};

use super::sqlite_direct::{SqliteDirect, Write, Wrote};
use crate::error::rusqlite_error;
use crate::query::sessions::{Rotation, SignInWrites, Written};

/// The most writes one transaction holds.
const MAX_BATCH: usize = 128;
/// How many batches in a row keep the writer's turn while more writes wait.
const MAX_HELD: usize = 8;
/// Writes waiting beyond the batch being written; senders wait for room beyond that.
const QUEUE: usize = 1024;

type Job = (Write, oneshot::Sender<Result<Wrote, Error>>);

/// The queue of a SQLite file's rotations and sign-ins and the task that writes them.
pub(crate) struct BatchWriter {
    jobs: mpsc::Sender<Job>,
}

impl BatchWriter {
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
        match self.write(Write::Rotate(Box::new(rotation))).await? {
            Wrote::Rotated(rotated) => Ok(rotated),
            other => Err(Error::Internal(format!("a rotation answered {other:?}"))),
        }
    }

    /// Writes one sign-in (its audit row already as stored).
    pub(crate) async fn sign_in(&self, writes: SignInWrites) -> Result<Written, Error> {
        match self.write(Write::SignIn(Box::new(writes))).await? {
            Wrote::SignedIn(written) => Ok(written),
            other => Err(Error::Internal(format!("a sign-in answered {other:?}"))),
        }
    }

    async fn write(&self, write: Write) -> Result<Wrote, Error> {
        let (reply, answer) = oneshot::channel();
        let stopped = || Error::Unavailable("the batch writer has stopped".to_owned());
        self.jobs.send((write, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_batches(direct: Arc<SqliteDirect>, writer: SqlitePool, mut queue: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    // The writer's turn, kept from one batch to the next while writes keep coming
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
        let (writes, replies): (Vec<Write>, Vec<_>) = jobs.drain(..).unzip();
        if turn.is_none() {
            turn = writer.acquire().await.map_err(|e| tracing::warn!(error = %e, "no writer turn for a batch")).ok();
        }
        let results = match turn {
            Some(_) => write_batch(&direct, writes).await,
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
                tracing::warn!(error = %e, batch = replies.len(), "a batch of rotations and sign-ins failed");
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
    writes: Vec<Write>,
) -> Result<Vec<Result<Wrote, rusqlite::Error>>, Error> {
    let direct = direct.clone();
    tokio::task::spawn_blocking(move || direct.write_all(&writes))
        .await
        .map_err(|e| Error::Internal(format!("batch task: {e}")))?
        .map_err(|e| rusqlite_error(&e))
}
