//! The ledger's clock, watched: an entry stamped well before the entries ahead of it, or
//! ahead of the server's own clock.

use custody_model::Timestamp;
use serde_json::json;

use super::Alert;

/// How far an entry may be stamped before the latest time of the entries ahead of it
/// without notice: servers' clocks differ a little, and writers race (the same bound
/// `audit verify` notes).
pub const TIME_SKEW_SECONDS: i64 = 300;

/// Watches the ledger's times as its tail is read in order, for an entry stamped well
/// before an earlier one (a clock turned back, or a backfill with `CUSTODY_NOW` on the data
/// directory, as `custody demo` makes) or well after the watcher's own clock (set
/// forward). Whatever was judged by time at such an entry (an approval's or an
/// exception's expiry, evidence's age, an exception's longest term) was judged by that
/// clock, which nobody else read: the alert puts a person in the loop, as `audit verify`'s
/// note does after the fact. Set back: once where a run of entries behind the latest time
/// starts, and again wherever an entry is set back from the one before it (a second trip
/// back inside the run). Set forward: where a run of entries ahead of the clock starts.
#[derive(Debug, Default)]
pub struct ClockWatch {
    /// The latest time so far, and its entry.
    latest: Option<(u64, Timestamp)>,
    /// The entry before, and its time.
    previous: Option<(u64, Timestamp)>,
    /// The entry before was stamped behind `latest`.
    behind: bool,
    /// The entry before was stamped ahead of the clock.
    ahead: bool,
}

impl ClockWatch {
    /// Sees entry `index`, stamped `at`, at `now` by the watcher's clock (entries in ledger
    /// order, from the first): the alert it calls for, if any.
    pub fn see(&mut self, index: u64, at: Timestamp, now: Timestamp) -> Option<Alert> {
        let previous = self.previous.replace((index, at));
        let ahead = at.unix_seconds() - now.unix_seconds() > TIME_SKEW_SECONDS;
        let starts_ahead = ahead && !std::mem::replace(&mut self.ahead, ahead);
        let Some((before, latest)) = self.latest else {
            self.latest = Some((index, at));
            return starts_ahead.then(|| ahead_alert(index, at, now));
        };
        if at > latest {
            self.latest = Some((index, at));
        }
        let back = latest.unix_seconds() - at.unix_seconds();
        if back <= TIME_SKEW_SECONDS {
            self.behind = false;
            return starts_ahead.then(|| ahead_alert(index, at, now));
        }
        let starts = !std::mem::replace(&mut self.behind, true);
        // Inside a run, set back again from the entry just before.
        let again =
            previous.filter(|(_, p)| p.unix_seconds() - at.unix_seconds() > TIME_SKEW_SECONDS);
        let (from, from_at) = match (starts, again) {
            (true, _) => (before, latest),
            (false, Some(p)) => p,
            (false, None) => return None,
        };
        let back = from_at.unix_seconds() - at.unix_seconds();
        Some(Alert {
            id: format!("time-went-back:{index}"),
            rule: "ledger-time-went-back".into(),
            severity: "warning".into(),
            text: format!(
                "ledger entry {index} is stamped {}, {}h{:02}m before entry {from} ({}): a clock turned back, or a backfill with CUSTODY_NOW (custody demo makes one); what was judged there by time (approval and exception expiry, evidence age) was judged by that clock",
                at.to_second(),
                back / 3600,
                back % 3600 / 60,
                from_at.to_second(),
            ),
            subject: json!({"ledger_index": index, "at": at.to_string(), "latest": from_at.to_string(), "latest_index": from}),
        })
    }
}

/// The alert for entry `index` stamped `at`, ahead of the watcher's clock (`now`).
fn ahead_alert(index: u64, at: Timestamp, now: Timestamp) -> Alert {
    let ahead = at.unix_seconds() - now.unix_seconds();
    Alert {
        id: format!("time-ahead:{index}"),
        rule: "ledger-time-ahead".into(),
        severity: "critical".into(),
        text: format!(
            "ledger entry {index} is stamped {}, {}h{:02}m ahead of this server's clock ({}): a clock set forward, or CUSTODY_NOW in the future; what was judged there by time (an exception's term, approval expiry) was judged by that clock",
            at.to_second(),
            ahead / 3600,
            ahead % 3600 / 60,
            now.to_second(),
        ),
        subject: json!({"ledger_index": index, "at": at.to_string(), "clock": now.to_string()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn entries_set_back_or_ahead_are_announced() {
        const DAY: i64 = 86_400;
        let now = at(10 * DAY);
        let mut watch = ClockWatch::default();
        let raised: Vec<(u64, String, String)> = [
            0,
            10,
            -3 * DAY,        // a backfill starts: announced
            -3 * DAY + 3600, // and goes on: not again
            -200,            // within the skew: not set back
            20,              // the clock again
            15,              // a little behind: servers disagree that much
            -DAY,            // set back once more: announced
            -DAY + 60,       // the run goes on
            -2 * DAY,        // set back again inside the run: announced
            400 * DAY,       // ahead of the clock: announced
            400 * DAY + 10,  // the run ahead goes on
            30,              // behind the latest now, far: a run starts
        ]
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| {
            watch
                .see(i as u64, at(10 * DAY + t), now)
                .map(|a| (i as u64, a.rule, a.text))
        })
        .collect();
        let at_entries: Vec<(u64, &str)> =
            raised.iter().map(|(i, r, _)| (*i, r.as_str())).collect();
        assert_eq!(
            at_entries,
            [
                (2, "ledger-time-went-back"),
                (7, "ledger-time-went-back"),
                (9, "ledger-time-went-back"),
                (10, "ledger-time-ahead"),
                (12, "ledger-time-went-back"),
            ],
            "{raised:?}"
        );
        assert!(raised[0].2.contains("72h00m before entry 1"), "{raised:?}");
        assert!(raised[1].2.contains("24h00m before entry 5"), "{raised:?}");
        assert!(raised[2].2.contains("before entry 8"), "{raised:?}");
    }
}
