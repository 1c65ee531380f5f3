//! The access log's bounds, as `[access_log]` in config.toml sets them: anonymous requests
//! recorded in full up to `anonymous_per_minute` per client address and minute, then one
//! in `anonymous_sample` (each saying how many it stands for); requests with credentials
//! always; entries older than `retention` removed by the server's pruning.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use custody_app::Clock as _;
use tower::ServiceExt as _;

use crate::support::{Backend, TestServer};

/// `[access_log]` as an operator writes it.
fn configured(retention: &str, per_minute: u32, sample: u32) -> custody_server::Settings {
    let access_log = custody_server::AccessLogConfig {
        retention: retention.into(),
        anonymous_per_minute: per_minute,
        anonymous_sample: sample,
    };
    custody_server::ServerConfig::default()
        .compile(&access_log)
        .unwrap()
}

/// `GET path` from the client at `peer`, with `token` if given: the status.
async fn get_from(server: &TestServer, peer: &str, path: &str, token: Option<&str>) -> u16 {
    let mut request = Request::builder().method("GET").uri(path);
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let mut request = request.body(Body::empty()).unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = server.router.clone().oneshot(request).await.unwrap();
    response.status().as_u16()
}

/// The access log's entries from `ip`.
async fn from(server: &TestServer, ip: &str) -> Vec<custody_store::AccessRecord> {
    let prefix = format!("{ip}:");
    server
        .access_log()
        .await
        .into_iter()
        .filter(|r| r.entry.remote.starts_with(&prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_are_sampled_as_configured() {
    let server = TestServer::start_with(Backend::Sqlite, configured("90d", 2, 3)).await;
    // Eleven in one minute from one address: the first two, then every third beyond.
    for _ in 0..11 {
        assert_eq!(
            get_from(&server, "10.0.0.1:4000", "/healthz", None).await,
            200
        );
    }
    let flood = from(&server, "10.0.0.1").await;
    assert_eq!(flood.len(), 5, "{flood:#?}");
    for r in &flood[2..] {
        assert!(
            r.entry
                .outcome
                .contains("after 2 more anonymous request(s) from this address"),
            "{r:?}"
        );
    }
    // Refused anonymous requests are sampled the same way (no valid credential, no name).
    for _ in 0..4 {
        assert_eq!(
            get_from(&server, "10.0.0.2:4000", "/api/v1/tokens", None).await,
            401
        );
    }
    assert_eq!(from(&server, "10.0.0.2").await.len(), 2);
    // A refused credential is named as far as it can be without trusting it: a custody
    // token by its id (its secret never), anything else by its kind.
    let audrey = server.token("audrey").to_owned();
    let id = audrey.split('_').nth(1).unwrap().to_owned();
    let wrong_secret = format!("cst_{id}_not-the-secret");
    // (Each from its own address: two a minute per address are recorded in full here.)
    let mut refused = Vec::new();
    // A secret sent where the id goes (not the form custody issues ids in) is not named.
    let secret_as_id = format!("cst_{}_x", "a".repeat(64));
    for (i, token) in [
        wrong_secret.as_str(),
        "cst_a/b;c=d_x",
        "eyJhbGciOiJub25lIn0.e30.",
        secret_as_id.as_str(),
    ]
    .into_iter()
    .enumerate()
    {
        let peer = format!("10.0.1.{i}:4000");
        let status = get_from(&server, &peer, "/api/v1/tokens", Some(token)).await;
        assert_eq!(status, 401, "{token}");
        let rows = from(&server, &format!("10.0.1.{i}")).await;
        refused.extend(rows.into_iter().map(|r| r.entry.credential));
    }
    assert_eq!(
        refused,
        [
            format!("token {id} (refused)"),
            "a malformed custody token (refused)".to_owned(),
            "a bearer credential that is not a custody token (refused)".to_owned(),
            "a malformed custody token (refused)".to_owned(),
        ]
    );
    assert!(
        server.access_log().await.iter().all(|r| {
            let row = format!("{r:?}");
            !row.contains("not-the-secret") && !row.contains(&"a".repeat(64))
        }),
        "a presented secret is never logged"
    );
    // Another address has its own count; a request with a credential is always recorded.
    assert_eq!(
        get_from(&server, "10.0.0.3:4000", "/healthz", None).await,
        200
    );
    assert_eq!(from(&server, "10.0.0.3").await.len(), 1);
    for _ in 0..5 {
        let status = get_from(&server, "10.0.0.1:4000", "/api/v1/tokens", Some(&audrey)).await;
        assert_eq!(status, 200);
    }
    let named = from(&server, "10.0.0.1").await;
    assert_eq!(
        named
            .iter()
            .filter(|r| r.entry.principal == "audrey")
            .count(),
        5
    );
    // A new minute starts a new count.
    server.clock.advance(60);
    for _ in 0..2 {
        get_from(&server, "10.0.0.1:4000", "/healthz", None).await;
    }
    let anonymous = |rs: Vec<custody_store::AccessRecord>| {
        rs.into_iter()
            .filter(|r| r.entry.principal.is_empty())
            .count()
    };
    assert_eq!(anonymous(from(&server, "10.0.0.1").await), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_past_the_configured_retention_are_removed() {
    let server = TestServer::start_with(Backend::Sqlite, configured("1d", 60, 100)).await;
    let audrey = server.token("audrey").to_owned();
    for _ in 0..3 {
        get_from(&server, "10.0.0.1:4000", "/api/v1/tokens", Some(&audrey)).await;
    }
    let old = server.clock.now().to_string();
    // Two days on, one more; then the server's pruning runs (at start, then hourly).
    server.clock.advance(2 * 86_400);
    get_from(&server, "10.0.0.1:4000", "/api/v1/tokens", Some(&audrey)).await;
    assert_eq!(server.access_log().await.len(), 4);
    let tasks = custody_server::spawn_background(&server.state);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let kept = loop {
        let log = server.access_log().await;
        if log.iter().all(|r| r.entry.at != old) {
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "entries past the retention were kept: {log:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(kept.len(), 1, "{kept:#?}");
    for t in tasks {
        t.abort();
    }
}

/// The request of a client that hangs up before its answer (here: the request's future
/// dropped after its first step, as hyper drops it when the connection closes).
async fn hang_up(server: &TestServer, method: &str, path: &str, token: &str, body: &str) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let answer = server.router.clone().oneshot(request);
    let _ = tokio::time::timeout(std::time::Duration::ZERO, answer).await;
}

/// The entries for `method path` once there are `n` (the detached requests finish on
/// their own; bounded, not timed: a generous limit only ends a failing wait).
async fn entries_for(server: &TestServer, method: &str, path: &str, n: usize) -> usize {
    let mut found = 0;
    for _ in 0..200 {
        found = server
            .access_log()
            .await
            .iter()
            .filter(|r| r.entry.method == method && r.entry.path == path)
            .count();
        if found >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    found
}

/// A client that hangs up cannot make a change, or be refused, without an access-log
/// entry: the request runs to its end and is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_hangs_up_is_still_recorded() {
    let server = TestServer::start(Backend::Sqlite).await;
    for i in 0..5 {
        let body = format!(r#"{{"principal":"temp{i}","expires":"1d"}}"#);
        hang_up(
            &server,
            "POST",
            "/api/v1/tokens",
            server.token("root"),
            &body,
        )
        .await;
        // vic (a viewer) may not read the access log: refused.
        hang_up(
            &server,
            "GET",
            "/api/v1/access-log",
            server.token("vic"),
            "",
        )
        .await;
    }
    assert_eq!(entries_for(&server, "POST", "/api/v1/tokens", 5).await, 5);
    assert_eq!(
        entries_for(&server, "GET", "/api/v1/access-log", 5).await,
        5
    );
    let log = server.access_log().await;
    let made = log
        .iter()
        .filter(|r| r.entry.path == "/api/v1/tokens" && r.entry.status == 201)
        .count();
    assert_eq!(made, 5, "each token made is recorded as made");
    assert!(
        log.iter()
            .filter(|r| r.entry.path == "/api/v1/access-log")
            .all(|r| r.entry.status == 403 && r.entry.principal == "vic"),
        "{log:?}"
    );
}

/// The entries written so far, without waiting for queued ones: what is committed.
async fn committed(server: &TestServer, path: &str) -> Vec<custody_store::AccessRecord> {
    let log = server.state.app.log().access_log(0, 1000).await.unwrap();
    log.into_iter().filter(|r| r.entry.path == path).collect()
}

/// The body's bounds are answered by the extractors, after the route's guard: a body over
/// the limit (413) and one that does not arrive in time (408) are recorded under their
/// caller, as the client gets them, before it gets them; neither writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_or_oversized_request_is_recorded_under_its_caller() {
    let mut settings = configured("90d", 60, 100);
    settings.request_timeout = std::time::Duration::from_millis(300);
    let server = TestServer::start_with(Backend::Sqlite, settings).await;
    let root = format!("Bearer {}", server.token("root"));
    let before = server.size().await;

    // A body declared larger than the limit: 413 at once, none of it read.
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/deploys")
        .header("authorization", &root)
        .header("content-type", "application/json")
        .header("content-length", "100000000")
        .body(Body::empty())
        .unwrap();
    let answer = server.router.clone().oneshot(request).await.unwrap();
    assert_eq!(answer.status(), 413);
    let rows = committed(&server, "/api/v1/deploys").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].entry.status, rows[0].entry.principal.as_str()),
        (413, "root")
    );

    // A body that never comes: 408, recorded as 408 under its caller.
    let never = futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>();
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/tokens")
        .header("authorization", &root)
        .header("content-type", "application/json")
        .body(Body::from_stream(never))
        .unwrap();
    let answer = server.router.clone().oneshot(request).await.unwrap();
    assert_eq!(answer.status(), 408);
    let text = body_text(answer).await;
    assert!(text.contains("did not arrive within"), "{text}");
    let rows = committed(&server, "/api/v1/tokens").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].entry.status, rows[0].entry.principal.as_str()),
        (408, "root")
    );
    assert_eq!(server.size().await, before, "a refused request wrote");
}

/// Only the body is timed, never the server's own work: with a request timeout of zero, a
/// whole body is still read, the change is made, and the client is told it was made (a
/// timeout around the handler would cancel it between its write and its answer, and say
/// 408 about a change that happened).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_answered_as_made_however_long_it_takes() {
    let mut settings = configured("90d", 60, 100);
    settings.request_timeout = std::time::Duration::ZERO;
    let server = TestServer::start_with(Backend::Sqlite, settings).await;
    let root = format!("Bearer {}", server.token("root"));
    let before = server.size().await;
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/tokens")
        .header("authorization", &root)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"principal":"argo","expires":"30d"}"#))
        .unwrap();
    let answer = server.router.clone().oneshot(request).await.unwrap();
    let status = answer.status();
    let text = body_text(answer).await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(
        server.size().await,
        before + 1,
        "the token made is in the ledger"
    );
    let rows = committed(&server, "/api/v1/tokens").await;
    assert_eq!(
        rows.iter()
            .map(|r| (r.entry.status, r.entry.principal.as_str()))
            .collect::<Vec<_>>(),
        [(201, "root")]
    );
}

