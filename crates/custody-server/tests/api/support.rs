//! An instance of the server in this process: a real store (a SQLite file, or a fresh
//! database on the test PostgreSQL server), the App, the router; requests go through
//! `Router::oneshot`, no port, no binary.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use custody_app::{App, Clock as _, CreateToken, FixedClock};
use custody_crypto::note::NoteSigner;
use custody_crypto::{Algorithm, PrivateKey, Signer as _};
use custody_model::Timestamp;
use custody_server::{ServerState, alerting::Alerts, oidc::Oidc};
use custody_store::{Location, SqlStore};
use serde_json::Value;
use tower::ServiceExt as _;

/// Everyone the test policy names, and `nobody`, who holds no role.
pub(crate) const PRINCIPALS: [&str; 12] = [
    "root", "bob", "sam", "alice", "sec", "sue", "argo", "audrey", "vic", "amy", "stella", "nobody",
];

/// Where the test's store lives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A server in this process.
pub(crate) struct TestServer {
    pub(crate) state: Arc<ServerState>,
    pub(crate) router: axum::Router,
    pub(crate) clock: Arc<FixedClock>,
    /// principal → API token.
    pub(crate) tokens: BTreeMap<&'static str, String>,
    pub(crate) builder: PrivateKey,
    pub(crate) release_key: PrivateKey,
    /// Where the store is, and the log key (a replica opens the same store with it).
    pub(crate) location: Location,
    /// The log key, PKCS#8 PEM.
    log_key: String,
    _dir: tempfile::TempDir,
}

/// An answer: its status and its body as JSON (or as a JSON string if it is not JSON).
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    pub(crate) headers: axum::http::HeaderMap,
}

impl Answer {
    /// The `error` message of a JSON error body ("" if none).
    pub(crate) fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
}

pub(crate) fn now() -> Timestamp {
    "2026-11-10T10:00:00Z".parse().unwrap()
}

fn location(dir: &std::path::Path, backend: Backend) -> Location {
    match backend {
        Backend::Sqlite => Location::Sqlite(dir.join("custody.db")),
        Backend::Postgres => Location::Postgres(fresh_postgres_database()),
    }
}

/// A new database on the test PostgreSQL server.
pub(crate) fn fresh_postgres_database() -> String {
    use sqlx::Connection as _;
    let admin = std::env::var("CUSTODY_TEST_DATABASE_URL").expect(
        "CUSTODY_TEST_DATABASE_URL is not set: the PostgreSQL tests need a server. \
         Run scripts/test.sh (it starts one), or export the URL scripts/test-postgres.sh prints",
    );
    let name = format!(
        "custody_test_api_{}",
        custody_app::new_id("db").replace('-', "_")
    );
    std::thread::spawn({
        let name = name.clone();
        let admin = admin.clone();
        move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
                    sqlx::query(&format!("CREATE DATABASE {name}"))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                });
        }
    })
    .join()
    .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

impl TestServer {
    /// A fresh instance under the test policy, with a token for every principal.
    pub(crate) async fn start(backend: Backend) -> TestServer {
        TestServer::start_with(backend, custody_server::Settings::default()).await
    }

    /// [`TestServer::start`] with `settings` (config.toml's `[server]` and `[access_log]`).
    pub(crate) async fn start_with(
        backend: Backend,
        settings: custody_server::Settings,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let log_key = PrivateKey::generate(Algorithm::Ed25519)
            .to_pkcs8_pem()
            .unwrap();
        let log = NoteSigner::new("test.custody/log", Box::new(copy(&log_key))).unwrap();
        let location = location(dir.path(), backend);
        let store = SqlStore::create(&location, log, now()).await.unwrap();
        let app = App::new(store, Box::new(PrivateKey::generate(Algorithm::Ed25519)));
        let (builder, release_key) = (
            PrivateKey::generate(Algorithm::Ed25519),
            PrivateKey::generate(Algorithm::EcdsaP256),
        );
        let mut files = BTreeMap::new();
        files.insert(
            "custody.toml".into(),
            include_str!("policy.toml").to_owned(),
        );
        files.insert("keys/builder.pub".into(), builder.public_key().to_pem());
        files.insert("keys/release.pub".into(), release_key.public_key().to_pem());
        let sec = custody_app::Actor::new("sec", now())
            .unwrap()
            .authenticated_by(custody_model::Authentication::Local { user: "ops".into() });
        app.apply_policy(&sec, &custody_app::ApplyPolicy { files })
            .await
            .unwrap();
        let mut tokens = BTreeMap::new();
        for p in PRINCIPALS {
            let request = CreateToken {
                principal: p.into(),
                expires: "30d".into(),
                description: "api test".into(),
            };
            // Each makes their own token, signed in with their identity provider: a token
            // of their own (an approval made with it is theirs).
            let me = custody_app::Actor::new(p, now()).unwrap().authenticated_by(
                custody_model::Authentication::Oidc {
                    issuer: "https://idp.example".into(),
                    subject: p.into(),
                },
            );
            let (_, token) = app.create_token(&me, &request, None).await.unwrap();
            tokens.insert(p, token.unwrap());
        }
        let clock = Arc::new(FixedClock::at(now()));
        let state = ServerState::with_clock(
            app,
            Oidc::default(),
            Alerts::default(),
            settings,
            clock.clone(),
        );
        TestServer {
            router: custody_server::router(state.clone()),
            state,
            clock,
            tokens,
            builder,
            release_key,
            location,
            log_key,
            _dir: dir,
        }
    }

