//! SARIF 2.1.0 static-analysis results.
//!
//! Each result becomes a [`Finding`]: its rule id, its level, the tool that found it, the
//! first physical location (artifact URI and start line) and the first line of its
//! message. The level follows SARIF §3.27.10: the result's own `level`; else `none` when
//! its `kind` is present and not `fail`; else the rule's `defaultConfiguration.level`
//! (the rule found by `rule.toolComponent`, `ruleIndex`/`rule.index`, or `ruleId`); else
//! `warning`. Run-time configuration overrides (`invocations[].ruleConfigurationOverrides`)
//! are not applied. A message given by `id` is looked up in the rule's `messageStrings`
//! with its `{n}` placeholders filled from `arguments`.
//!
//! Refused: anything but `"version": "2.1.0"`, a missing or empty `runs` array (no tool
//! ran), a run without `results` (SARIF §3.14.23: absent or null, the tool did not run;
//! an empty array is a run that found nothing), a run whose invocation says it did not
//! finish or does not say (`executionSuccessful`), a run without `tool.driver.name`, a result
//! without `message`, an unknown level, wrong types. A report that says nothing must not
//! stand where one that found something stood.

use crate::json::{self, bounded, bounded_option, bounded_or_null};
use crate::summary::FindingTotals;
use crate::{EvidenceError, Format, first_line};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A SARIF log, normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingReport {
    /// The names of the tools that ran (`tool.driver.name` of each run), sorted, distinct.
    pub tools: Vec<String>,
    /// Every result, sorted (by rule id, level, location, message, tool).
    pub findings: Vec<Finding>,
}

/// A SARIF level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A serious problem.
    Error,
    /// A problem.
    Warning,
    /// Worth knowing.
    Note,
    /// No level (e.g. a result of kind `pass` or `informational`).
    None,
}

/// One result of a SARIF run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    /// The rule that fired (`ruleId`, else `rule.id`, else the id of the indexed rule).
    pub rule_id: Option<String>,
    /// Its level, defaulted per SARIF §3.27.10.
    pub level: Level,
    /// The URI of its first physical location, as written (often relative).
    pub uri: Option<String>,
    /// The start line of that location.
    pub line: Option<u64>,
    /// The first line of its message.
    pub message: String,
    /// The tool that reported it.
    pub tool: String,
}

impl FindingReport {
    /// The totals per level.
    pub fn totals(&self) -> FindingTotals {
        let mut t = FindingTotals::default();
        t.add_report(self);
        t
    }
}

/// Parses a SARIF 2.1.0 log.
pub fn parse(bytes: &[u8]) -> Result<FindingReport, EvidenceError> {
    let log: Log = json::from_slice(Format::Sarif, bytes)?;
    if log.version != "2.1.0" {
        return Err(EvidenceError::at_path(
            Format::Sarif,
            "$.version",
            format!("version {:?} is not SARIF 2.1.0", log.version),
        ));
    }
    if log.runs.is_empty() {
        return Err(EvidenceError::at_path(
            Format::Sarif,
            "$.runs",
            "no run: a SARIF log in which no tool ran says nothing",
        ));
    }
    let mut tools = Vec::new();
    let mut findings = Vec::new();
    for (n, run) in log.runs.into_iter().enumerate() {
        let tool = &run.tool;
        // Whether the tool finished: SARIF requires each invocation to say.
        let unfinished = run.invocations.iter().find_map(|i| match i.execution_successful {
            Some(true) => None,
            Some(false) => Some("executionSuccessful is false: {tool} did not finish, so its results say nothing"),
            None => Some("an invocation without executionSuccessful (SARIF requires it): whether {tool} finished is unknown"),
        });
        if let Some(why) = unfinished {
            return Err(EvidenceError::at_path(
                Format::Sarif,
                format!("$.runs[{n}].invocations"),
                why.replace("{tool}", &run.tool.driver.name),
            ));
        }
        let Some(results) = &run.results else {
            return Err(EvidenceError::at_path(
                Format::Sarif,
                format!("$.runs[{n}].results"),
                format!(
                    "absent: {} did not run (SARIF §3.14.23); a run that found nothing has an empty results array",
                    run.tool.driver.name
                ),
            ));
        };
        for r in results {
            let component = match r.rule.as_ref().and_then(|x| x.tool_component.as_ref()) {
                Some(tc) => lookup_component(tool, tc),
                None => Some(&tool.driver),
            };
            let index = r
                .rule_index
                .or_else(|| r.rule.as_ref().and_then(|x| x.index));
            let rule_id = r
                .rule_id
                .clone()
                .or_else(|| r.rule.as_ref().and_then(|x| x.id.clone()));
            let rule = component.and_then(|c| find_rule(c, index, rule_id.as_deref()));
            let level = match (r.level, r.kind.as_deref()) {
                (Some(level), _) => level,
                (None, Some(kind)) if kind != "fail" => Level::None,
                _ => rule
                    .and_then(|x| x.default_configuration.as_ref())
                    .and_then(|c| c.level)
                    .unwrap_or(Level::Warning),
            };
            let physical = r
                .locations
                .iter()
                .find_map(|l| l.physical_location.as_ref());
            findings.push(Finding {
                rule_id: rule_id.or_else(|| rule.and_then(|x| x.id.clone())),
                level,
                uri: physical
                    .and_then(|p| p.artifact_location.as_ref())
                    .and_then(|a| a.uri.clone()),
                line: physical
                    .and_then(|p| p.region.as_ref())
                    .and_then(|g| g.start_line),
                message: first_line(&message_text(&r.message, rule)),
                tool: tool.driver.name.clone(),
            });
        }
        tools.push(run.tool.driver.name);
    }
    tools.sort();
    tools.dedup();
    findings.sort();
    Ok(FindingReport { tools, findings })
}

