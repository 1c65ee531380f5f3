//! `/metrics`: the delivery process in the Prometheus text format (OpenMetrics).
//!
//! Delivery metrics are folded from the ledger itself, as its tail sees each entry (by this
//! server, a CLI on the same data directory or another server); each scrape first folds in
//! whatever was appended since, so the counters are exactly what is recorded, and a
//! restarted server recounts them from the first entry. HTTP latency per route counts what this process served since
//! it started.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use custody_app::events::{Event, EventBody};
use custody_model::Verdict;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
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

/// Histograms of vulnerability windows in seconds, from an hour to about a year.
#[derive(Clone)]
struct Hours;

impl MetricConstructor<Histogram> for Hours {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(3600.0, 2.0, 14))
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
    open_findings: Family<Labels, Gauge>,
    vulnerability_window: Family<Labels, Histogram, Hours>,
    ledger_entries: Gauge,
    http: Family<Labels, Histogram, Latency>,
    /// Appends this process made, by outcome (`committed`, `failed`).
    appends: Family<Labels, Histogram, Latency>,
    alerts: Family<Labels, Counter>,
    ledger_checks: Family<Labels, Counter>,
    ledger_checked_entries: Gauge,
    ledger_readable: Gauge,
    follower: Mutex<Follower>,
}

