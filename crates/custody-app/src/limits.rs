//! How much text a request may carry, and which characters: the documented bounds every
//! use case applies to what callers type, whether they come through the CLI or the API.
//!
//! Free text (a rationale, a reason, a description) may hold newlines and tabs but no
//! other control character: an ESC, CR or NUL typed into a rationale would otherwise reach
//! an auditor's terminal raw when the history is printed (the CLI escapes what older
//! versions let in, too). Names and labels hold no control character at all and are not
//! blank. A value over its bound is refused with a 400 naming the field and the bound, and
//! nothing is written.

use crate::{AppError, AppResult};

/// Longest review rationale, in bytes (UTF-8).
pub const MAX_RATIONALE: usize = 4096;
/// Longest reason (a rollback's, a break-glass request's, a log recovery's), in bytes.
pub const MAX_REASON: usize = 1024;
/// Longest token description, in bytes.
pub const MAX_DESCRIPTION: usize = 1024;
/// Longest name (an artifact's, a release's name or version), in bytes.
pub const MAX_NAME: usize = 128;
/// Longest evidence type or format, in bytes.
pub const MAX_LABEL: usize = 64;
/// Longest field of a declared build (builder id, repository, commit, a parameter), in
/// bytes.
pub const MAX_BUILD_FIELD: usize = 1024;
/// Most parameters, environment facts or steps a declared build may list.
pub const MAX_BUILD_ENTRIES: usize = 256;

/// Free text: not blank, at most `max` bytes, no control character but newline and tab.
pub(crate) fn text(field: &str, value: &str, max: usize) -> AppResult<()> {
    if value.trim().is_empty() {
        return Err(AppError::invalid(format!("{field} must not be blank")));
    }
    optional_text(field, value, max)
}

/// Free text that may be empty: at most `max` bytes, no control character but newline and
/// tab.
pub(crate) fn optional_text(field: &str, value: &str, max: usize) -> AppResult<()> {
    too_long(field, value, max)?;
    if let Some(c) = value
        .chars()
        .find(|&c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(AppError::invalid(format!(
            "{field} holds the control character {:?}; only newlines and tabs are allowed in text",
            c
        )));
    }
    Ok(())
}

/// A name or label: not blank, at most `max` bytes, no control character, no space at
/// either end.
pub(crate) fn label(field: &str, value: &str, max: usize) -> AppResult<()> {
    if value.trim().is_empty() {
        return Err(AppError::invalid(format!("{field} must not be blank")));
    }
    too_long(field, value, max)?;
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(AppError::invalid(format!(
            "{field} holds the control character {c:?}"
        )));
    }
    if value.contains('\u{FFFD}') {
        return Err(AppError::invalid(format!(
            "{field} holds bytes that are not UTF-8 (or U+FFFD, which stands for them)"
        )));
    }
    if let Some(c) = value.chars().find(|&c| custody_policy::invisible(c)) {
        return Err(AppError::invalid(format!(
            "{field} holds the invisible character U+{:04X}: it would show one thing and say another",
            u32::from(c)
        )));
    }
    if value.trim() != value {
        return Err(AppError::invalid(format!(
            "{field} {value:?} must not begin or end with a space"
        )));
    }
    Ok(())
}

fn too_long(field: &str, value: &str, max: usize) -> AppResult<()> {
    if value.len() > max {
        return Err(AppError::invalid(format!(
            "{field} is {} bytes; at most {max} are allowed",
            value.len()
        )));
    }
    Ok(())
}

/// A declared build's fields, each bounded, and its lists.
pub(crate) fn build(build: &crate::attestations::BuildFields) -> AppResult<()> {
    for (field, value) in [
        ("build.builder_id", &build.builder_id),
        ("build.source_repo", &build.source_repo),
        ("build.source_commit", &build.source_commit),
    ] {
        label(field, value, MAX_BUILD_FIELD)?;
    }
    if let Some(id) = &build.invocation_id {
        label("build.invocation_id", id, MAX_BUILD_FIELD)?;
    }
    for (field, map) in [
        ("build.parameters", &build.parameters),
        ("build.environment", &build.environment),
    ] {
        if map.len() > MAX_BUILD_ENTRIES {
            return Err(AppError::invalid(format!(
                "{field} has {} entries; at most {MAX_BUILD_ENTRIES} are allowed",
                map.len()
            )));
        }
        for (k, v) in map {
            label(&format!("{field} name"), k, MAX_BUILD_FIELD)?;
            optional_text(&format!("{field}.{k}"), v, MAX_BUILD_FIELD)?;
        }
    }
    if build.nondeterministic_steps.len() > MAX_BUILD_ENTRIES {
        return Err(AppError::invalid(format!(
            "build.nondeterministic_steps has {} entries; at most {MAX_BUILD_ENTRIES} are allowed",
            build.nondeterministic_steps.len()
        )));
    }
    for step in &build.nondeterministic_steps {
        text("build.nondeterministic_steps", step, MAX_BUILD_FIELD)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_takes_newlines_and_tabs_but_no_other_control_character() {
        assert!(text("rationale", "looks fine\n\tCVE-1 accepted", 100).is_ok());
        for bad in ["\u{1b}[2J", "a\rb", "nul\0", "\u{7f}", "\u{9b}31m"] {
            let err = text("rationale", bad, 100).unwrap_err().to_string();
            assert!(err.contains("rationale"), "{err}");
        }
        assert!(text("rationale", "  \n ", 100).is_err(), "blank");
        let err = text("rationale", &"x".repeat(101), 100)
            .unwrap_err()
            .to_string();
        assert!(err.contains("101 bytes; at most 100"), "{err}");
        assert!(optional_text("description", "", 10).is_ok());
    }

    #[test]
    fn a_label_is_not_blank_and_has_no_control_character_or_edge_space() {
        assert!(label("format", "junit", 64).is_ok());
        for bad in ["", "   ", "\t", "jun\nit", " junit", "junit ", "a\u{1b}b"] {
            assert!(label("format", bad, 64).is_err(), "{bad:?}");
        }
        assert!(label("format", &"x".repeat(65), 64).is_err());
    }
}
