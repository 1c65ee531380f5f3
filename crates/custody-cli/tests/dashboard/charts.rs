//! The charts page against the ledger: one group of bars per calendar day, the delivery
//! counts and each day's mean time to promotion equal to what the ledger records, and
//! titled axes with round ticks from 0 and every value that is not zero written.

use std::path::Path;

use fantoccini::{Client, Locator};

use super::common::*;

/// Checks the charts page `c` shows against the ledger of `data`; returns the ledger's
/// history.
pub(crate) async fn the_charts_count_what_the_ledger_records(
    c: &Client,
    data: &Path,
) -> Vec<serde_json::Value> {
    let bars = |chart: &'static str| {
        let c = c.clone();
        async move {
            let mut out = Vec::new();
            for bar in c
                .find_all(Locator::Css(&format!("#{chart} rect")))
                .await
                .unwrap()
            {
                let attr = |name: &'static str| {
                    let bar = bar.clone();
                    async move { bar.attr(name).await.unwrap().unwrap() }
                };
                let value: f64 = attr("data-value").await.parse().unwrap();
                out.push((attr("data-series").await, attr("data-day").await, value));
            }
            out
        }
    };
    // One group of bars per calendar day, none skipped (a quiet day is a gap), to today.
    let mut days: Vec<String> = bars("delivery")
        .await
        .into_iter()
        .map(|(_, d, _)| d)
        .collect();
    days.dedup();
    let day_of = |d: &str| {
        format!("{d}T00:00:00Z")
            .parse::<custody_model::Timestamp>()
            .unwrap()
            .unix_seconds()
            / 86_400
    };
    for pair in days.windows(2) {
        assert_eq!(day_of(&pair[1]) - day_of(&pair[0]), 1, "{days:?}");
    }
    let mut charted = std::collections::BTreeMap::<String, f64>::new();
    for (series, _, n) in bars("delivery").await {
        *charted.entry(series).or_default() += n;
    }
    let out = run(custody()
        .args(["history", "--json", "--limit", "0", "--data-dir"])
        .arg(data));
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let recorded = |kind: &str| events.iter().filter(|e| e["event"]["type"] == kind).count() as f64;
    assert_eq!(charted["requested"], recorded("promotion.requested"));
    assert_eq!(charted["certified"], recorded("environment.certified"));
    assert_eq!(charted["rolled back"], recorded("rollback"));
    assert_eq!(charted["rejected"], 1.0, "the demo's one rejection");
    // Each day's mean time to promotion, from the ledger's request and certification times.
    let at = |e: &serde_json::Value| {
        e["event"]["at"]
            .as_str()
            .unwrap()
            .parse::<custody_model::Timestamp>()
            .unwrap()
            .unix_seconds()
    };
    let mut per_day = std::collections::BTreeMap::<String, (i64, i64)>::new();
    for certified in events
        .iter()
        .filter(|e| e["event"]["type"] == "environment.certified")
    {
        let promotion = &certified["event"]["promotion"];
        let Some(requested) = events.iter().find(|e| {
            e["event"]["type"] == "promotion.requested" && e["event"]["promotion"] == *promotion
        }) else {
            continue;
        };
        let day = certified["event"]["at"].as_str().unwrap()[..10].to_owned();
        let d = per_day.entry(day).or_default();
        d.0 += at(certified) - at(requested);
        d.1 += 1;
    }
    let latency = bars("latency").await;
    let mut checked = 0;
    for (day, (sum, n)) in &per_day {
        let mean = *sum as f64 / *n as f64 / 3600.0;
        let (_, _, drawn) = latency
            .iter()
            .find(|(series, d, _)| series == "time to promotion" && d == day)
            .unwrap();
        assert!(
            (drawn - mean).abs() < 0.051,
            "{day}: drew {drawn} h, the ledger gives {mean} h"
        );
        checked += 1;
    }
    assert!(checked > 0 && per_day.values().any(|(sum, _)| *sum > 0));
    // Each chart titles its axes with their units, has round ticks from 0, and writes each
    // bar's value that is not zero above it.
    for (chart, y_title, bars) in [
        ("delivery", "promotions per day", bars("delivery").await),
        ("latency", "mean hours from request", latency),
    ] {
        let mut titles = Vec::new();
        for t in c
            .find_all(Locator::Css(&format!("#{chart} .axis-title")))
            .await
            .unwrap()
        {
            titles.push(t.text().await.unwrap());
        }
        assert_eq!(titles, [y_title, "day (UTC, month-day)"], "{chart}");
        let ticks = c
            .find_all(Locator::Css(&format!("#{chart} .y-axis text")))
            .await
            .unwrap();
        assert!(ticks.len() >= 3, "{chart}: {} ticks", ticks.len());
        let zero: f64 = ticks[0].text().await.unwrap().parse().unwrap();
        assert_eq!(zero, 0.0, "{chart}: the y axis starts at 0");
        let mut written = Vec::new();
        for label in c
            .find_all(Locator::Css(&format!("#{chart} text.value")))
            .await
            .unwrap()
        {
            let series = label.attr("data-series").await.unwrap().unwrap();
            let day = label.attr("data-day").await.unwrap().unwrap();
            written.push((series, day, label.text().await.unwrap()));
        }
        let nonzero: Vec<_> = bars
            .iter()
            .filter(|(_, _, v)| *v > 0.0)
            .map(|(series, day, v)| {
                let decimals = if chart == "latency" { 1 } else { 0 };
                (series.clone(), day.clone(), format!("{v:.decimals$}"))
            })
            .collect();
        assert!(!nonzero.is_empty(), "{chart}");
        assert_eq!(written, nonzero, "{chart}");
    }
    events
}
