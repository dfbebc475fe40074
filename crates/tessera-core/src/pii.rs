//! `tessera pii encrypt` and `tessera pii rotate` (SPEC §5.8): bring every stored address
//! and phone number under the first key of `PII_ENCRYPTION_KEY`, online, a batch per
//! transaction, resuming after a stop where the last committed batch left off.

use tessera_domain::Error;
use tessera_store::query::pii::{self as store_pii, PiiTable};

use crate::Core;

/// Rows read per batch (and rewritten, at most, in one statement).
pub const PII_BATCH: u64 = 1000;

/// Where a run is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct PiiProgress {
    pub table: &'static str,
    /// Rows of `table` read so far by this run.
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

impl Core {
    /// Encrypts every plaintext address and phone number under the first key of the ring
    /// (`rotate` false), or also re-encrypts those under older keys (`rotate` true, after
    /// which the older keys are forgotten and may be dropped). Resumes a run of the same
    /// kind under the same first key that was stopped; `progress` hears of every batch.
    pub async fn pii_run(&self, rotate: bool, mut progress: impl FnMut(PiiProgress)) -> Result<PiiReport, Error> {
        let pii = self.store.pii();
        let Some(kid) = pii.primary_kid().map(str::to_owned) else {
            return Err(Error::Internal("PII_ENCRYPTION_KEY is not set".to_owned()));
        };
        let job = if rotate { "pii.rotate" } else { "pii.encrypt" };
        // `KID|TABLE|LAST_ID`: a cursor left under another first key starts over.
        let cursor = store_pii::load_cursor(self.store.reader(), job).await?;
        let resume = cursor.as_deref().and_then(|c| {
            let mut parts = c.splitn(3, '|');
            let (Some(k), Some(t), Some(id)) = (parts.next(), parts.next(), parts.next()) else { return None };
            Some((PiiTable::named(t)?, uuid::Uuid::parse_str(id).ok()?)).filter(|_| k == kid)
        });
        let mut report = PiiReport { resumed: resume.is_some(), ..PiiReport::default() };
        let mut rewritten_all = 0;
        let start_at = resume.map(|(t, _)| t);
        let mut skipping = start_at.is_some();
        for table in PiiTable::ALL {
            if skipping && Some(table) != start_at {
                continue;
            }
            skipping = false;
            let mut after = resume.filter(|(t, _)| *t == table).map(|(_, id)| id);
            let total = store_pii::count(self.store.reader(), table, after).await?;
            let mut done = 0;
            let mut rewritten = 0;
            loop {
                let tx = self.store.begin().await?;
                let batch = store_pii::seal_batch(&tx, table, after, rotate, PII_BATCH).await?;
                if let Some(last) = batch.last {
                    store_pii::save_cursor(&tx, job, Some(&format!("{kid}|{}|{last}", table.name()))).await?;
                }
                tx.commit().await?;
                done += batch.scanned;
                rewritten += batch.rewritten;
                rewritten_all += batch.rewritten;
                report.skipped += batch.skipped;
                progress(PiiProgress { table: table.name(), done, total: total.max(done), rewritten: rewritten_all });
                match batch.last {
                    Some(last) if batch.scanned == PII_BATCH => after = Some(last),
                    _ => break,
                }
            }
            report.rewritten.push((table.name(), rewritten));
        }
        store_pii::save_cursor(self.store.writer(), job, None).await?;
        if rotate && report.skipped == 0 {
            report.retired_keys = store_pii::forget_keys_except(self.store.writer(), &kid).await?;
        }
        Ok(report)
    }
}
