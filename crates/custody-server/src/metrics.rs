//! `/metrics`: the delivery process in the Prometheus text format (OpenMetrics).
//!
//! Delivery metrics are folded from the ledger itself: each scrape first reads the entries
//! appended since the last one (by this server, a CLI on the same data directory or another
//! server), so the counters are exactly what is recorded, and a restarted server recounts
//! them from the first entry. HTTP latency per route counts what this process served since
//! it started.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use custody_model::Timestamp;
use custody_store::{MAX_ENTRIES_PER_READ, Store};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::ServerState;

type Labels = Vec<(&'static str, String)>;

/// Histograms of durations in seconds, from 1 ms to about 12 days.
#[derive(Clone)]
struct Seconds;

impl MetricConstructor<Histogram> for Seconds {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.001, 4.0, 16))
    }
}

/// Histograms of request latency in seconds, from 50 µs to about 3 s.
#[derive(Clone)]
struct Latency;

impl MetricConstructor<Histogram> for Latency {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
    }
}

pub(crate) struct Metrics {
    registry: Registry,
    requested: Family<Labels, Counter>,
    decisions: Family<Labels, Counter>,
    gates: Family<Labels, Counter>,
    certified: Family<Labels, Counter>,
    time_to_promotion: Family<Labels, Histogram, Seconds>,
    reviews: Family<Labels, Counter>,
    approval_latency: Family<Labels, Histogram, Seconds>,
    rollbacks: Family<Labels, Counter>,
    deploys: Family<Labels, Counter>,
    drift: Family<Labels, Counter>,
    break_glass: Family<Labels, Counter>,
    discrepancies: Counter,
    ledger_entries: Gauge,
    http: Family<Labels, Histogram, Latency>,
    /// Appends this process made, by outcome (`committed`, `failed`).
    appends: Family<Labels, Histogram, Latency>,
    alerts: Family<Labels, Counter>,
    follower: Mutex<Follower>,
}

/// How often the metrics fold in new ledger entries between scrapes.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Per day (`YYYY-MM-DD`, UTC), what the delivery charts draw.
pub(crate) type Daily = std::collections::BTreeMap<String, Day>;

/// One day's delivery.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Day {
    /// Promotions requested, certifications, rejections, rollbacks.
    pub(crate) counts: [u64; 4],
    /// Seconds from request to certification, summed over the day's certifications of a
    /// requested promotion, and their number.
    pub(crate) to_promotion: (f64, u64),
    /// Seconds from request to review, summed over the day's reviews, and their number.
    pub(crate) approval_latency: (f64, u64),
}

impl Day {
    /// The mean time to promotion of the day's certifications, in hours.
    pub(crate) fn mean_hours_to_promotion(&self) -> Option<f64> {
        let (sum, n) = self.to_promotion;
        (n > 0).then(|| sum / n as f64 / 3600.0)
    }

    /// The mean approval latency of the day's reviews, in hours.
    pub(crate) fn mean_hours_to_review(&self) -> Option<f64> {
        let (sum, n) = self.approval_latency;
        (n > 0).then(|| sum / n as f64 / 3600.0)
    }
}

/// How far the metrics have read the ledger, and the open promotions' request times.
#[derive(Default)]
struct Follower {
    next: u64,
    daily: Daily,
    /// Promotion id → (environment, requested at, in seconds since the epoch).
    open: HashMap<String, (String, f64)>,
}

