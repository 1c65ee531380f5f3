//! The ledger's tail: the one task that follows the log for a long-running server, and the
//! subscriptions that read what it saw.
//!
//! [`App::follow_ledger`] reads the log's size every [`FOLLOW_EVERY`]. When it grew by
//! anything but this process's own appends, it moves the state cache's generation (so
//! records other processes changed are read again); then it reads the new entries once,
//! parses each into an [`Event`] once, keeps the latest [`KEPT`] in memory, and wakes
//! every [`Subscription`]. Alert rules, metrics and the state
//! cache all hang off this one loop, instead of each polling the store itself.
//!
//! Invariants:
//! - A subscription sees every entry, in order, exactly once, from where it started: what
//!   the tail still holds is served from memory, anything older is read from the store.
//! - A leaf that is not a custody event is an integrity failure, not a skipped entry.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custody_store::{MAX_ENTRIES_PER_READ, Store};
use tokio::sync::watch;

use crate::app::App;
use crate::events::Event;
use crate::{AppError, AppResult};

/// How often the tail reads the log's size (and so how soon another process's write is
/// seen by this server's state cache and subscribers).
pub const FOLLOW_EVERY: Duration = Duration::from_millis(50);

/// Events the tail keeps in memory for subscriptions that are nearly caught up.
const KEPT: usize = 4_096;

/// One ledger entry as the tail hands it out: its index and its event.
pub type Followed = (u64, Arc<Event>);

/// What the tail has seen.
pub(crate) struct Tail {
    /// The log's size as last read (subscriptions wait on it).
    size: watch::Sender<u64>,
    /// The latest events read, contiguous, oldest first.
    recent: Mutex<VecDeque<Followed>>,
}

