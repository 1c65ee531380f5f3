//! A real OpenID Provider for the dashboard's sign-in tests: `provider.mjs` (the
//! OpenID-certified `oidc-provider` package, pinned in package.json and package-lock.json)
//! run with Node.js, and an HTTP walk through its login and consent forms for the tests
//! that need codes without a browser.
//!
//! Node comes from `CUSTODY_TEST_NODE` (else /usr/bin/node), the installed package from
//! `CUSTODY_TEST_OIDC_PROVIDER` (else `.oidc-provider` at the workspace root): a directory
//! where `npm ci` ran on this directory's package.json and package-lock.json, as
//! scripts/test.sh does. Either missing fails the test, saying how to get it.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers"
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::common::{Helper, listening};

/// This directory (provider.mjs, package.json, package-lock.json).
fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc_provider")
}

/// The Node.js binary.
pub(crate) fn node() -> PathBuf {
    std::env::var_os("CUSTODY_TEST_NODE")
        .map(PathBuf::from)
        .or_else(|| {
            ["/usr/bin/node", "/usr/local/bin/node"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| {
            panic!("the OIDC sign-in tests need Node.js: run scripts/test.sh (it installs Debian's nodejs and npm), or set CUSTODY_TEST_NODE")
        })
}

/// The directory where the pinned `oidc-provider` is installed, checked to be the
/// committed lock's.
pub(crate) fn modules() -> PathBuf {
    let dir = std::env::var_os("CUSTODY_TEST_OIDC_PROVIDER")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.oidc-provider"));
    let how = "run scripts/test.sh (it runs `npm ci` on crates/custody-cli/tests/oidc_provider into .oidc-provider), or set CUSTODY_TEST_OIDC_PROVIDER to a directory where `npm ci` ran on that package.json and package-lock.json";
    assert!(
        dir.join("node_modules/oidc-provider/package.json").exists(),
        "the OIDC sign-in tests need the oidc-provider package in {}: {how}",
        dir.display()
    );
    let installed = std::fs::read(dir.join("package-lock.json")).unwrap_or_default();
    assert!(
        installed == std::fs::read(here().join("package-lock.json")).unwrap(),
        "{} holds another oidc-provider than package-lock.json pins: {how}",
        dir.display()
    );
    dir
}

/// A provider at `http://{host}:PORT` with the client `client_id`/`secret` whose one
/// redirect URI is `redirect`: the process and its issuer URL.
pub(crate) fn start(host: &str, client_id: &str, secret: &str, redirect: &str) -> (Helper, String) {
    let mut cmd = std::process::Command::new(node());
    cmd.arg(here().join("provider.mjs"))
        .arg(modules())
        .args([host, client_id, secret, redirect])
        .stderr(std::process::Stdio::null());
    listening(&mut cmd)
}

/// A port free on the loopback interface now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Cookies by name, as a browser would send them to one site (paths ignored: the
/// provider reads its own by name).
#[derive(Default)]
pub(crate) struct Jar(HashMap<String, String>);

impl Jar {
    /// Keeps the cookies `response` sets, and forgets those it clears.
    pub(crate) fn absorb(&mut self, response: &reqwest::Response) {
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let gone = value.is_empty()
                || set.to_ascii_lowercase().contains("max-age=0")
                || set.contains("1970");
            if gone {
                self.0.remove(name);
            } else {
                self.0.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    /// The `Cookie` header.
    pub(crate) fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// One cookie's value.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// From the provider's authorization URL, through its login form (as `login`) and
/// consent form, to the redirect back to custody (the URL starting with `back`).
/// `abort` cancels at the login form instead.
pub(crate) async fn log_in(authorize: &str, login: &str, back: &str, abort: bool) -> String {
    let client = crate::common::stepping_client();
    let mut jar = Jar::default();
    let mut url = reqwest::Url::parse(authorize).unwrap();
    let mut form: Option<String> = None;
    for _ in 0..20 {
        let request = match form.take() {
            Some(body) => client
                .post(url.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
            None => client.get(url.clone()),
        };
        let r = request.header("cookie", jar.header()).send().await.unwrap();
        jar.absorb(&r);
        if r.status().is_redirection() {
            let location = r.headers()["location"].to_str().unwrap();
            let next = url.join(location).unwrap();
            if next.as_str().starts_with(back) {
                return next.to_string();
            }
            url = next;
            continue;
        }
        let status = r.status();
        let page = r.text().await.unwrap();
        assert_eq!(status, 200, "{url}: {page}");
        if page.contains(r#"name="prompt" value="login""#) {
            if abort {
                url = url.join(&format!("{}/abort", url.path())).unwrap();
                continue;
            }
            form = Some(format!("prompt=login&login={login}&password=any"));
        } else if page.contains(r#"name="prompt" value="consent""#) {
            form = Some("prompt=consent".into());
        } else {
            panic!("{url}: neither a login nor a consent form: {page}");
        }
    }
    panic!("the provider never sent the browser back to {back}")
}
