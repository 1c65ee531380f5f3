//! Driving the dashboard in a headless Chromium: the browser session, sign-in and
//! sign-out, clicks that wait for the next page, screenshots kept under
//! target/tmp/dashboard/ (CARGO_TARGET_TMPDIR).

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers"
)]

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::common::{Helper, http};

/// chromedriver on a free port, and a headless Chromium session through it.
pub(crate) async fn browser() -> (Helper, Client) {
    let find = |var: &str, name: &str| -> PathBuf {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| {
                ["/usr/bin", "/usr/local/bin"]
                    .iter()
                    .map(|d| PathBuf::from(d).join(name))
                    .find(|p| p.exists())
            })
            .unwrap_or_else(|| {
                panic!("the browser tests need {name}: run scripts/test.sh (it installs Debian's chromium and chromium-driver), or set {var}")
            })
    };
    let driver = find("CUSTODY_TEST_CHROMEDRIVER", "chromedriver");
    let chromium = find("CUSTODY_TEST_CHROMIUM", "chromium");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let helper = Helper(
        std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if http().get(format!("{url}/status")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,900"],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&url)
        .await
        .unwrap();
    (helper, client)
}

/// Keeps a screenshot of the page as a test output.
pub(crate) async fn screenshot(c: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.png")),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
}

/// Types `keys` into the element at `css`.
pub(crate) async fn type_into(c: &Client, css: &str, keys: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(keys)
        .await
        .unwrap();
}

/// Clicks the element at `css`; with `then`, waits for the next page (the current one gone
/// stale) to show an element at `then`.
pub(crate) async fn click(c: &Client, css: &str, then: &str) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    if then.is_empty() {
        return;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // Until the page navigates away, its elements still answer.
    while old.tag_name().await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "{css} led nowhere");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(then))
        .await
        .unwrap();
}

pub(crate) async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    type_into(c, "#token", token).await;
    click(c, "#sign-in", "").await;
    if let Err(e) = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("div.board"))
        .await
    {
        screenshot(c, "sign-in-failed").await;
        panic!(
            "no board after signing in: {e}: {}",
            c.source().await.unwrap()
        );
    }
    assert_eq!(c.current_url().await.unwrap().path(), "/");
}

pub(crate) async fn sign_out(c: &Client) {
    click(c, "header form button", "#token").await;
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
}

pub(crate) async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
