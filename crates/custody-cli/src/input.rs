//! Reading the files a user names, with limits: nothing untrusted decides how much memory
//! custody allocates.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use anyhow::Context;

/// Largest key file read (a PEM key is well under 1 KiB).
pub(crate) const MAX_KEY_FILE: u64 = 64 * 1024;
/// Largest envelope or envelope batch read.
pub(crate) const MAX_DOCUMENT: u64 = 256 * 1024 * 1024;

/// Reads `path` (or standard input for `-`) up to `limit` bytes, failing beyond it.
pub(crate) fn read_limited(path: &Path, limit: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let too_large = || {
        anyhow::anyhow!(
            "{what} {} is larger than {limit} bytes; is it the right file?",
            path.display()
        )
    };
    let reader: Box<dyn Read> = if path == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        let file =
            File::open(path).with_context(|| format!("opening {what} {}", path.display()))?;
        // A regular file says its size: refuse it before reading any of it.
        if file
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() > limit)
        {
            return Err(too_large());
        }
        Box::new(file)
    };
    reader
        .take(limit + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    if buf.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(buf)
}

/// Reads a UTF-8 text file with a limit.
pub(crate) fn read_text(path: &Path, limit: u64, what: &str) -> anyhow::Result<String> {
    let bytes = read_limited(path, limit, what)?;
    String::from_utf8(bytes).with_context(|| format!("{what} {} is not UTF-8 text", path.display()))
}

/// `text` as it may reach a terminal: every control character but newline and tab (and
/// the Unicode controls that reorder text) escaped as Rust writes it (`\u{1b}`, `\r`,
/// `\0`), so that what someone typed into custody (a rationale, a reason, a format)
/// cannot move an auditor's cursor, clear their screen or rewrite a line; with
/// `keep_newlines` false, newlines and tabs too, for a field inside one line. A backslash
/// is escaped too (`\\`), so text that spells an escape cannot pass for one custody made.
/// Text without such characters is returned as it is.
pub(crate) fn printable(text: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    escaped(text, keep_newlines, true)
}

/// The last guard before the terminal, over whole lines whose fields went through
/// [`printable`] already (or hold only what custody wrote): control characters escaped,
/// backslashes left alone, so an escaped field is not escaped twice.
pub(crate) fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    escaped(text, true, false)
}

fn escaped(text: &str, keep_newlines: bool, backslashes: bool) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        // Text that reorders, hides or breaks lines without being a control character:
        // bidi controls, zero-width characters and marks, line and paragraph separators.
        let reorders = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            | '\u{200b}'..='\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{2060}'..='\u{2064}'
            | '\u{feff}');
        (c.is_control() && !(keep_newlines && (c == '\n' || c == '\t')))
            || reorders
            || (backslashes && c == '\\')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// [`printable`] for a field inside one line: newlines and tabs escaped too.
pub(crate) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    printable(text, false)
}

/// A time as people read it, to the second (`2026-11-30T01:02:58Z`), so that columns line
/// up; `--json` keeps the recorded precision. Every time the CLI prints for people goes
/// through here.
pub(crate) fn when(t: custody_model::Timestamp) -> String {
    t.to_second().to_string()
}

/// [`when`] for a time carried as text (RFC 3339); anything else is shown as it is.
pub(crate) fn when_text(t: &str) -> String {
    t.parse().map_or_else(|_| t.to_owned(), when)
}

/// Prints a JSON value on stdout, pretty, with a trailing newline.
pub(crate) fn print_json(value: &serde_json::Value) {
    write_stdout(&format!("{value:#}\n"));
}

/// Prints a line (or lines) on stdout for people, control characters escaped
/// ([`terminal_safe`]; fields from elsewhere go through [`printable`] first).
pub(crate) fn print_line(line: &str) {
    write_stdout(&format!("{}\n", terminal_safe(line)));
}

/// Prints text on stdout as it is (no newline added).
pub(crate) fn print_raw(text: &str) {
    write_stdout(text);
}

