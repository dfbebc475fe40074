//! `tessera pii encrypt` and `tessera pii rotate` (SPEC §5.8): bring every stored address
//! and phone number under the first key of `PII_ENCRYPTION_KEY`, online, a batch per
//! transaction, resuming after a stop where the last committed batch left off.

use tessera_domain::Error;
use tessera_store::query::pii::{self as store_pii, PiiTable};
use tessera_store::Backend;

use crate::app::Core;

/// Rows read per batch (and rewritten, at most, in one statement).
pub const PII_BATCH: u64 = 1000;

/// Where a run is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct PiiProgress {
    pub table: &'static str,
    /// 1 for the pass from where the run starts, then 2, 3… for the passes that check
    /// that nothing is left.
    pub pass: u32,
    /// Rows of `table` read so far by this pass.
    pub done: u64,
    /// Rows of `table` this run has to read (after where a stopped run left off).
    pub total: u64,
    /// Rows rewritten in this run, every table.
    pub rewritten: u64,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct PiiReport {
    /// Rows rewritten per table.
    pub rewritten: Vec<(&'static str, u64)>,
    /// Rows a serving node changed while they were being rewritten (left as it wrote them).
    pub skipped: u64,
    /// Whether the run resumed a stopped one.
    pub resumed: bool,
    /// Keys forgotten after a rotation (their data is all under the first key now).
    pub retired_keys: u64,
}

impl std::fmt::Display for PiiReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.rewritten.iter().map(|(t, n)| format!("{n} {t}")).collect();
        write!(f, "rewrote {}", parts.join(", "))?;
        if self.skipped > 0 {
            write!(f, "; {} rows changed meanwhile and were left as written (run again to check)", self.skipped)?;
        }
        if self.retired_keys > 0 {
            write!(f, "; {} old keys may now be dropped from PII_ENCRYPTION_KEY", self.retired_keys)?;
        }
        Ok(())
    }
}

/// Verification passes after the first, at most: each reads everything again and must
/// find nothing left to rewrite.
const MAX_CHECKS: u32 = 3;
/// Attempts of one batch that found the database busy (another process writing).
const BATCH_ATTEMPTS: u32 = 5;

/// The longest pause between batches on SQLite.
const SQLITE_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// What a run is: its job name (where its position is kept), the encrypting key's id, and
/// whether it rotates.
#[derive(Clone, Copy)]
struct Run<'a> {
    job: &'a str,
    kid: &'a str,
    rotate: bool,
}

/// Where a pass starts: a table and the last id done in it.
type Position = Option<(PiiTable, uuid::Uuid)>;

impl Core {
    /// Encrypts every plaintext address and phone number under the first key of the ring
    /// (`rotate` false), or also re-encrypts those under older keys (`rotate` true, after
    /// which the older keys are forgotten and may be dropped). Resumes a run of the same
    /// kind under the same first key that was stopped; `progress` hears of every batch.
    ///
    /// A row a serving node changed while its batch ran is left as that node wrote it; so
    /// a run ends with passes over everything until one finds nothing left to rewrite
    /// (none if the first, from the start, found nothing). If rows keep needing it (a
    /// node without the key, or with the old key first, is still writing), it fails and
    /// keeps every key.
    pub async fn pii_run(&self, rotate: bool, mut progress: impl FnMut(PiiProgress)) -> Result<PiiReport, Error> {
        let pii = self.store.pii();
        let Some(kid) = pii.primary_kid().map(str::to_owned) else {
            return Err(Error::Internal("PII_ENCRYPTION_KEY is not set".to_owned()));
        };
        let job = if rotate { "pii.rotate" } else { "pii.encrypt" };
        // `KID|TABLE|LAST_ID`: a cursor left under another first key starts over.
        let cursor = store_pii::load_cursor(self.store.reader(), job).await?;
        let resume: Position = cursor.as_deref().and_then(|c| {
            let mut parts = c.splitn(3, '|');
            let (Some(k), Some(t), Some(id)) = (parts.next(), parts.next(), parts.next()) else { return None };
            Some((PiiTable::named(t)?, uuid::Uuid::parse_str(id).ok()?)).filter(|_| k == kid)
        });
        let mut report = PiiReport { resumed: resume.is_some(), ..PiiReport::default() };
        let run = Run { job, kid: &kid, rotate };
        let (rewritten, skipped) = self.pii_pass(run, resume, 1, &mut report, &mut progress).await?;
        let mut settled = resume.is_none() && rewritten == 0 && skipped == 0;
        for pass in 2..MAX_CHECKS + 2 {
            if settled {
                break;
            }
            let (rewritten, skipped) = self.pii_pass(run, None, pass, &mut report, &mut progress).await?;
            settled = rewritten == 0 && skipped == 0;
        }
        store_pii::save_cursor(self.store.writer(), job, None).await?;
        if !settled {
            return Err(Error::Internal(format!(
                "after {} passes rows still hold plaintext or an older key's data ({} changed while being rewritten): \
                 is a node still running without PII_ENCRYPTION_KEY, or with another key first? Restart every node \
                 with the ring and run again (every key is kept until then)",
                MAX_CHECKS + 1,
                report.skipped
            )));
        }
        if rotate {
            report.retired_keys = store_pii::forget_keys_except(self.store.writer(), &kid).await?;
        }
        Ok(report)
    }

