//! `custody serve`: the service, on the data directory (created on first run).

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use custody_server::ServerState;

use crate::Outcome;
use crate::cmd::init::create_instance;
use crate::context::InstanceArgs;
use crate::input::print_line;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// The address to listen on (default: config.toml's [server] listen, 127.0.0.1:8080;
    /// port 0 picks a free one).
    #[arg(long, env = "CUSTODY_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// How the server logs (to stderr): `text` for people, `json` for a log pipeline (one
    /// JSON object per line). The level comes from RUST_LOG (default: info).
    #[arg(long, env = "CUSTODY_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// How `custody serve` writes its log.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line.
    Json,
}

/// Sends the server's `tracing` events to stderr in `format`, at RUST_LOG's level (info).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (never in the binary) is harmless: the first one stays.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<Outcome> {
    init_logging(args.log_format);
    crate::block_on(async move {
        let dir = args.instance.dir();
        let url = args.instance.database_url.as_deref();
        let app = if dir.is_empty() {
            let instance = create_instance(&dir, url, None, Default::default()).await?;
            eprintln!(
                "created the custody instance {} (log key {}, policy {} in force)",
                dir.root().display(),
                dir.log_pub_path().display(),
                instance.policy.digest
            );
            instance.app
        } else {
            match dir.open_app(url).await {
                Ok(app) => app,
                Err(e) => return Err(refused_to_start(&dir, e).await),
            }
        };
        let config = dir.config()?;
        // Checked before listening, so that a mistake is told before anything starts.
        let settings = config
            .server
            .compile(&config.access_log)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.config_path().display()))?;
        let listen = args.listen.unwrap_or(config.server.listen.clone());
        let oidc = custody_server::oidc::Oidc::new(&config.oidc, dir.root())
            .map_err(anyhow::Error::msg)?;
        let sign_in = match &config.dashboard.sign_in {
            Some(c) => Some(
                custody_server::oidc::sign_in::SignIn::new(c, dir.root())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", dir.config_path().display()))?,
            ),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let addr = listener.local_addr()?;
        print_line(&format!("custody listening on http://{addr}"));
        let alerts = config.alerts.compile().map_err(anyhow::Error::msg)?;
        let witnesses = config.log.witnesses()?;
        let own_keys = dir.own_keys(&config, app.attestor_key())?;
        let state = ServerState::configured(app, oidc, alerts, settings);
        state.configure_witnesses(witnesses);
        state.configure_own_keys(own_keys);
        if let Some(sign_in) = sign_in {
            state.configure_sign_in(sign_in);
        }
        custody_server::serve(listener, state.clone(), shutdown()).await?;
        // In-flight requests are done; finish queued appends and close the ledger.
        if let Ok(state) = Arc::try_unwrap(state) {
            state.app.close().await;
        }
        eprintln!("custody stopped");
        Ok(Outcome::Ok)
    })
}

/// `e`, after telling the configured webhooks when it is the ledger's integrity that
/// keeps the server from starting (an exit code alone reaches nobody).
async fn refused_to_start(dir: &crate::datadir::DataDir, e: anyhow::Error) -> anyhow::Error {
    let integrity = e
        .downcast_ref::<custody_app::AppError>()
        .is_some_and(|e| e.fault() == custody_app::Fault::Integrity)
        || matches!(
            e.downcast_ref::<custody_store::StoreError>(),
            Some(custody_store::StoreError::Integrity(_))
        );
    if integrity {
        match dir.config().map(|c| c.alerts.compile()) {
            Ok(Ok(alerts)) => alerts.refused_to_start(&format!("{e:#}")).await,
            Ok(Err(why)) => eprintln!("warning: no alert was sent: {why}"),
            Err(why) => eprintln!("warning: no alert was sent: {why:#}"),
        }
    }
    e
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