/// The exit status of a command whose reader went away (`custody history | head`): what
/// a shell reports for a tool the SIGPIPE signal ended, 128 + 13.
const EXIT_CLOSED_PIPE: i32 = 141;

/// Writes to stdout. Every print of the CLI goes through here, so that a reader that stops
/// early (`| head`) ends the command quietly, as it ends any command-line tool: Rust
/// ignores SIGPIPE, so the write fails with EPIPE, where `println!` would panic with a
/// backtrace. What the command recorded stays recorded; only its output is cut short.
fn write_stdout(text: &str) {
    use std::io::Write as _;
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(EXIT_CLOSED_PIPE),
        Err(e) => {
            eprintln!("error: writing to standard output: {e}");
            std::process::exit(2);
        }
    }
}

/// Reads a PKCS#8 PEM private key file.
pub(crate) fn load_private_key(path: &Path) -> anyhow::Result<custody_crypto::PrivateKey> {
    let pem = read_text(path, MAX_KEY_FILE, "key file")?;
    custody_crypto::PrivateKey::from_pkcs8_pem(&pem)
        .with_context(|| format!("reading {}", path.display()))
}

/// The signer a `--*-key` option names: a PKCS#8 PEM key file, or a key in a PKCS#11 token
/// given as an RFC 7512 URI (`pkcs11:token=…;object=…?module-path=…&pin-source=file:…`),
/// whose PIN comes from a file or an environment variable, never the command line.
pub(crate) fn load_signer(key: &Path) -> anyhow::Result<Box<dyn custody_crypto::Signer>> {
    if let Some(uri) = key.to_str().filter(|k| {
        k.get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("pkcs11:"))
    }) {
        let config = custody_crypto::Pkcs11Config::from_uri(uri)?;
        let signer = custody_crypto::Pkcs11Signer::open(&config).with_context(|| {
            format!(
                "opening key {:?} on token {:?}",
                config.key_label, config.token_label
            )
        })?;
        return Ok(Box::new(signer));
    }
    Ok(Box::new(load_private_key(key)?))
}

/// Reads an SPKI PEM public key file.
pub(crate) fn load_public_key(path: &Path) -> anyhow::Result<custody_crypto::PublicKey> {
    let pem = read_text(path, MAX_KEY_FILE, "key file")?;
    custody_crypto::PublicKey::from_pem(&pem).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_terminal_raw() {
        let typed = "ok\u{1b}[2J\rINC-1\0 done\u{202e}txt";
        let shown = printable(typed, true);
        assert_eq!(shown, "ok\\u{1b}[2J\\rINC-1\\u{0} done\\u{202e}txt");
        assert!(!shown.chars().any(|c| c.is_control()));
        assert_eq!(printable("two\nlines\tok", true), "two\nlines\tok");
        assert_eq!(one_line("two\nlines"), "two\\nlines");
        // Typed to look like an escape: shown as what was typed, not as an escape.
        assert_eq!(one_line("fine\\u{1b}[2J"), "fine\\\\u{1b}[2J");
        assert_ne!(one_line("a\\nb"), one_line("a\nb"));
        // Invisible or line-breaking without being control characters.
        assert_eq!(
            printable("ok\u{2028}FAKE\u{200b}LINE\u{feff}", true),
            "ok\\u{2028}FAKE\\u{200b}LINE\\u{feff}"
        );
        assert!(matches!(
            printable("plain", true),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn times_for_people_are_shown_to_the_second() {
        let t: custody_model::Timestamp = "2026-11-30T01:02:58.552112259Z".parse().unwrap();
        assert_eq!(when(t), "2026-11-30T01:02:58Z");
        let whole: custody_model::Timestamp = "2026-11-30T01:02:58Z".parse().unwrap();
        assert_eq!(when(whole), "2026-11-30T01:02:58Z");
        assert_eq!(
            when_text("2026-11-30T01:02:58.5656605Z"),
            "2026-11-30T01:02:58Z"
        );
        assert_eq!(when_text("never"), "never");
    }
}
