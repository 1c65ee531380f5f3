//! `custody bench http`: load on a running server from this (second) process: requests
//! per second and latency for one route, beside `/healthz` on the same server as the
//! baseline (what HTTP alone costs there).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::Outcome;
use crate::cmd::bench::percentile_ms;
use crate::input::{print_json, print_line};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /api/v1/verify` (the deploy gate).
    Verify,
    /// `POST /api/v1/promotions` (request → evaluation → ledger append → receipt).
    Promote,
    /// `GET /healthz` only.
    Healthz,
}

#[derive(Debug, Args)]
pub(crate) struct HttpArgs {
    /// The server.
    #[arg(long, env = "CUSTODY_SERVER", value_name = "URL", value_parser = crate::client::server_url)]
    server: String,
    /// A token allowed the route.
    #[arg(long, env = "CUSTODY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// What to load.
    #[arg(long, value_enum, default_value = "verify")]
    route: Route,
    /// For verify: the environment and digest asked about.
    #[arg(long, default_value = "production")]
    env: String,
    /// For verify: the digest.
    #[arg(long, default_value = "")]
    digest: String,
    /// For promote: the release, NAME@VERSION.
    #[arg(long, default_value = "")]
    release: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Offer this many requests per second in all (open loop, spread over the
    /// connections) instead of as many as the server answers. A request is due at a fixed
    /// time; when the answers fall behind, its latency counts from when it was due, so a
    /// slow server cannot hide its backlog (no coordinated omission).
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// How long to load each route.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The server's process id, to report its peak memory (VmHWM) afterwards.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

struct Load {
    requests: u64,
    errors: u64,
    seconds: f64,
    latencies: Vec<Duration>,
}

async fn load(args: &HttpArgs, route: Route) -> anyhow::Result<Load> {
    let client = custody_server::http_client::client_builder(None)?
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let base = args.server.trim_end_matches('/').to_owned();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let shared = Arc::new((
        client,
        base,
        args.token.clone(),
        args.env.clone(),
        args.digest.clone(),
        args.release.clone(),
    ));
    let start = Instant::now();
    // Open loop: connection i sends its k-th request at start + (k + i/C) × C/rate.
    let every = args
        .rate
        .map(|r| Duration::from_secs_f64(args.concurrency as f64 / r.max(1.0)));
    let connections = args.concurrency;
    let mut tasks = Vec::new();
    for i in 0..connections {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let (client, base, token, env, digest, release) = &*shared;
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            let mut due = every.map(|e| start + e.mul_f64(i as f64 / connections as f64));
            while Instant::now() < deadline {
                let mut request = match route {
                    Route::Verify => client
                        .get(format!("{base}/api/v1/verify"))
                        .query(&[("env", env.as_str()), ("digest", digest.as_str())]),
                    Route::Promote => client
                        .post(format!("{base}/api/v1/promotions"))
                        .json(&json!({"release": release, "environment": env})),
                    Route::Healthz => client.get(format!("{base}/healthz")),
                };
                if let Some(t) = token {
                    request = request.bearer_auth(t);
                }
                let mut t0 = Instant::now();
                if let (Some(at), Some(e)) = (due, every) {
                    if at > t0 {
                        // On time: the latency counts from the send (a late timer
                        // wake-up is this process's delay, not the server's).
                        tokio::time::sleep_until(at.into()).await;
                        t0 = Instant::now();
                    } else {
                        // Behind: the wait since it was due counts.
                        t0 = at;
                    }
                    due = Some(at + e);
                }
                match request.send().await {
                    Ok(r) => {
                        let ok =
                            r.status().is_success() || r.status() == reqwest::StatusCode::FORBIDDEN;
                        let _ = r.bytes().await;
                        if ok {
                            latencies.push(t0.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut out = Load {
        requests: 0,
        errors: 0,
        seconds: 0.0,
        latencies: Vec::new(),
    };
    for t in tasks {
        let (l, e) = t.await?;
        out.requests += l.len() as u64;
        out.errors += e;
        out.latencies.extend(l);
    }
    out.seconds = start.elapsed().as_secs_f64();
    out.latencies.sort_unstable();
    Ok(out)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub(crate) async fn run(args: HttpArgs) -> anyhow::Result<Outcome> {
    if args.route == Route::Verify && args.digest.is_empty() {
        bail!("--route verify needs --digest sha256:HEX (and --env)");
    }
    if args.route == Route::Promote && args.release.is_empty() {
        bail!("--route promote needs --release NAME@VERSION (and --env)");
    }
    {
        let baseline = load(&args, Route::Healthz).await?;
        let main = load(&args, args.route).await?;
        let rate = |l: &Load| l.requests as f64 / l.seconds;
        let stats = |l: &Load| {
            json!({
                "requests": l.requests, "errors": l.errors, "per_second": rate(l),
                "p50_ms": percentile_ms(&l.latencies, 0.5), "p99_ms": percentile_ms(&l.latencies, 0.99),
            })
        };
        let rss = args.server_pid.and_then(peak_rss_kib);
        let result = json!({
            "route": format!("{:?}", args.route).to_lowercase(),
            "concurrency": args.concurrency,
            "offered_per_second": args.rate,
            "load": stats(&main),
            "baseline_healthz": stats(&baseline),
            "server_peak_rss_kib": rss,
        });
        if args.json {
            print_json(&result);
        } else {
            print_line(&format!(
                "{:?} from {} connections{}: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms ({} errors)\n\
                 baseline /healthz: {:.0} requests/s, p99 {:.2} ms\n\
                 server peak RSS: {}",
                args.route,
                args.concurrency,
                args.rate
                    .map_or(String::new(), |r| format!(", {r:.0}/s offered")),
                rate(&main),
                percentile_ms(&main.latencies, 0.5),
                percentile_ms(&main.latencies, 0.99),
                main.errors,
                rate(&baseline),
                percentile_ms(&baseline.latencies, 0.99),
                rss.map_or("unknown (pass --server-pid)".to_owned(), |k| format!(
                    "{:.1} MiB",
                    k as f64 / 1024.0
                )),
            ));
        }
        Ok(Outcome::Ok)
    }
}