    /// A second server on the same store (PostgreSQL: another replica behind the load
    /// balancer), with its background tasks running, as `custody serve` runs them.
    pub(crate) async fn replica(&self) -> (TestServer, Vec<tokio::task::JoinHandle<()>>) {
        let log = NoteSigner::new("test.custody/log", Box::new(copy(&self.log_key))).unwrap();
        let store = SqlStore::open(&self.location, log).await.unwrap();
        let app = App::new(store, Box::new(PrivateKey::generate(Algorithm::Ed25519)));
        let clock = Arc::new(FixedClock::at(self.clock.now()));
        let state = ServerState::with_clock(
            app,
            Oidc::default(),
            Alerts::default(),
            custody_server::Settings::default(),
            clock.clone(),
        );
        let tasks = custody_server::spawn_background(&state);
        let replica = TestServer {
            router: custody_server::router(state.clone()),
            state,
            clock,
            tokens: self.tokens.clone(),
            builder: copy(&self.builder.to_pkcs8_pem().unwrap()),
            release_key: copy(&self.release_key.to_pkcs8_pem().unwrap()),
            location: self.location.clone(),
            log_key: self.log_key.clone(),
            _dir: tempfile::tempdir().unwrap(),
        };
        (replica, tasks)
    }

    /// `principal`'s token.
    pub(crate) fn token(&self, principal: &str) -> &str {
        &self.tokens[principal]
    }

