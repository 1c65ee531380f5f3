//! The entries' times, in ledger order: an entry stamped well before an earlier one is
//! noted for the auditor, never failed.

use custody_model::Timestamp;

/// How far an entry's time may fall behind an earlier entry's before the report notes it
/// (servers sharing a database may disagree on the time by this much): the bound the
/// serving side's alert uses too.
const TIME_SKEW: i64 = crate::alerts::TIME_SKEW_SECONDS;

/// Entries stamped earlier than an entry before them. The ledger's order, not the times
/// its events carry, says what came first: a time is what the writer's clock said, and a
/// data directory's operator can set it (`CUSTODY_NOW`, for backfills), as a server's
/// operator can turn its clock. Noted, not failed: a backfill is legitimate, and the
/// auditor is told which entries carry a time that went back.
#[derive(Default)]
pub(crate) struct TimeOrder {
    /// The latest time so far, and its entry.
    latest: Option<(u64, Timestamp)>,
    /// Entries stamped more than [`TIME_SKEW`] before the latest time so far.
    behind: u64,
    /// The first of them: (entry, its time, the earlier entry, that one's time).
    first: Option<(u64, Timestamp, u64, Timestamp)>,
    /// The first few of them and the last, by index (a backfill's run of entries must not
    /// hide one set back later).
    named: Vec<u64>,
    last: u64,
}

/// How many of the entries set back the note names.
const NAMED_BEHIND: usize = 5;

impl TimeOrder {
    pub(super) fn see(&mut self, index: u64, at: Timestamp) {
        match self.latest {
            Some((before, latest)) if at.unix_seconds() + TIME_SKEW < latest.unix_seconds() => {
                self.behind += 1;
                self.first.get_or_insert((index, at, before, latest));
                if self.named.len() < NAMED_BEHIND {
                    self.named.push(index);
                }
                self.last = index;
            }
            Some((_, latest)) if at <= latest => {}
            _ => self.latest = Some((index, at)),
        }
    }

    /// The report's note, if any entry went back in time.
    pub(crate) fn note(&self) -> Option<String> {
        let (index, at, before, latest) = self.first?;
        let mut which: Vec<String> = self.named.iter().map(u64::to_string).collect();
        if self.behind > self.named.len() as u64 {
            which.push(format!("…, {}", self.last));
        }
        Some(format!(
            "{} entries are stamped more than {} minutes before an entry earlier in the ledger (entries {}; the first: entry {index} at {at}, after entry {before} at {latest}): their times were set rather than read from a clock (a backfill with CUSTODY_NOW on the data directory, or a server's clock turned back); the ledger's order, not these times, says what came first",
            self.behind,
            TIME_SKEW / 60,
            which.join(", ")
        ))
    }
}
