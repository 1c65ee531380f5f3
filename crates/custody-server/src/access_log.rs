//! The access log's writer: a bounded queue written in batches, durable before a mutating
//! or refused request is answered; anonymous requests sampled and counted in flight per
//! client address; entries pruned past the configured retention. What each request's entry
//! says is access.rs's `record`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use custody_store::AccessEntry;
use tokio::sync::{mpsc, oneshot};

use crate::ServerState;

/// The access log writer: a bounded queue and a task that writes it in batches. When the
/// writer falls behind, requests wait to enqueue (backpressure) rather than any entry being
/// dropped or the queue growing without bound.
///
/// The guarantee: a request that changed something (any method but GET and HEAD) or was
/// refused is answered only after its entry is committed (waiting for the batch it joins;
/// if that write fails, it is answered 503); an allowed read is answered at once and its
/// entry written within a batch, so a crash can lose the last few reads. Anonymous
/// requests (no valid credential) are recorded in full up to `anonymous_per_minute` per
/// client address and minute, then one in `anonymous_sample`, each recorded one counting
/// those skipped before it.
pub(crate) struct AccessLog {
    queue: Mutex<Option<mpsc::Sender<Queued>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    settings: crate::AccessLogSettings,
    /// Per client address: (minute, requests this minute, skipped since the last recorded).
    sampled: Mutex<HashMap<IpAddr, (i64, u32, u32)>>,
    /// Per client address: anonymous requests in flight.
    in_flight: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// An entry waiting to be written (none: a barrier, see [`AccessLog::sync`]), and who
/// waits for it.
struct Queued {
    entry: Option<AccessEntry>,
    written: Option<oneshot::Sender<bool>>,
}

/// Entries waiting at most; most entries written per batch; how long a batch of reads
/// waits for company (so also how many of the last reads a crash can lose).
const QUEUE: usize = 20_000;
const BATCH: usize = 4_096;
const BATCH_WAIT: Duration = Duration::from_millis(20);
/// Client addresses tracked at most for sampling and in-flight counts (forgotten when
/// full, so a flood of addresses cannot grow them).
const TRACKED: usize = 100_000;

/// One anonymous request in flight from a client; counted until dropped.
pub(crate) struct Slot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl AccessLog {
    pub(crate) fn start(state: Weak<ServerState>, settings: crate::AccessLogSettings) -> AccessLog {
        let (tx, mut rx) = mpsc::channel::<Queued>(QUEUE);
        let writer = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Reads wait up to BATCH_WAIT for company, so a busy gate commits at most
                // 1/BATCH_WAIT large batches a second, not one per wake-up; an entry whose
                // request waits for it closes the batch at once.
                let mut awaited = first.written.is_some();
                let mut batch = vec![first];
                let due = tokio::time::Instant::now() + BATCH_WAIT;
                while batch.len() < BATCH {
                    let next = match rx.try_recv() {
                        Ok(e) => Some(e),
                        Err(_) if awaited => None,
                        Err(_) => tokio::time::timeout_at(due, rx.recv()).await.ok().flatten(),
                    };
                    let Some(e) = next else { break };
                    awaited |= e.written.is_some();
                    batch.push(e);
                }
                let Some(state) = state.upgrade() else { break };
                let (entries, waiting): (Vec<_>, Vec<_>) =
                    batch.into_iter().map(|q| (q.entry, q.written)).unzip();
                let entries: Vec<AccessEntry> = entries.into_iter().flatten().collect();
                let written = if entries.is_empty() {
                    Ok(())
                } else {
                    state.app.log().record_access(entries).await
                };
                if let Err(e) = &written {
                    // Waiting requests are told; reads already answered are only logged.
                    tracing::error!(error = %e, "writing the access log failed");
                }
                for w in waiting.into_iter().flatten() {
                    let _ = w.send(written.is_ok());
                }
            }
        });
        AccessLog {
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            settings,
            sampled: Mutex::new(HashMap::new()),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn sender(&self) -> Option<mpsc::Sender<Queued>> {
        self.queue.lock().ok().and_then(|q| q.clone())
    }

    /// Queues an entry to be written with the next batch.
    pub(crate) async fn push(&self, entry: AccessEntry) {
        if let Some(tx) = self.sender() {
            let _ = tx
                .send(Queued {
                    entry: Some(entry),
                    written: None,
                })
                .await;
        }
    }

    /// Queues an entry and waits until it is committed; false if it could not be.
    pub(crate) async fn push_durable(&self, entry: AccessEntry) -> bool {
        let Some(tx) = self.sender() else {
            return false;
        };
        let (done, written) = oneshot::channel();
        if tx
            .send(Queued {
                entry: Some(entry),
                written: Some(done),
            })
            .await
            .is_err()
        {
            return false;
        }
        written.await.unwrap_or(false)
    }

    /// Whether to record an anonymous request from `ip` at `now` (Unix seconds): `Some` with
    /// how many were skipped before it, `None` to skip it.
    pub(crate) fn sample(&self, ip: IpAddr, now: i64) -> Option<u32> {
        let mut sampled = self.sampled.lock().unwrap_or_else(PoisonError::into_inner);
        if sampled.len() >= TRACKED && !sampled.contains_key(&ip) {
            sampled.clear();
        }
        let minute = now.div_euclid(60);
        let (at, count, skipped) = sampled.entry(ip).or_insert((minute, 0, 0));
        if *at != minute {
            (*at, *count) = (minute, 0);
        }
        *count = count.saturating_add(1);
        let beyond = count.saturating_sub(self.settings.anonymous_per_minute);
        if beyond == 0 || beyond % self.settings.anonymous_sample == 0 {
            Some(std::mem::take(skipped))
        } else {
            *skipped = skipped.saturating_add(1);
            None
        }
    }

    /// A slot for an anonymous request from `ip`, unless `limit` (0: none) are in flight.
    pub(crate) fn enter(&self, ip: IpAddr, limit: usize) -> Option<Slot> {
        let mut counts = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if counts.len() >= TRACKED && !counts.contains_key(&ip) {
            return None; // a flood of addresses: refuse the new ones until some finish
        }
        let n = counts.entry(ip).or_insert(0);
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            ip,
            counts: self.in_flight.clone(),
        })
    }

    /// Waits until every entry queued before the call is written (the queue stays open).
    pub(crate) async fn sync(&self) {
        let Some(tx) = self.sender() else { return };
        let (done, written) = oneshot::channel();
        let barrier = Queued {
            entry: None,
            written: Some(done),
        };
        if tx.send(barrier).await.is_ok() {
            let _ = written.await;
        }
    }

    /// Closes the queue and waits for the writer to write what is in it.
    pub(crate) async fn flush(&self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }
}

/// How often entries past the access log's retention are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// Removes the access-log entries older than `[access_log] retention`, at start and hourly.
pub(crate) async fn prune(state: Arc<ServerState>) {
    loop {
        let before = state.now().unix_seconds() - state.settings.access_log.retention;
        match custody_model::Timestamp::from_unix_seconds(before) {
            Ok(before) => match state.app.log().prune_access(before).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(removed = n, %before, "access log entries past their retention removed")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the access log's retention could not be applied")
                }
            },
            Err(e) => tracing::warn!(error = %e, "the access log's retention is out of range"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}