    /// One pass over every table from `from`; what it rewrote and skipped.
    async fn pii_pass(
        &self,
        run: Run<'_>,
        from: Position,
        pass: u32,
        report: &mut PiiReport,
        progress: &mut impl FnMut(PiiProgress),
    ) -> Result<(u64, u64), Error> {
        let (mut pass_rewritten, mut pass_skipped) = (0, 0);
        let start_at = from.map(|(t, _)| t);
        let mut skipping = start_at.is_some();
        for table in PiiTable::ALL {
            if skipping && Some(table) != start_at {
                continue;
            }
            skipping = false;
            // From the nil id (before every id) at a table's start, so that the saved
            // position names the table even before its first batch is in.
            let mut after = Some(from.filter(|(t, _)| *t == table).map_or(uuid::Uuid::nil(), |(_, id)| id));
            let total = store_pii::count(self.store.reader(), table, after).await?;
            let mut done = 0;
            loop {
                let started = std::time::Instant::now();
                let batch = self.pii_batch(run, table, after).await?;
                if self.store.backend() == Backend::Sqlite {
                    // SQLite has one writer: a pause of a quarter of the batch's time (at
                    // most SQLITE_PAUSE) lets the servers' writes waiting in their busy
                    // handlers through between batches.
                    tokio::time::sleep((started.elapsed() / 4).min(SQLITE_PAUSE)).await;
                }
                done += batch.scanned;
                pass_rewritten += batch.rewritten;
                pass_skipped += batch.skipped;
                report.skipped += batch.skipped;
                match report.rewritten.iter_mut().find(|(t, _)| *t == table.name()) {
                    Some((_, n)) => *n += batch.rewritten,
                    None => report.rewritten.push((table.name(), batch.rewritten)),
                }
                let rewritten = report.rewritten.iter().map(|(_, n)| n).sum();
                progress(PiiProgress { table: table.name(), pass, done, total: total.max(done), rewritten });
                match batch.last {
                    Some(last) if batch.scanned == PII_BATCH => after = Some(last),
                    _ => break,
                }
            }
        }
        Ok((pass_rewritten, pass_skipped))
    }

    /// One batch in its own transaction, with the position it reaches. The transaction
    /// writes first (the position it starts from), so that on SQLite it holds the write
    /// lock before it reads and cannot be refused its write by another process's commit;
    /// a batch that finds the database busy anyway is tried again.
    async fn pii_batch(
        &self,
        run: Run<'_>,
        table: PiiTable,
        after: Option<uuid::Uuid>,
    ) -> Result<store_pii::Batch, Error> {
        let Run { job, kid, rotate } = run;
        let position = |id: uuid::Uuid| format!("{kid}|{}|{id}", table.name());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let run = async {
                let tx = self.store.begin().await?;
                store_pii::save_cursor(&tx, job, after.map(position).as_deref()).await?;
                let batch = store_pii::seal_batch(&tx, table, after, rotate, PII_BATCH).await?;
                if let Some(last) = batch.last {
                    store_pii::save_cursor(&tx, job, Some(&position(last))).await?;
                }
                tx.commit().await?;
                Ok::<_, Error>(batch)
            };
            match run.await {
                Err(Error::Unavailable(why)) if attempt < BATCH_ATTEMPTS => {
                    tracing::info!(%why, attempt, "a PII batch found the database busy; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt))).await;
                }
                done => return done,
            }
        }
    }
}
