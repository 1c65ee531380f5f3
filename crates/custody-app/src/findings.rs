//! Vulnerability findings per environment, as the ledger tells them: which are open in the
//! release each environment has certified, and the vulnerability window of each that
//! closed (from the first report of the finding, about any artifact, to the certification
//! of a release without it in an environment whose certified release had it).
//!
//! Pure bookkeeping, fed the ledger's events in order by whoever follows it (the server's
//! metrics); it reads nothing itself. An artifact's findings are those of its newest report
//! of each evidence type, format and subject that lists vulnerabilities (a vulnerability
//! scan, an SBOM with them), as the gates read them: a nightly re-scan of the same target
//! replaces the last one, never another tool's or another target's.

use std::collections::{BTreeMap, HashMap};

use custody_evidence::vuln::{Severity, Vulnerability};
use custody_model::{Digest, Timestamp};

/// One finding: a vulnerability in a package. The vulnerability is named by its CVE id
/// when it has one (scanners that call it `GHSA-…` and list the CVE as an alias report the
/// same finding), else by the id the scanner gave.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Finding {
    /// `CVE-…`, or the scanner's id.
    pub vulnerability: String,
    /// The affected package.
    pub package: String,
}

impl Finding {
    /// The finding `v` reports.
    pub fn of(v: &Vulnerability) -> Finding {
        let cve = std::iter::once(&v.id)
            .chain(&v.aliases)
            .find(|id| id.starts_with("CVE-"));
        Finding {
            vulnerability: cve.unwrap_or(&v.id).clone(),
            package: v.package.clone(),
        }
    }
}

/// A finding that stopped being open in an environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    /// The environment.
    pub environment: String,
    /// The finding.
    pub finding: Finding,
    /// Seconds from its first report to the certification without it.
    pub seconds: f64,
}

/// What is open per environment, and when each finding was first reported.
#[derive(Debug, Default)]
pub struct Findings {
    first_reported: HashMap<Finding, Timestamp>,
    /// Per artifact that has had a report listing vulnerabilities: per evidence type,
    /// report format and subject, the newest such report's findings.
    artifacts: HashMap<Digest, HashMap<Source, Vec<(Finding, Severity)>>>,
    /// Each release's artifacts (a rollback names the release it returns to).
    releases: HashMap<String, Vec<Digest>>,
    /// Per environment with a certified release: its artifacts and the findings open in
    /// them.
    environments: BTreeMap<String, Certified>,
}

/// A report's evidence type, format and subject.
type Source = (String, String, String);

#[derive(Debug, Default)]
struct Certified {
    artifacts: Vec<Digest>,
    open: BTreeMap<Finding, Severity>,
}

impl Findings {
    /// `release.created`.
    pub fn released(&mut self, release: &str, artifacts: &[Digest]) {
        self.releases.insert(release.to_owned(), artifacts.to_vec());
    }

    /// `evidence.attached` of (type, format, subject) `source` about `artifacts`, at `at`, whose
    /// report lists `vulnerabilities` (empty for a clean scan). Findings it lists that an
    /// environment's certified release holds are open there from now on.
    pub fn reported(
        &mut self,
        at: Timestamp,
        artifacts: &[Digest],
        (kind, format, subject): (&str, &str, &str),
        vulnerabilities: &[Vulnerability],
    ) {
        let found: Vec<(Finding, Severity)> = vulnerabilities
            .iter()
            .map(|v| (Finding::of(v), v.severity))
            .collect();
        for (finding, _) in &found {
            self.first_reported
                .entry(finding.clone())
                .and_modify(|first| *first = (*first).min(at))
                .or_insert(at);
        }
        for a in artifacts {
            self.artifacts.entry(a.clone()).or_default().insert(
                (kind.to_owned(), format.to_owned(), subject.to_owned()),
                found.clone(),
            );
        }
        let names: Vec<String> = self
            .environments
            .iter()
            .filter(|(_, c)| c.artifacts.iter().any(|a| artifacts.contains(a)))
            .map(|(env, _)| env.clone())
            .collect();
        for env in names {
            let held = self.environments[&env].artifacts.clone();
            let open = self.open_in(&held);
            if let Some(c) = self.environments.get_mut(&env) {
                c.open = open;
            }
        }
    }

    /// `environment.certified` (or a rollback) of a release with `artifacts` in
    /// `environment` at `at`: the windows of the findings open there before and not in it.
    pub fn certified(
        &mut self,
        at: Timestamp,
        environment: &str,
        artifacts: &[Digest],
    ) -> Vec<ClosedWindow> {
        let open = self.open_in(artifacts);
        let before = self.environments.insert(
            environment.to_owned(),
            Certified {
                artifacts: artifacts.to_vec(),
                open,
            },
        );
        let now_open = &self.environments[environment].open;
        before
            .into_iter()
            .flat_map(|b| b.open.into_keys())
            .filter(|f| !now_open.contains_key(f))
            .map(|finding| {
                let first = self.first_reported.get(&finding).copied().unwrap_or(at);
                let seconds = (at.unix_seconds() - first.unix_seconds()).max(0) as f64;
                ClosedWindow {
                    environment: environment.to_owned(),
                    finding,
                    seconds,
                }
            })
            .collect()
    }

    /// A rollback in `environment` at `at` to `release`: as its certification.
    pub fn rolled_back(
        &mut self,
        at: Timestamp,
        environment: &str,
        release: &str,
    ) -> Vec<ClosedWindow> {
        let artifacts = self.releases.get(release).cloned().unwrap_or_default();
        self.certified(at, environment, &artifacts)
    }