fn seconds(event: &Value) -> Option<f64> {
    let at: Timestamp = event.get("at")?.as_str()?.parse().ok()?;
    Some(at.as_datetime().unix_timestamp_nanos() as f64 / 1e9)
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut m = Metrics {
            requested: Family::default(),
            decisions: Family::default(),
            gates: Family::default(),
            certified: Family::default(),
            time_to_promotion: Family::new_with_constructor(Seconds),
            reviews: Family::default(),
            approval_latency: Family::new_with_constructor(Seconds),
            rollbacks: Family::default(),
            deploys: Family::default(),
            drift: Family::default(),
            break_glass: Family::default(),
            discrepancies: Counter::default(),
            ledger_entries: Gauge::default(),
            http: Family::new_with_constructor(Latency),
            appends: Family::new_with_constructor(Latency),
            alerts: Family::default(),
            follower: Mutex::new(Follower::default()),
            registry: Registry::with_prefix("custody"),
        };
        m.registry.register(
            "promotions_requested",
            "Promotions requested, by environment",
            m.requested.clone(),
        );
        m.registry.register(
            "decisions",
            "Gate decisions recorded, by environment and outcome",
            m.decisions.clone(),
        );
        m.registry.register(
            "gate_results",
            "Gate results in recorded decisions, by gate and status (fail/waiting over all: the rejection rate per gate)",
            m.gates.clone(),
        );
        m.registry.register(
            "certifications",
            "Releases certified, by environment",
            m.certified.clone(),
        );
        m.registry.register(
            "time_to_promotion_seconds",
            "From a promotion's request to its certification, by environment",
            m.time_to_promotion.clone(),
        );
        m.registry.register(
            "reviews",
            "Approvals and rejections recorded, by verdict",
            m.reviews.clone(),
        );
        m.registry.register(
            "approval_latency_seconds",
            "From a promotion's request to each review of it, by environment",
            m.approval_latency.clone(),
        );
        m.registry.register(
            "rollbacks",
            "Rollbacks, by environment and whether a failed deploy triggered them",
            m.rollbacks.clone(),
        );
        m.registry.register(
            "deploys_reported",
            "Deploys reported, by environment and status",
            m.deploys.clone(),
        );
        m.registry.register(
            "drift_digests",
            "Digests reported running that were never certified there, by environment",
            m.drift.clone(),
        );
        m.registry.register(
            "provenance_discrepancies",
            "Builds of the same source and parameters that produced different digests",
            m.discrepancies.clone(),
        );
        m.registry.register(
            "ledger_entries",
            "Entries in the ledger",
            m.ledger_entries.clone(),
        );
        m.registry.register(
            "ledger_append_duration_seconds",
            "Ledger appends made by this process, from the request to the durable commit (group commit and fsync included), by outcome",
            m.appends.clone(),
        );
        m.registry.register(
            "break_glass",
            "Promotions certified by breaking glass, by environment",
            m.break_glass.clone(),
        );
        m.registry.register(
            "alerts_raised",
            "Alerts raised, by rule and severity",
            m.alerts.clone(),
        );
        m.registry.register(
            "http_request_duration_seconds",
            "HTTP requests served by this process, by route, method and status",
            m.http.clone(),
        );
        m
    }

    /// Times every append `app` makes, into `ledger_append_duration_seconds`.
    pub(crate) fn time_appends_of<S: custody_store::Store>(&self, app: &custody_app::App<S>) {
        let appends = self.appends.clone();
        app.observe_appends(move |took, committed| {
            let outcome = if committed { "committed" } else { "failed" };
            appends
                .get_or_create(&vec![("outcome", outcome.to_owned())])
                .observe(took.as_secs_f64());
        });
    }

    /// Folds one ledger event into the delivery metrics.
    fn observe(&self, follower: &mut Follower, event: &Value) {
        let s = |k: &str| {
            event
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let env = || vec![("environment", s("environment"))];
        let day = s("at").get(..10).unwrap_or_default().to_owned();
        let mut count = |slot: usize| {
            if day.len() == 10 {
                follower.daily.entry(day.clone()).or_default().counts[slot] += 1;
            }
        };
        match s("type").as_str() {
            "promotion.requested" => count(0),
            "environment.certified" => count(1),
            "approval.recorded" if s("verdict") == "reject" => count(2),
            "rollback" => count(3),
            _ => {}
        }
        match s("type").as_str() {
            "promotion.requested" => {
                self.requested.get_or_create(&env()).inc();
                if let Some(at) = seconds(event) {
                    follower.open.insert(s("promotion"), (s("environment"), at));
                }
            }
            "decision.recorded" => {
                let allowed = event.get("allowed").and_then(Value::as_bool) == Some(true);
                let mut labels = env();
                labels.push(("allowed", allowed.to_string()));
                self.decisions.get_or_create(&labels).inc();
                if allowed && event.get("break_glass").is_some_and(Value::is_string) {
                    self.break_glass.get_or_create(&env()).inc();
                }
                let mut rejected = false;
                for g in event
                    .get("gates")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let field = |k: &str| {
                        g.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    rejected |= field("gate") == "approvals" && field("status") == "fail";
                    self.gates
                        .get_or_create(&vec![("gate", field("gate")), ("status", field("status"))])
                        .inc();
                }
                if rejected {
                    follower.open.remove(&s("promotion"));
                }
            }
            "environment.certified" => {
                self.certified.get_or_create(&env()).inc();
                if let (Some((environment, requested)), Some(at)) =
                    (follower.open.remove(&s("promotion")), seconds(event))
                {
                    let took = (at - requested).max(0.0);
                    self.time_to_promotion
                        .get_or_create(&vec![("environment", environment)])
                        .observe(took);
                    let d = follower.daily.entry(day.clone()).or_default();
                    d.to_promotion.0 += took;
                    d.to_promotion.1 += 1;
                }
            }
            "approval.recorded" => {
                self.reviews
                    .get_or_create(&vec![("verdict", s("verdict"))])
                    .inc();
                if let (Some((environment, requested)), Some(at)) =
                    (follower.open.get(&s("promotion")), seconds(event))
                {
                    let latency = (at - requested).max(0.0);
                    self.approval_latency
                        .get_or_create(&vec![("environment", environment.clone())])
                        .observe(latency);
                    let d = follower.daily.entry(day.clone()).or_default();
                    d.approval_latency.0 += latency;
                    d.approval_latency.1 += 1;
                }
            }
            "alert.raised" => {
                self.alerts
                    .get_or_create(&vec![("rule", s("rule")), ("severity", s("severity"))])
                    .inc();
            }
            "rollback" => {
                let automatic = event.get("automatic").and_then(Value::as_bool) == Some(true);
                let mut labels = env();
                labels.push(("automatic", automatic.to_string()));
                self.rollbacks.get_or_create(&labels).inc();
            }
            "deploy.reported" => {
                let mut labels = env();
                labels.push(("status", s("status")));
                self.deploys.get_or_create(&labels).inc();
                let drift = event
                    .get("drift")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                self.drift.get_or_create(&env()).inc_by(drift as u64);
            }
            "provenance.discrepancy" => {
                self.discrepancies.inc();
            }
            _ => {}
        }
    }

    /// Reads the entries appended since the last call and folds them in.
    async fn catch_up<S: Store>(&self, store: &S) -> Result<(), String> {
        let mut follower = self.follower.lock().await;
        let size = store.size().await.map_err(|e| e.to_string())?;
        while follower.next < size {
            let end = size.min(follower.next + MAX_ENTRIES_PER_READ);
            let entries = store
                .entries(follower.next, end)
                .await
                .map_err(|e| e.to_string())?;
            for entry in entries {
                if let Ok(event) = serde_json::from_slice::<Value>(&entry.leaf) {
                    self.observe(&mut follower, &event);
                }
            }
            follower.next = end;
        }
        self.ledger_entries
            .set(i64::try_from(size).unwrap_or(i64::MAX));
        Ok(())
    }
}