/// How long the follower waits after failing to read the ledger.
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
    /// The vulnerabilities open per environment, and when each was first reported.
    findings: custody_app::findings::Findings,
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
            open_findings: Family::default(),
            vulnerability_window: Family::new_with_constructor(Hours),
            ledger_entries: Gauge::default(),
            http: Family::new_with_constructor(Latency),
            appends: Family::new_with_constructor(Latency),
            alerts: Family::default(),
            ledger_checks: Family::default(),
            ledger_checked_entries: Gauge::default(),
            ledger_readable: Gauge::default(),
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
            "open_findings",
            "Vulnerabilities (one per id and package) the newest scans of each environment's certified release list, by environment and severity, waived or not",
            m.open_findings.clone(),
        );
        m.registry.register(
            "vulnerability_window_seconds",
            "From the first report of a vulnerability to the certification of a release without it, in each environment whose certified release had it",
            m.vulnerability_window.clone(),
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
            "ledger_checks",
            "Whole-ledger re-checks this process ran (at start and every [alerts] ledger_check), by outcome: consistent, inconsistent (an alert was raised), unavailable (the database could not be read)",
            m.ledger_checks.clone(),
        );
        m.registry.register(
            "ledger_checked_entries",
            "Entries in the ledger at its last consistent re-check",
            m.ledger_checked_entries.clone(),
        );
        m.registry.register(
            "ledger_readable",
            "1 if this scrape read the ledger's new entries into the delivery counters, 0 if it could not (they show what was read before; the ledger re-check's counters still count)",
            m.ledger_readable.clone(),
        );
        m.registry.register(
            "http_request_duration_seconds",
            "HTTP requests served by this process, by route, method and status",
            m.http.clone(),
        );
        m
    }

    /// One whole-ledger re-check's outcome, and the entries it found consistent.
    pub(crate) fn ledger_checked(&self, outcome: &'static str, consistent_entries: Option<u64>) {
        self.ledger_checks
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
        if let Some(n) = consistent_entries {
            self.ledger_checked_entries
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
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
    fn observe(&self, follower: &mut Follower, event: &Event) {
        let day = event
            .at
            .to_string()
            .get(..10)
            .unwrap_or_default()
            .to_owned();
        let at = event.at.as_datetime().unix_timestamp_nanos() as f64 / 1e9;
        let env = |e: &str| vec![("environment", e.to_owned())];
        let mut count = |slot: usize| {
            follower.daily.entry(day.clone()).or_default().counts[slot] += 1;
        };
        match &event.body {
            EventBody::PromotionRequested(_) => count(0),
            EventBody::EnvironmentCertified(_) => count(1),
            EventBody::ApprovalRecorded(a) if a.verdict == Verdict::Reject => count(2),
            EventBody::RolledBack(_) => count(3),
            _ => {}
        }
        match &event.body {
            EventBody::PromotionRequested(p) => {
                self.requested.get_or_create(&env(&p.environment)).inc();
                follower
                    .open
                    .insert(p.promotion.clone(), (p.environment.clone(), at));
            }
            EventBody::DecisionRecorded(d) => {
                let mut labels = env(&d.environment);
                labels.push(("allowed", d.allowed.to_string()));
                self.decisions.get_or_create(&labels).inc();
                if d.allowed && d.break_glass.is_some() {
                    self.break_glass.get_or_create(&env(&d.environment)).inc();
                }
                for g in &d.gates {
                    let status = format!("{:?}", g.status).to_lowercase();
                    self.gates
                        .get_or_create(&vec![("gate", g.gate.to_string()), ("status", status)])
                        .inc();
                }
                let rejected = d.gates.iter().any(|g| {
                    g.gate == custody_policy::Gate::Approvals
                        && g.status == custody_policy::Status::Fail
                });
                if rejected {
                    follower.open.remove(&d.promotion);
                }
            }
            EventBody::EnvironmentCertified(c) => {
                self.certified.get_or_create(&env(&c.environment)).inc();
                if let Some((environment, requested)) = follower.open.remove(&c.promotion) {
                    let took = (at - requested).max(0.0);
                    self.time_to_promotion
                        .get_or_create(&vec![("environment", environment)])
                        .observe(took);
                    let d = follower.daily.entry(day.clone()).or_default();
                    d.to_promotion.0 += took;
                    d.to_promotion.1 += 1;
                }
            }
            EventBody::ApprovalRecorded(a) => {
                let verdict = format!("{:?}", a.verdict).to_lowercase();
                self.reviews
                    .get_or_create(&vec![("verdict", verdict)])
                    .inc();
                if let Some((environment, requested)) = follower.open.get(&a.promotion) {
                    let latency = (at - requested).max(0.0);
                    self.approval_latency
                        .get_or_create(&vec![("environment", environment.clone())])
                        .observe(latency);
                    let d = follower.daily.entry(day.clone()).or_default();
                    d.approval_latency.0 += latency;
                    d.approval_latency.1 += 1;
                }
            }
            EventBody::AlertRaised(a) => {
                self.alerts
                    .get_or_create(&vec![
                        ("rule", a.rule.clone()),
                        ("severity", a.severity.clone()),
                    ])
                    .inc();
            }
            EventBody::RolledBack(r) => {
                let mut labels = env(&r.environment);
                labels.push(("automatic", r.automatic.to_string()));
                self.rollbacks.get_or_create(&labels).inc();
            }
            EventBody::DeployReported(r) => {
                let mut labels = env(&r.environment);
                let status = format!("{:?}", r.status).to_lowercase();
                labels.push(("status", status));
                self.deploys.get_or_create(&labels).inc();
                self.drift
                    .get_or_create(&env(&r.environment))
                    .inc_by(r.drift.len() as u64);
            }
            EventBody::ProvenanceDiscrepancy(_) => {
                self.discrepancies.inc();
            }
            _ => {}
        }
    }

    /// Folds in `events`, which follow those folded before.
    async fn fold(
        &self,
        app: &custody_app::App<custody_store::SqlStore>,
        follower: &mut Follower,
        events: &[custody_app::Followed],
    ) {
        for (_, event) in events {
            self.observe(follower, event);
            self.follow_findings(app, &mut follower.findings, event)
                .await;
        }
        for (env, counts) in follower.findings.open() {
            for (severity, n) in counts {
                let severity = format!("{severity:?}").to_lowercase();
                self.open_findings
                    .get_or_create(&vec![
                        ("environment", env.to_owned()),
                        ("severity", severity),
                    ])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// Folds one event into the findings open per environment, observing the
    /// vulnerability windows it closes.
    async fn follow_findings(
        &self,
        app: &custody_app::App<custody_store::SqlStore>,
        findings: &mut custody_app::findings::Findings,
        event: &Event,
    ) {
        let closed = match &event.body {
            EventBody::ReleaseCreated(r) => {
                findings.released(&r.release, &r.artifacts);
                return;
            }
            EventBody::EvidenceAttached(e) => {
                let lists = e
                    .report
                    .as_ref()
                    .is_some_and(|r| r.summary.vulnerabilities.is_some());
                if lists {
                    // A stored report that no longer reads is the integrity check's to
                    // report; here it counts as listing nothing.
                    let found = app.reported_vulnerabilities(e).await.unwrap_or_else(|err| {
                        tracing::warn!(error = %err, "a vulnerability report could not be read for the metrics");
                        Vec::new()
                    });
                    let subject = e.report.as_ref().map_or("", |r| r.subject.as_str());
                    findings.reported(
                        event.at,
                        &e.artifacts,
                        (e.kind.as_str(), e.format.as_str(), subject),
                        &found,
                    );
                }
                return;
            }
            EventBody::EnvironmentCertified(c) => {
                findings.certified(event.at, &c.environment, &c.artifacts)
            }
            EventBody::RolledBack(r) => findings.rolled_back(event.at, &r.environment, &r.to),
            _ => return,
        };
        for w in closed {
            self.vulnerability_window
                .get_or_create(&vec![("environment", w.environment)])
                .observe(w.seconds);
        }
    }

    /// Folds in every entry appended up to now (a scrape or the Charts page: exact at
    /// the moment it asks).
    async fn catch_up(
        &self,
        app: &custody_app::App<custody_store::SqlStore>,
    ) -> Result<(), String> {
        let mut follower = self.follower.lock().await;
        let mut events = app.subscribe(follower.next);
        let caught = events.catch_up().await.map_err(|e| e.to_string())?;
        self.fold(app, &mut follower, &caught).await;
        follower.next = events.position();
        self.ledger_entries
            .set(i64::try_from(follower.next).unwrap_or(i64::MAX));
        Ok(())
    }
}

impl Metrics {
    /// Keeps up with the ledger's tail in the background, so that a scrape or the Charts
    /// page folds in little, not, on the first view after a start, the whole history.
    pub(crate) async fn follow(&self, app: &custody_app::App<custody_store::SqlStore>) {
        let start = self.follower.lock().await.next;
        let mut events = app.subscribe(start);
        loop {
            match events.next().await {
                Ok(batch) => {
                    let mut follower = self.follower.lock().await;
                    // A scrape may have folded past the batch meanwhile: skip what it did.
                    let fresh: Vec<_> = batch
                        .into_iter()
                        .filter(|(index, _)| *index >= follower.next)
                        .collect();
                    if let Some((last, _)) = fresh.last() {
                        let next = last + 1;
                        self.fold(app, &mut follower, &fresh).await;
                        follower.next = next;
                        self.ledger_entries
                            .set(i64::try_from(next).unwrap_or(i64::MAX));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "metrics could not read the ledger");
                    tokio::time::sleep(FOLLOW_EVERY).await;
                }
            }
        }
    }

    /// The delivery counts per day of the last `days` days that had any, caught up first.
    pub(crate) async fn daily(
        &self,
        app: &custody_app::App<custody_store::SqlStore>,
        days: usize,
    ) -> Result<Daily, String> {
        self.catch_up(app).await?;
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
///
/// A ledger that cannot be read (away, or damaged) still gets its metrics scraped, with
/// `custody_ledger_readable 0`: an integrity incident is when they matter most.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "the delivery process in the OpenMetrics text format", content_type = "application/openmetrics-text", body = String)))]
pub(crate) async fn render(State(s): State<Arc<ServerState>>) -> Response {
    match s.metrics.catch_up(&s.app).await {
        Ok(()) => {
            s.metrics.ledger_readable.set(1);
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading the ledger for metrics failed");
            s.metrics.ledger_readable.set(0);
        }
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
