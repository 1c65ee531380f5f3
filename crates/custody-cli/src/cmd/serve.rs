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
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let dir = args.instance.dir();
        let url = args.instance.database_url.as_deref();
        let app = if dir.is_empty() {
            let instance = create_instance(&dir, url, None).await?;
            eprintln!(
                "created the custody instance {} (log key {}, policy {} in force)",
                dir.root().display(),
                dir.log_key_path().display(),
                instance.policy.digest
            );
            instance.app
        } else {
            dir.open_app(url).await?
        };
        let config = dir.config()?;
        let listen = args.listen.unwrap_or(config.server.listen.clone());
        let oidc = custody_server::oidc::Oidc::load(&config.oidc, dir.root())
            .await
            .map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let addr = listener.local_addr()?;
        print_line(&format!("custody listening on http://{addr}"));
        let state = ServerState::new(app, oidc, config.alerts.clone());
        custody_server::serve(listener, state.clone(), shutdown()).await?;
        // In-flight requests are done; finish queued appends and close the ledger.
        if let Ok(state) = Arc::try_unwrap(state) {
            state.app.into_store().close().await;
        }
        eprintln!("custody stopped");
        Ok(Outcome::Ok)
    })
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