async fn body_text(answer: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A credential sent where an id goes (a leaked token pasted into `token revoke`, an ID
/// token in a link) is never written into the access log, however it is spelt: in any
/// case, inside a longer segment, percent-encoded, without its prefix. Digests and key ids,
/// which paths name, are kept as they came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_in_a_path_is_not_written_to_the_access_log() {
    let server = TestServer::start(Backend::Sqlite).await;
    let argo = server.token("argo").to_owned();
    let secret = argo.rsplit('_').next().unwrap().to_owned();
    let id = argo.split('_').nth(1).unwrap().to_owned();
    let jwt_signature = "c2lnbmF0dXJlc2VjcmV0c2lnbmF0dXJlc2VjcmV0c2lnbmF0dXJl";
    let jwt = format!("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvc2hvcCJ9.{jwt_signature}");
    let encoded: String = argo.bytes().map(|b| format!("%{b:02X}")).collect();
    let paths = [
        format!("/api/v1/tokens/{argo}/revoke"),
        format!("/api/v1/decisions/{argo}"),
        format!("/api/v1/decisions/{}", argo.to_uppercase()),
        format!("/api/v1/decisions/x-{argo}"),
        format!("/api/v1/decisions/a;{argo}"),
        format!("/api/v1/decisions/{}", argo.replacen('_', "%5F", 2)),
        format!("/api/v1/decisions/{encoded}"),
        format!("/api/v1/decisions/{}", argo.trim_start_matches("cst_")),
        format!("/api/v1/decisions/{jwt}"),
        format!("/api/v1/decisions/x.{jwt}"),
        format!("/api/v1/decisions/token={}", jwt.replace('.', "%2E")),
        format!("/api/v1/decisions/Bearer%20%65{}", &jwt[1..]),
        format!("/promotions/x-{argo}/review"),
    ];
    for path in &paths {
        let method = if path.ends_with("revoke") || path.ends_with("review") {
            "POST"
        } else {
            "GET"
        };
        let answer = server
            .call(method, path, Some(server.token("root")), None, &[])
            .await;
        assert!(
            !answer.status.is_success() && !answer.status.is_server_error(),
            "{path}: {}",
            answer.status
        );
    }
    // What paths name is kept: a digest, and a key id as a whole segment.
    let digest = format!("sha256:{}", "ab".repeat(32));
    let key = "cd".repeat(32);
    for path in [format!("/artifacts/{digest}"), format!("/keys/{key}")] {
        server
            .call("GET", &path, Some(server.token("root")), None, &[])
            .await;
    }
    let log = server.access_log().await;
    let text = format!("{log:?}").to_lowercase();
    for (secret, what) in [
        (secret.as_str(), "a token's secret"),
        (&secret[..16], "part of a token's secret"),
        (&jwt_signature.to_lowercase(), "a JWT"),
    ] {
        assert!(!text.contains(secret), "{what} was logged: {text}");
    }
    let kept: Vec<&str> = log.iter().map(|r| r.entry.path.as_str()).collect();
    for path in [
        format!("/api/v1/tokens/cst_{id}_…/revoke"),
        format!("/api/v1/decisions/{id}_…"),
        "/api/v1/decisions/x.[a JWT, withheld]".to_owned(),
        format!("/artifacts/{digest}"),
        format!("/keys/{key}"),
    ] {
        assert!(kept.contains(&path.as_str()), "{path}: {kept:#?}");
    }
}

/// An address's anonymous requests in flight are bounded, and a made-up credential does
/// not lift the bound where no credential is checked (the ledger's public face, signing
/// in): a request there is anonymous whatever it shows. A request whose credential the
/// route checks is not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_in_flight_are_bounded_whatever_they_claim() {
    let mut settings = configured("90d", 60, 100);
    settings.anonymous_in_flight_per_client = 2;
    settings.request_timeout = std::time::Duration::from_secs(600);
    let server = TestServer::start_with(Backend::Sqlite, settings).await;
    // A POST from `peer` whose body never comes; the receiver hears when the handler starts reading
    // it (so the request is past the door and holds its slot).
    let send = |peer: SocketAddr, path: &str, header: Option<(&str, &str)>| {
        let (reading, read) = tokio::sync::oneshot::channel::<()>();
        let mut reading = Some(reading);
        let never = futures_util::stream::poll_fn(move |_| {
            if let Some(r) = reading.take() {
                let _ = r.send(());
            }
            std::task::Poll::<Option<Result<Vec<u8>, std::io::Error>>>::Pending
        });
        let kind = if path.starts_with("/api/") {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        let mut request = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", kind);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let mut request = request.body(Body::from_stream(never)).unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = server.router.clone();
        let answer =
            tokio::spawn(async move { router.oneshot(request).await.unwrap().status().as_u16() });
        (answer, read)
    };
    let guard = std::time::Duration::from_secs(60);
    let fake_cookie = ("cookie", "custody_session=00112233445566778899aabbccddeeff");
    let fake_bearer = ("authorization", "Bearer cst_tok0000000000000000_made-up");
    // Each from an address of its own (a request given up on by its client still runs
    // to its end, holding its slot until its body's deadline).
    for (n, (path, header)) in [
        ("/api/v1/log/cosignature", Some(fake_bearer)),
        ("/login", Some(fake_cookie)),
        ("/login", None),
    ]
    .into_iter()
    .enumerate()
    {
        let peer: SocketAddr = format!("10.0.1.{n}:4000").parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..2 {
            let (answer, read) = send(peer, path, header);
            if tokio::time::timeout(guard, read).await.unwrap().is_err() {
                let status = answer.await.unwrap();
                panic!("{path} {header:?}: answered {status} without reading its body");
            }
            held.push(answer);
        }
        let (third, _) = send(peer, path, header);
        let third = tokio::time::timeout(guard, third).await.unwrap().unwrap();
        assert_eq!(third, 429, "{path} {header:?}");
        // A checked credential is not anonymous: the gate answers beside them.
        assert_eq!(
            get_from(
                &server,
                &format!("10.0.1.{n}:4001"),
                "/api/v1/verify?env=production&digest=sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                Some(server.token("argo"))
            )
            .await,
            403
        );
        for h in held {
            h.abort();
        }
    }
}