/// The tool component a `toolComponent` reference names: the driver or an extension.
fn lookup_component<'a>(tool: &'a Tool, r: &ComponentRef) -> Option<&'a Component> {
    if let Some(i) = r.index.and_then(|i| usize::try_from(i).ok()) {
        return tool.extensions.get(i);
    }
    match r.name.as_deref() {
        Some(name) if name != tool.driver.name => tool.extensions.iter().find(|c| c.name == name),
        _ => Some(&tool.driver),
    }
}

/// A rule by index (when valid), else by id; a hierarchical id `a/b` also finds `a`.
fn find_rule<'a>(c: &'a Component, index: Option<i64>, id: Option<&str>) -> Option<&'a Rule> {
    if let Some(rule) = index
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| c.rules.get(i))
    {
        return Some(rule);
    }
    let id = id?;
    let by_id = |wanted: &str| c.rules.iter().find(|r| r.id.as_deref() == Some(wanted));
    by_id(id).or_else(|| id.split_once('/').and_then(|(head, _)| by_id(head)))
}

/// A message's text, or its `messageStrings` template with `{n}` filled in.
fn message_text(m: &Message, rule: Option<&Rule>) -> String {
    if let Some(text) = &m.text {
        return text.clone();
    }
    let template =
        m.id.as_deref()
            .and_then(|id| rule?.message_strings.get(id))
            .and_then(|s| s.text.as_deref());
    let Some(template) = template else {
        return m.id.clone().unwrap_or_default();
    };
    let mut out = template.to_owned();
    for (i, arg) in m.arguments.iter().enumerate() {
        out = out.replace(&format!("{{{i}}}"), arg);
    }
    out
}

// The subset of the SARIF 2.1.0 object model custody reads; serde ignores the rest.

#[derive(Deserialize)]
#[serde(expecting = "a SARIF log object")]
struct Log {
    version: String,
    #[serde(deserialize_with = "bounded")]
    runs: Vec<Run>,
}

#[derive(Deserialize)]
#[serde(expecting = "a run object")]
struct Run {
    tool: Tool,
    #[serde(default, deserialize_with = "bounded_option")]
    results: Option<Vec<ResultObject>>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    invocations: Vec<Invocation>,
}

/// A run's invocation: only whether the tool finished is read.
#[derive(Deserialize)]
#[serde(expecting = "an invocation object")]
struct Invocation {
    #[serde(default, rename = "executionSuccessful")]
    execution_successful: Option<bool>,
}

#[derive(Deserialize)]
#[serde(expecting = "a tool object")]
struct Tool {
    driver: Component,
    #[serde(default, deserialize_with = "bounded_or_null")]
    extensions: Vec<Component>,
}

#[derive(Deserialize)]
#[serde(expecting = "a toolComponent object")]
struct Component {
    name: String,
    #[serde(default, deserialize_with = "bounded_or_null")]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(expecting = "a reportingDescriptor object")]
struct Rule {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "defaultConfiguration")]
    default_configuration: Option<Configuration>,
    #[serde(default, rename = "messageStrings")]
    message_strings: BTreeMap<String, MessageString>,
}

#[derive(Deserialize)]
#[serde(expecting = "a reportingConfiguration object")]
struct Configuration {
    #[serde(default)]
    level: Option<Level>,
}

#[derive(Deserialize)]
#[serde(expecting = "a multiformatMessageString object")]
struct MessageString {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a result object")]
struct ResultObject {
    #[serde(default, rename = "ruleId")]
    rule_id: Option<String>,
    #[serde(default, rename = "ruleIndex")]
    rule_index: Option<i64>,
    #[serde(default)]
    rule: Option<RuleRef>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    level: Option<Level>,
    message: Message,
    #[serde(default, deserialize_with = "bounded_or_null")]
    locations: Vec<LocationObject>,
}

#[derive(Deserialize)]
#[serde(expecting = "a reportingDescriptorReference object")]
struct RuleRef {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    index: Option<i64>,
    #[serde(default, rename = "toolComponent")]
    tool_component: Option<ComponentRef>,
}

#[derive(Deserialize)]
#[serde(expecting = "a toolComponentReference object")]
struct ComponentRef {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    index: Option<i64>,
}

#[derive(Deserialize)]
#[serde(expecting = "a message object")]
struct Message {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    arguments: Vec<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a location object")]
struct LocationObject {
    #[serde(default, rename = "physicalLocation")]
    physical_location: Option<PhysicalLocation>,
}

#[derive(Deserialize)]
#[serde(expecting = "a physicalLocation object")]
struct PhysicalLocation {
    #[serde(default, rename = "artifactLocation")]
    artifact_location: Option<ArtifactLocation>,
    #[serde(default)]
    region: Option<Region>,
}

#[derive(Deserialize)]
#[serde(expecting = "an artifactLocation object")]
struct ArtifactLocation {
    #[serde(default)]
    uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a region object")]
struct Region {
    #[serde(default, rename = "startLine")]
    start_line: Option<u64>,
}