    /// `method path` with an optional bearer token, JSON body and extra headers.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            body,
            headers,
        }
    }

    /// Signs `principal` in to the dashboard as a browser does (the sign-in page's CSRF
    /// cookie and field, then the form); the session's `Cookie` header.
    pub(crate) async fn sign_in(&self, principal: &str) -> String {
        let form = self.call("GET", "/login", None, None, &[]).await;
        let login_cookie = form.headers["set-cookie"].to_str().unwrap();
        let login_cookie = login_cookie.split(';').next().unwrap().to_owned();
        let page = form.body.as_str().unwrap();
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .replace(':', "%3A");
        let body = format!("token={}&csrf={csrf}", self.token(principal));
        let request = Request::builder()
            .method("POST")
            .uri("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", login_cookie)
            .body(Body::from(body))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        assert!(response.status().is_redirection(), "{}", response.status());
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|c| c.starts_with("custody_session="))
            .unwrap();
        cookie.split(';').next().unwrap().to_owned()
    }

    /// `answer`, which must be a success.
    pub(crate) fn ok(answer: Answer) -> Answer {
        assert!(
            answer.status.is_success(),
            "{} {}",
            answer.status,
            answer.body
        );
        answer
    }

    /// `POST path` with `body` as `principal`.
    pub(crate) async fn post(&self, principal: &str, path: &str, body: &Value) -> Answer {
        self.call(
            "POST",
            path,
            Some(self.token(principal)),
            Some(&body.to_string()),
            &[],
        )
        .await
    }

    /// The artifact `shop` of `digest`, built from `commit` by the test builder, which signs
    /// its provenance.
    pub(crate) fn signed_artifact(
        &self,
        digest: &custody_model::Digest,
        commit: &str,
    ) -> custody_app::RegisterArtifact {
        let build = custody_app::attestations::BuildFields {
            builder_id: "https://ci.example/builder/v1".into(),
            source_repo: "https://git.example/acme/shop".into(),
            source_commit: commit.into(),
            parameters: Default::default(),
            environment: Default::default(),
            started: None,
            finished: None,
            nondeterministic_steps: Vec::new(),
            invocation_id: None,
        };
        custody_app::RegisterArtifact::signed_by(&self.builder, "shop", digest.clone(), None, build)
            .unwrap()
    }

    /// The release `shop@VERSION` of the artifact `digest`, its manifest signed by sam
    /// with the test release key.
    pub(crate) fn signed_release(
        &self,
        version: &str,
        digest: &custody_model::Digest,
    ) -> custody_app::RecordRelease {
        custody_app::RecordRelease::signed(
            "shop",
            version,
            &[custody_app::attestations::ManifestArtifact {
                name: "shop".into(),
                digest: digest.clone(),
            }],
            "sam",
            now(),
            Some(&self.release_key),
        )
        .unwrap()
    }

    /// Release `shop@VERSION` of the artifact `digest` (registered by bob, built by the
    /// test builder, signed by sam), certified in build.
    pub(crate) async fn release_in_build(&self, version: &str, digest: &custody_model::Digest) {
        let artifact = self.signed_artifact(digest, &format!("c-{version}"));
        let artifact = serde_json::to_value(&artifact).unwrap();
        Self::ok(self.post("bob", "/api/v1/artifacts", &artifact).await);
        let manifest = self.signed_release(version, digest);
        let manifest = serde_json::to_value(&manifest).unwrap();
        Self::ok(self.post("sam", "/api/v1/releases", &manifest).await);
        let to_build =
            serde_json::json!({"release": format!("shop@{version}"), "environment": "build"});
        let built = Self::ok(self.post("sam", "/api/v1/promotions", &to_build).await);
        assert_eq!(
            built.body["promotion"]["status"], "certified",
            "{}",
            built.body
        );
    }

    /// `shop@VERSION` (see [`TestServer::release_in_build`]) requested into production by
    /// sam, waiting for an approver: the promotion's id.
    pub(crate) async fn waiting_in_production(
        &self,
        version: &str,
        digest: &custody_model::Digest,
    ) -> String {
        self.release_in_build(version, digest).await;
        let to_production =
            serde_json::json!({"release": format!("shop@{version}"), "environment": "production"});
        let asked = self.post("sam", "/api/v1/promotions", &to_production).await;
        assert_eq!(
            asked.body["promotion"]["status"], "pending",
            "{}",
            asked.body
        );
        asked.body["promotion"]["id"].as_str().unwrap().to_owned()
    }

    /// Appends `events` to the ledger as another custody process on the same database
    /// would (with the log key, behind this server's back).
    pub(crate) async fn append_elsewhere(&self, events: Vec<custody_model::CanonicalJson>) {
        use custody_store::Store as _;
        let log = NoteSigner::new("test.custody/log", Box::new(copy(&self.log_key))).unwrap();
        let store = SqlStore::open(&self.location, log).await.unwrap();
        for chunk in events.chunks(custody_store::MAX_EVENTS_PER_APPEND) {
            let append = custody_store::Append {
                events: chunk.to_vec(),
                ..custody_store::Append::default()
            };
            store.append(append).await.unwrap();
        }
        store.close().await;
    }

    /// The ledger's size now.
    pub(crate) async fn size(&self) -> u64 {
        self.state.app.log().size().await.unwrap()
    }

    /// The access log, every entry, once the queued ones are written.
    pub(crate) async fn access_log(&self) -> Vec<custody_store::AccessRecord> {
        self.state.sync_access_log().await;
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.state.app.log().access_log(after, 1000).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.id;
            out.extend(page);
        }
        out
    }
}

/// A private key from its PKCS#8 PEM (keys are not `Clone`, by design).
fn copy(pem: &str) -> PrivateKey {
    PrivateKey::from_pkcs8_pem(pem).unwrap()
}

/// `path` with its `{…}` segments filled: an id, an environment, a digest.
pub(crate) fn concrete(path: &str) -> String {
    path.replace("{id}", "none")
        .replace("{release}", "shop@0.0.0")
        .replace("{env}", "build")
        .replace("{digest}", &format!("sha256:{}", "a".repeat(64)))
}
