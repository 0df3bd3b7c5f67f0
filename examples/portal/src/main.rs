//! `keyward-sample-portal`: the sample procurement portal for a demo or by hand. It prints
//! where it listens and the SPKI hash a browser trusts its test certificate by, e.g.
//!
//! ```sh
//! keyward-sample-portal --roots fixtures/root.pem --intermediates fixtures/issuing.pem \
//!     --sdk sdk/dist --listen 127.0.0.1:8443
//! chromium --user-data-dir=$(mktemp -d) \
//!     --host-resolver-rules='MAP portal.test:443 127.0.0.1:8443' \
//!     --ignore-certificate-errors-spki-list=<spki> https://portal.test/
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "The sample procurement portal (test and demo only)")]
struct Args {
    /// The portal's origin, as browsers reach it.
    #[arg(long, default_value = "https://portal.test")]
    origin: String,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// PEM file of the CA roots whose certificates are accepted.
    #[arg(long)]
    roots: PathBuf,
    /// PEM file of intermediate CA certificates.
    #[arg(long)]
    intermediates: Option<PathBuf>,
    /// The bridge's address as the pages use it.
    #[arg(long, default_value = "ws://127.0.0.1:28231/")]
    bridge: String,
    /// The built portal SDK (sdk/dist).
    #[arg(long, default_value = "sdk/dist")]
    sdk: PathBuf,
    /// A host name served the hostile page instead (repeatable).
    #[arg(long = "hostile-host")]
    hostile_hosts: Vec<String>,
    /// Write the portal's test root CA here (PEM).
    #[arg(long)]
    write_root: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    };
    let config = keyward_sample_portal::PortalConfig {
        origin: args.origin,
        hostile_hosts: args.hostile_hosts,
        listen: args.listen,
        roots_pem: read(&args.roots)?,
        intermediates_pem: args
            .intermediates
            .as_ref()
            .map(read)
            .transpose()?
            .unwrap_or_default(),
        bridge_url: args.bridge,
        sdk_dir: args.sdk,
        clock: Arc::new(time::OffsetDateTime::now_utc),
    };
    let running = keyward_sample_portal::start(config).await?;
    if let Some(p) = &args.write_root {
        std::fs::write(p, &running.tls.root_pem)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    println!(
        "{}",
        serde_json::json!({
            "listening": running.addr.to_string(),
            "spki_sha256": running.tls.leaf_spki_sha256,
        })
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