impl Metrics {
    /// Keeps up with the ledger in the background (every [`FOLLOW_EVERY`]), so that a
    /// scrape or the Charts page folds in a second's worth of entries at most, not, on the
    /// first view after a start, the whole history.
    pub(crate) async fn follow<S: Store>(&self, store: &S) {
        loop {
            if let Err(e) = self.catch_up(store).await {
                eprintln!("custody: metrics: {e}");
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }

    /// The delivery counts per day of the last `days` days that had any, caught up first.
    pub(crate) async fn daily<S: Store>(&self, store: &S, days: usize) -> Result<Daily, String> {
        self.catch_up(store).await?;
        let follower = self.follower.lock().await;
        Ok(follower
            .daily
            .iter()
            .rev()
            .take(days)
            .map(|(d, c)| (d.clone(), *c))
            .collect())
    }
}

/// `GET /metrics`.
pub(crate) async fn render(State(s): State<Arc<ServerState>>) -> Response {
    if let Err(e) = s.metrics.catch_up(s.app.store()).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("reading the ledger for metrics failed: {e}\n"),
        )
            .into_response();
    }
    let mut text = String::new();
    if let Err(e) = encode(&mut text, &s.metrics.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Times every request by the route it matched.
pub(crate) async fn time_requests(
    State(s): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = vec![
        ("route", route),
        ("method", method),
        ("status", response.status().as_u16().to_string()),
    ];
    s.metrics
        .http
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}