    /// Per environment with a certified release, the findings open in it by severity
    /// (every severity listed, zeros too).
    pub fn open(&self) -> Vec<(&str, [(Severity, usize); 5])> {
        self.environments
            .iter()
            .map(|(env, c)| {
                let count = |s: Severity| c.open.values().filter(|o| **o == s).count();
                let counts = [
                    Severity::Critical,
                    Severity::High,
                    Severity::Medium,
                    Severity::Low,
                    Severity::Unknown,
                ]
                .map(|s| (s, count(s)));
                (env.as_str(), counts)
            })
            .collect()
    }

    /// The findings of `artifacts`' newest reports, each with its worst severity.
    fn open_in(&self, artifacts: &[Digest]) -> BTreeMap<Finding, Severity> {
        let mut open = BTreeMap::new();
        let reports = artifacts
            .iter()
            .filter_map(|a| self.artifacts.get(a))
            .flat_map(|kinds| kinds.values());
        for (finding, severity) in reports.flatten() {
            // `Severity` orders Critical first: the worst is the least.
            open.entry(finding.clone())
                .and_modify(|s: &mut Severity| *s = (*s).min(*severity))
                .or_insert(*severity);
        }
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vuln(id: &str, aliases: &[&str], package: &str, severity: Severity) -> Vulnerability {
        Vulnerability {
            id: id.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            package: package.into(),
            version: None,
            ecosystem: None,
            purl: None,
            severity,
            cvss: None,
            fixed_versions: Vec::new(),
        }
    }

    fn digest(n: u8) -> Digest {
        Digest::sha256([n; 32])
    }

    fn at(hours: u64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + hours as i64 * 3600).unwrap()
    }

    const SCAN: (&str, &str, &str) = ("vulnerability-scan", "trivy", "shop:1");

    fn open_in(f: &Findings, env: &str) -> Vec<(Severity, usize)> {
        f.open()
            .into_iter()
            .find(|(e, _)| *e == env)
            .map(|(_, c)| c.into_iter().filter(|(_, n)| *n > 0).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_finding_reported_after_certification_is_open_until_a_release_without_it() {
        let mut f = Findings::default();
        let (v1, v2) = (digest(1), digest(2));
        f.released("shop@1", std::slice::from_ref(&v1));
        f.released("shop@2", std::slice::from_ref(&v2));
        assert!(
            f.certified(at(0), "prod", std::slice::from_ref(&v1))
                .is_empty()
        );
        assert_eq!(open_in(&f, "prod"), []);

        // A nightly scan finds a critical CVE in what production runs.
        let lodash = vuln(
            "GHSA-35jh-r3h4-6jhm",
            &["CVE-2021-23337"],
            "lodash",
            Severity::Critical,
        );
        f.reported(
            at(10),
            std::slice::from_ref(&v1),
            SCAN,
            std::slice::from_ref(&lodash),
        );
        assert_eq!(open_in(&f, "prod"), [(Severity::Critical, 1)]);

        // Another scanner names it by its CVE: the same finding, reported later.
        let same = vuln("CVE-2021-23337", &[], "lodash", Severity::High);
        f.reported(
            at(12),
            std::slice::from_ref(&v1),
            ("sbom", "cyclonedx", "shop@1"),
            &[same],
        );
        assert_eq!(open_in(&f, "prod"), [(Severity::Critical, 1)]);

        // The fixed release is certified 30 hours after the first report.
        f.reported(at(20), std::slice::from_ref(&v2), SCAN, &[]);
        let closed = f.certified(at(40), "prod", std::slice::from_ref(&v2));
        assert_eq!(
            closed,
            [ClosedWindow {
                environment: "prod".into(),
                finding: Finding {
                    vulnerability: "CVE-2021-23337".into(),
                    package: "lodash".into()
                },
                seconds: 30.0 * 3600.0,
            }]
        );
        assert_eq!(open_in(&f, "prod"), []);

        // Rolling back to the vulnerable release opens it again; nothing closes.
        assert!(f.rolled_back(at(41), "prod", "shop@1").is_empty());
        assert_eq!(open_in(&f, "prod"), [(Severity::Critical, 1)]);
    }

    #[test]
    fn a_rescan_replaces_the_last_report_of_its_tool_and_nothing_closes_without_a_certification() {
        let mut f = Findings::default();
        let v1 = digest(1);
        f.certified(at(0), "staging", std::slice::from_ref(&v1));
        let a = vuln("CVE-1", &[], "a", Severity::High);
        let b = vuln("CVE-2", &[], "b", Severity::Low);
        f.reported(at(1), std::slice::from_ref(&v1), SCAN, &[a.clone(), b]);
        assert_eq!(
            open_in(&f, "staging"),
            [(Severity::High, 1), (Severity::Low, 1)]
        );
        f.reported(
            at(2),
            std::slice::from_ref(&v1),
            SCAN,
            std::slice::from_ref(&a),
        );
        assert_eq!(open_in(&f, "staging"), [(Severity::High, 1)]);
        // Another tool's clean scan replaces nothing: its silence hides no finding.
        f.reported(
            at(2),
            std::slice::from_ref(&v1),
            ("vulnerability-scan", "grype", "shop:1"),
            &[],
        );
        assert_eq!(open_in(&f, "staging"), [(Severity::High, 1)]);
        // Nor does the same tool's scan of another target.
        f.reported(
            at(2),
            std::slice::from_ref(&v1),
            ("vulnerability-scan", "trivy", "alpine:3"),
            &[],
        );
        assert_eq!(open_in(&f, "staging"), [(Severity::High, 1)]);
        // Certifying the same release again closes nothing.
        assert!(
            f.certified(at(3), "staging", std::slice::from_ref(&v1))
                .is_empty()
        );
        // An environment never certified is not listed.
        assert!(f.open().iter().all(|(env, _)| *env == "staging"));
    }
}
