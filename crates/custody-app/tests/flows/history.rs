//! History slices and lineage: every filter finds exactly what a scan of the whole ledger
//! finds, in pages too, and a long lineage lists its releases and the newest events, with
//! history continuing where it stops.

use custody_app::Actor;
use custody_model::{Digest, Timestamp};

use super::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_slices_are_exactly_what_a_scan_of_the_ledger_finds() {
    use custody_app::HistoryFilter;
    let s = setup("").await;
    // Forty releases promoted to build by three engineers, a day apart each.
    let day = |n: i64| Timestamp::from_unix_seconds(1_794_300_000 + n * 86_400).unwrap();
    let mut digests = Vec::new();
    for i in 0..40_i64 {
        let d = s.artifact("shop", &format!("h{i}"), &format!("c{i}")).await;
        let r = s.release(&format!("3.{i}.0"), &d).await;
        let when = day(i);
        let who = ["rita", "sam", "tom"][(i % 3) as usize];
        s.app
            .promote_to(&Actor::new(who, when).unwrap(), &r, "build", None)
            .await
            .unwrap();
        digests.push(d);
    }
    // The whole ledger, read in order.
    let size = s.app.log().size().await.unwrap();
    let mut all = Vec::new();
    for start in (0..size).step_by(1000) {
        for e in s
            .app
            .log()
            .entries(start, size.min(start + 1000))
            .await
            .unwrap()
        {
            all.push((
                e.index,
                serde_json::from_slice::<serde_json::Value>(&e.leaf).unwrap(),
            ));
        }
    }
    let filters = [
        HistoryFilter {
            principal: Some("sam".into()),
            ..Default::default()
        },
        HistoryFilter {
            principal: Some("tom".into()),
            environment: Some("build".into()),
            ..Default::default()
        },
        HistoryFilter {
            artifact: Some(digests[7].clone()),
            ..Default::default()
        },
        HistoryFilter {
            build: Some(digests[9].to_string()),
            ..Default::default()
        },
        HistoryFilter {
            since: Some(day(10)),
            until: Some(day(20)),
            ..Default::default()
        },
        HistoryFilter {
            environment: Some("build".into()),
            since: Some(day(30)),
            ..Default::default()
        },
        HistoryFilter {
            principal: Some("rita".into()),
            until: Some(day(5)),
            ..Default::default()
        },
        HistoryFilter {
            principal: Some("nobody".into()),
            ..Default::default()
        },
    ];
    for filter in filters {
        // What a reader of the whole ledger would pick out, written independently here.
        let expected: Vec<u64> = all
            .iter()
            .filter(|(_, e)| {
                let s = |k: &str| e[k].as_str();
                let at = s("at").and_then(|t| t.parse::<Timestamp>().ok());
                let names = |d: &Digest| {
                    e["artifacts"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == &d.to_string()))
                };
                filter
                    .principal
                    .as_deref()
                    .is_none_or(|p| s("actor") == Some(p))
                    && filter
                        .environment
                        .as_deref()
                        .is_none_or(|v| s("environment") == Some(v))
                    && filter.artifact.as_ref().is_none_or(names)
                    && filter
                        .build
                        .as_ref()
                        .is_none_or(|b| names(&b.parse().unwrap()))
                    && filter.since.is_none_or(|t| at.is_some_and(|a| a >= t))
                    && filter.until.is_none_or(|t| at.is_some_and(|a| a < t))
            })
            .map(|(i, _)| *i)
            .collect();
        let found: Vec<u64> = s
            .app
            .history(&filter)
            .await
            .unwrap()
            .iter()
            .map(|e| e.index)
            .collect();
        assert_eq!(found, expected, "{filter:?}");
        if filter.principal.as_deref() != Some("nobody") {
            assert!(!expected.is_empty(), "{filter:?} finds something");
        }
        // Paged newest first, three at a time, the same entries.
        let mut paged = Vec::new();
        let mut before = None;
        loop {
            let page = s
                .app
                .history(&HistoryFilter {
                    before,
                    limit: 3,
                    ..filter.clone()
                })
                .await
                .unwrap();
            let Some(first) = page.first() else { break };
            before = Some(first.index);
            paged.splice(0..0, page.iter().map(|e| e.index));
        }
        assert_eq!(paged, expected, "{filter:?} paged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_lineage_lists_its_releases_and_the_newest_events() {
    let s = setup("").await;
    let d = s.artifact("shop", "long", "l1").await;
    let first = s.release("4.0.0", &d).await;
    let second = s.release("4.0.1", &d).await;
    for i in 0..80 {
        let r = if i % 2 == 0 { &first } else { &second };
        s.promoted(r, "build").await;
    }
    let all = s
        .app
        .history(&custody_app::HistoryFilter {
            artifact: Some(d.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(all.len() > custody_app::LINEAGE_EVENTS, "{}", all.len());
    let l = s.app.lineage(&d).await.unwrap();
    let releases: Vec<String> = l
        .releases
        .iter()
        .map(|e| v(&e.event)["release"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(releases, [first.as_str(), second.as_str()]);
    assert_eq!(l.events.len(), custody_app::LINEAGE_EVENTS);
    let newest = &all[all.len() - custody_app::LINEAGE_EVENTS..];
    assert_eq!(
        l.events.iter().map(|e| e.index).collect::<Vec<_>>(),
        newest.iter().map(|e| e.index).collect::<Vec<_>>()
    );
    // History continues where the lineage stops.
    assert_eq!(l.older, Some(newest[0].index));
    let older = s
        .app
        .history(&custody_app::HistoryFilter {
            artifact: Some(d.clone()),
            before: l.older,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(older.len() + l.events.len(), all.len());
}
