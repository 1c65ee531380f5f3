//! Principal templates: `ci:{repository}@{ref}` filled with a token's claims, in one pass.
//!
//! A template is parsed once, at configuration, into literal text and claim names. Filling
//! it writes each literal and each named claim's value in order and never looks at what it
//! wrote again: a claim value containing `{workflow}` stays those ten characters, it is not
//! filled by the `workflow` claim. (Filling claim by claim, each over the result of the
//! last, let a branch named `{workflow}` in a workflow named `main` become `refs/heads/main`.)
//! The result must be a valid principal, and claim values may not contain the characters
//! a principal's structure is written with here, so no value can pass for another field.

use custody_model::Principal;
use serde_json::Value;

/// A parsed principal template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Claim(String),
}

/// Longest claim value a template takes (a principal is at most 256 characters anyway).
const MAX_VALUE: usize = 200;

impl Template {
    /// Parses `{claim}` placeholders; an unclosed `{`, a stray `}`, an empty or nested
    /// name is refused with what is wrong.
    pub fn parse(text: &str) -> Result<Template, String> {
        if text.starts_with(LOCAL) {
            return Err(format!(
                "principal template {text:?}: {LOCAL}… names a machine's operator, which no identity provider may name"
            ));
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => {
                                return Err(format!(
                                    "principal template {text:?}: a '{{' without its '}}'"
                                ));
                            }
                            Some(c) => name.push(c),
                        }
                    }
                    if name.is_empty()
                        || !name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        return Err(format!(
                            "principal template {text:?}: {{{name}}} is not a claim name (letters, digits, '_', '-')"
                        ));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Claim(name));
                }
                '}' => {
                    return Err(format!(
                        "principal template {text:?}: a '}}' without its '{{'"
                    ));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        if parts.is_empty() {
            return Err("a principal template is empty".into());
        }
        Ok(Template(parts))
    }

    /// The claims the template names, in order.
    pub fn claims(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Part::Claim(name) => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// The principal `claims` make of it; `Err` says which claim is missing or unfit.
    pub fn fill(&self, claims: &Value) -> Result<Principal, String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Claim(name) => {
                    let value = claims
                        .get(name)
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("the token has no text claim {name:?}"))?;
                    if value.is_empty()
                        || value.len() > MAX_VALUE
                        || value
                            .chars()
                            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '{' | '}'))
                    {
                        return Err(format!(
                            "claim {name:?} is not fit for a principal (empty, too long, or with spaces, control characters or braces)"
                        ));
                    }
                    out.push_str(value);
                }
            }
        }
        // `local:` names the operator of a data directory (custody's CLI on the machine):
        // no identity provider speaks for it, whatever a claim says.
        if out.starts_with(LOCAL) {
            return Err(format!(
                "the principal {out:?} would be a machine's operator ({LOCAL}…), which no identity provider may name"
            ));
        }
        out.parse::<Principal>().map_err(|e| e.to_string())
    }
}

/// The prefix of an operator's principal (`local:USER`).
const LOCAL: &str = "local:";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_claim_maps_to_a_machines_operator() {
        let t = Template::parse("{name}").unwrap();
        let err = t.fill(&json!({"name": "local:root"})).unwrap_err();
        assert!(err.contains("operator"), "{err}");
        assert!(Template::parse("local:{sub}").is_err());
        assert!(
            Template::parse("{name}")
                .unwrap()
                .fill(&json!({"name": "alice"}))
                .is_ok()
        );
    }

    #[test]
    fn a_claim_value_is_never_read_as_a_placeholder() {
        let t = Template::parse("ci:{repository}@{ref}").unwrap();
        let claims =
            json!({"repository": "acme/shop", "ref": "refs/heads/{workflow}", "workflow": "main"});
        assert!(t.fill(&claims).is_err(), "braces in a value are refused");
        let claims = json!({"repository": "acme/shop", "ref": "refs/heads/main"});
        assert_eq!(
            t.fill(&claims).unwrap().as_str(),
            "ci:acme/shop@refs/heads/main"
        );
    }

    #[test]
    fn bad_templates_and_claims_are_refused_by_name() {
        for bad in ["ci:{repository", "ci:repo}", "{}", "{a{b}}", "", "{sp ace}"] {
            assert!(Template::parse(bad).is_err(), "{bad:?}");
        }
        let t = Template::parse("gh:{sub}").unwrap();
        assert!(t.fill(&json!({})).unwrap_err().contains("\"sub\""));
        assert!(t.fill(&json!({"sub": "a b"})).is_err());
        assert!(t.fill(&json!({"sub": 7})).is_err());
        assert!(t.fill(&json!({"sub": "x".repeat(201)})).is_err());
    }

    proptest::proptest! {
        /// Whatever the claims hold, the principal is the template's text with each
        /// placeholder replaced by exactly its own claim's value, or a refusal.
        #[test]
        fn no_claim_value_changes_which_claims_are_used(
            repo in "[ -~]{0,40}", reference in "[ -~]{0,40}", workflow in "[ -~]{0,40}"
        ) {
            let t = Template::parse("ci:{repository}@{ref}").unwrap();
            let claims = json!({"repository": repo, "ref": reference, "workflow": workflow});
            if let Ok(p) = t.fill(&claims) {
                proptest::prop_assert_eq!(p.as_str(), format!("ci:{repo}@{reference}"));
                let braces = repo.contains('{') || reference.contains('{');
                proptest::prop_assert!(!braces);
            }
        }
    }
}
