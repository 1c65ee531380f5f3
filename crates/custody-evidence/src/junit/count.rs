//! Counting: each finished case into the innermost suite around it (cases outside any
//! suite into one named after the root), into every open suite's totals for checking its
//! attributes, into the order-independent digest of the cases run, and into the failing
//! list; then each suite's claimed counts checked against the counted ones.

use super::{CaseSum, Claimed, FailedCase, Open, Outcome, Parser, SuiteState};
use crate::{MAX_LISTED, bounded_text};

impl Claimed {
    /// Failures and errors claimed beyond `counted` (`[tests, failures, errors, skipped]`).
    fn unseen_failures(&self, counted: [u64; 4]) -> u64 {
        let claimed = |key: &str| self.counts.iter().find(|(k, _)| *k == key).map(|c| c.1);
        let failures = claimed("failures").unwrap_or(0);
        let errors = claimed("errors").unwrap_or(0);
        (failures.saturating_add(errors)).saturating_sub(counted[1] + counted[2])
    }
}

impl CaseSum {
    fn add(&mut self, suite: &str, class: &str, name: &str) {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for part in [suite, class, name] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let d: [u8; 32] = h.finalize().into();
        for (i, half) in self.halves.iter_mut().enumerate() {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&d[i * 16..(i + 1) * 16]);
            *half = half.wrapping_add(u128::from_be_bytes(bytes));
        }
        self.count += 1;
    }

    fn hex(&self) -> String {
        match self.count {
            0 => String::new(),
            _ => format!("{:032x}{:032x}", self.halves[0], self.halves[1]),
        }
    }
}

impl Parser<'_> {
    /// Counts a finished case into the innermost enclosing suite (or the root's).
    pub(super) fn finish_case(&mut self) {
        let Some(case) = self.case.take() else { return };
        let suite_index = self.stack.iter().rev().find_map(|&(o, _, _)| match o {
            Open::Suite(i) => Some(i),
            _ => None,
        });
        let index = match suite_index {
            Some(i) => i,
            None => *self.loose_suite.get_or_insert_with(|| {
                let name = self.root.as_ref().map(|r| r.0.clone()).unwrap_or_default();
                self.suites
                    .push(SuiteState::new(name, Claimed::default(), 1));
                self.suites.len() - 1
            }),
        };
        let slot = match case.outcome {
            Outcome::Passed => None,
            Outcome::Failure => Some(1),
            Outcome::Error => Some(2),
            Outcome::Skipped => Some(3),
        };
        let suite = &mut self.suites[index].counted;
        // A skipped case did not run: a rerun that skips it is no rerun of it.
        if case.outcome != Outcome::Skipped {
            self.cases.add(
                &suite.name,
                case.classname.as_deref().unwrap_or(""),
                &case.name,
            );
        }
        suite.tests += 1;
        match case.outcome {
            Outcome::Failure => suite.failures += 1,
            Outcome::Error => suite.errors += 1,
            Outcome::Skipped => suite.skipped += 1,
            Outcome::Passed => {}
        }
        // Every open suite (the case's and those around it) counts it for its attributes.
        for &(o, _, _) in &self.stack {
            if let Open::Suite(i) = o {
                self.suites[i].deep[0] += 1;
                if let Some(s) = slot {
                    self.suites[i].deep[s] += 1;
                }
            }
        }
        if matches!(case.outcome, Outcome::Failure | Outcome::Error) {
            if self.report.failing.len() < MAX_LISTED {
                self.report.failing.push(FailedCase {
                    suite: self.suites[index].counted.name.clone(),
                    classname: case.classname,
                    name: bounded_text(&case.name),
                    outcome: case.outcome,
                    message: case.message,
                });
            } else {
                self.report.failing_unlisted += 1;
            }
        }
    }

    pub(super) fn finish_suite(&mut self, i: usize) {
        let s = &self.suites[i];
        let unseen = s.claimed.unseen_failures(s.deep);
        self.report.unseen_failures = self.report.unseen_failures.max(unseen);
        if let Some(w) = disagreement(&s.claimed, s.deep) {
            let w = format!("suite {:?} (line {}): {w}", s.counted.name, s.line);
            self.warn(w);
        }
    }

    pub(super) fn finish_root(&mut self) {
        self.report.suites = self.suites.drain(..).map(|s| s.counted).collect();
        self.report.cases_digest = self.cases.hex();
        let t = self.report.totals();
        if let Some((name, claimed)) = self.root.take() {
            let unseen = claimed.unseen_failures([t.tests, t.failed, t.errored, t.skipped]);
            self.report.unseen_failures = self.report.unseen_failures.max(unseen);
            if let Some(w) = disagreement(&claimed, [t.tests, t.failed, t.errored, t.skipped]) {
                self.warn(format!("<testsuites> {name:?}: {w}"));
            }
        }
    }

    fn warn(&mut self, warning: String) {
        if self.report.warnings.len() < MAX_LISTED {
            self.report.warnings.push(warning);
        }
    }
}

/// How the claimed counts differ from `[tests, failures, errors, skipped]` counted, if
/// they do.
fn disagreement(claimed: &Claimed, counted: [u64; 4]) -> Option<String> {
    let mut diffs = Vec::new();
    for (key, value) in &claimed.counts {
        let i = match *key {
            "tests" => 0,
            "failures" => 1,
            "errors" => 2,
            _ => 3,
        };
        if *value != counted[i] {
            diffs.push(format!("{key}={value} but {} counted", counted[i]));
        }
    }
    (!diffs.is_empty()).then(|| {
        format!(
            "its attributes disagree with its <testcase> elements ({}); the counted figures stand",
            diffs.join(", ")
        )
    })
}
