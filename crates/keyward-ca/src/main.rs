//! `keyward-ca`: the Keyward reference CA online service.

use clap::{Parser, Subcommand};
use keyward_ca::{Config, Server};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "keyward-ca",
    version,
    about = "The Keyward reference CA online service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the CA online service until interrupted.
    Serve {
        /// Database, CA hierarchy, escrow key and admin token live here.
        #[arg(long, env = "KEYWARD_CA_DATA_DIR", default_value = "keyward-ca-data")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, env = "KEYWARD_CA_LISTEN", default_value = "127.0.0.1:8750")]
        listen: SocketAddr,
        /// `sqlite://…` or `postgres://…`; default: SQLite in the data dir.
        #[arg(long, env = "KEYWARD_CA_DATABASE_URL")]
        database_url: Option<String>,
        /// Serve plain HTTP (required for now: TLS is not built yet).
        #[arg(long)]
        plain_http: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                data_dir,
                listen,
                database_url,
                plain_http,
            } => {
                if !plain_http {
                    anyhow::bail!("TLS is not available yet: run with --plain-http");
                }
                if !listen.ip().is_loopback() {
                    tracing::warn!(%listen, "plain HTTP on a non-loopback address");
                }
                let mut config = Config::new(data_dir);
                config.listen = listen;
                config.database_url = database_url;
                let handle = Server::start(config).await?;
                println!("keyward-ca listening on {}", handle.base_url());
                println!(
                    "admin token: {}",
                    handle.data_dir().join("admin.token").display()
                );
                shutdown_signal().await;
                tracing::info!("shutting down");
                handle.shutdown().await;
                Ok(())
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