impl Tail {
    pub(crate) fn new() -> Tail {
        Tail {
            size: watch::Sender::new(0),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// The events of `[start, end)` if the tail still holds all of them.
    fn held(&self, start: u64, end: u64) -> Option<Vec<Followed>> {
        let recent = self.recent.lock().ok()?;
        let first = recent.front()?.0;
        let last = recent.back()?.0;
        if start < first || end > last + 1 {
            return None;
        }
        let skip = usize::try_from(start - first).ok()?;
        let take = usize::try_from(end - start).ok()?;
        Some(recent.iter().skip(skip).take(take).cloned().collect())
    }

    fn keep(&self, events: &[Followed]) {
        if let Ok(mut recent) = self.recent.lock() {
            for e in events {
                // Contiguous only: a gap (entries read by nobody) starts the window afresh.
                if recent.back().is_some_and(|(last, _)| last + 1 != e.0) {
                    recent.clear();
                }
                recent.push_back(e.clone());
                if recent.len() > KEPT {
                    recent.pop_front();
                }
            }
        }
    }
}

/// A reader of the ledger from some index on, woken by the tail.
pub struct Subscription<'a, S: Store> {
    app: &'a App<S>,
    next: u64,
    size: watch::Receiver<u64>,
}

impl<S: Store> Subscription<'_, S> {
    /// The next entries (at most a page), waiting until there are some. Fails only when
    /// the store fails or an entry is not an event.
    pub async fn next(&mut self) -> AppResult<Vec<Followed>> {
        loop {
            let size = *self.size.borrow_and_update();
            if self.next < size {
                let end = size.min(self.next + MAX_ENTRIES_PER_READ);
                let events = self.app.events(self.next, end).await?;
                self.next = end;
                return Ok(events);
            }
            if self.size.changed().await.is_err() {
                // The tail is gone (the App is being dropped): nothing more will come.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Everything up to the log's size now (read from the store, not waiting for the tail):
    /// for a reader that must be exact at this moment, like a metrics scrape.
    pub async fn catch_up(&mut self) -> AppResult<Vec<Followed>> {
        let size = self.app.store.size().await?;
        let mut out = Vec::new();
        while self.next < size {
            let end = size.min(self.next + MAX_ENTRIES_PER_READ);
            out.extend(self.app.events(self.next, end).await?);
            self.next = end;
        }
        Ok(out)
    }

    /// The index of the next entry this subscription will read.
    pub fn position(&self) -> u64 {
        self.next
    }
}

impl<S: Store> App<S> {
    /// A subscription to the ledger from entry `from` on.
    pub fn subscribe(&self, from: u64) -> Subscription<'_, S> {
        Subscription {
            app: self,
            next: from,
            size: self.tail.size.subscribe(),
        }
    }

    /// The events of entries `[start, end)`, from the tail's memory when it holds them.
    pub async fn events(&self, start: u64, end: u64) -> AppResult<Vec<Followed>> {
        if let Some(held) = self.tail.held(start, end) {
            return Ok(held);
        }
        let entries = self.store.entries(start, end).await?;
        entries
            .into_iter()
            .map(|e| {
                Event::from_leaf(&e.leaf)
                    .map(|event| (e.index, Arc::new(event)))
                    .map_err(|why| AppError::Integrity(format!("ledger entry {}: {why}", e.index)))
            })
            .collect()
    }

    /// Follows the log until the future is dropped (a server spawns it): every
    /// [`FOLLOW_EVERY`] it reads the size; when it grew, it moves the state cache's
    /// generation (unless this process's own appends alone grew it), reads and parses the
    /// new entries once, and wakes the subscriptions.
    /// Without it (the CLI) the state cache serves nothing and every read goes to the
    /// store.
    pub async fn follow_ledger(&self) {
        let mut seen: Option<u64> = None;
        loop {
            match self.store.size().await {
                Ok(size) => {
                    if seen != Some(size) {
                        // Grown by this process alone: its appends marked what they wrote.
                        let foreign = match seen {
                            Some(from) if from < size => self.state_cache.grew(from, size),
                            _ => true,
                        };
                        if foreign {
                            self.state_cache.moved();
                        }
                        if let Some(from) = seen.filter(|&from| from < size) {
                            // Parse once, for every subscriber; a failure leaves the
                            // entries to be read from the store by whoever asks.
                            if let Ok(events) = self.read_events(from, size).await {
                                self.tail.keep(&events);
                            }
                        }
                        seen = Some(size);
                        self.tail.size.send_replace(size);
                    }
                    self.state_cache.looked();
                }
                Err(_) => self.state_cache.lost(),
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }

    async fn read_events(&self, mut start: u64, end: u64) -> AppResult<Vec<Followed>> {
        let mut out = Vec::new();
        while start < end {
            let page_end = end.min(start + MAX_ENTRIES_PER_READ);
            out.extend(self.events(start, page_end).await?);
            start = page_end;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_model::Timestamp;

    fn followed(index: u64) -> Followed {
        let event = Event {
            at: Timestamp::from_unix_seconds(1_800_000_000).unwrap(),
            actor: "t".into(),
            auth: None,
            body: crate::events::EventBody::RollbackRefused(crate::events::RollbackRefused {
                environment: "e".into(),
                reason: index.to_string(),
            }),
        };
        (index, Arc::new(event))
    }

    #[test]
    fn the_tail_serves_only_a_contiguous_window_it_holds() {
        let tail = Tail::new();
        assert!(tail.held(0, 1).is_none());
        tail.keep(&(10..20).map(followed).collect::<Vec<_>>());
        let got = tail.held(12, 15).unwrap();
        assert_eq!(
            got.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![12, 13, 14]
        );
        assert!(tail.held(9, 12).is_none(), "starts before the window");
        assert!(tail.held(15, 21).is_none(), "ends past it");
        // A gap starts afresh.
        tail.keep(&[followed(30)]);
        assert!(tail.held(12, 15).is_none());
        assert_eq!(tail.held(30, 31).unwrap().len(), 1);
    }

    #[test]
    fn the_tail_never_holds_more_than_its_bound() {
        let tail = Tail::new();
        tail.keep(&(0..(KEPT as u64 + 100)).map(followed).collect::<Vec<_>>());
        assert_eq!(tail.recent.lock().unwrap().len(), KEPT);
        assert!(tail.held(0, 1).is_none());
        assert!(tail.held(KEPT as u64 + 99, KEPT as u64 + 100).is_some());
    }
}
