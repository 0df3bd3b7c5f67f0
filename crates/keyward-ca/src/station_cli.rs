//! The issuing station and admin tools on the command line: `keyward-ca issue` provisions a
//! blank key through PKCS#11 for an organisation, `keyward-ca sms` shows the SMS outbox (the
//! demo's stand-in for the handler's phone), and `keyward-ca login` keeps the admin token in
//! the OS keyring so the tools need no token file.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use keyward_ca_api::{Handler, Organisation, OrganisationKind, Secret};
use keyward_ca_client::{CaClient, ClientConfig, credentials};
use keyward_flows::station::{StationOrder, issue};
use keyward_pki::Pin;
use keyward_token::{KeySpec, Module};

/// Where the service is and how to reach its admin API.
#[derive(Args, Debug)]
pub struct AdminTarget {
    /// The service's address.
    #[arg(long, env = "KEYWARD_CA_URL", default_value = "https://localhost:8750")]
    pub url: String,
    /// The CA root to trust for https; default `<data dir>/ca/root.crt`.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// File holding the admin token; default: the OS keyring (see `login`), then
    /// `<data dir>/admin.token`.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    #[arg(long, env = "KEYWARD_CA_DATA_DIR", default_value = "keyward-ca-data")]
    pub data_dir: PathBuf,
}

/// What to issue.
#[derive(Args, Debug)]
pub struct IssueArgs {
    #[command(flatten)]
    pub target: AdminTarget,
    /// The PKCS#11 module that reaches the blank key.
    #[arg(long, env = "KEYWARD_PKCS11_MODULE")]
    pub module: PathBuf,
    /// The blank key's serial number.
    #[arg(long)]
    pub token: String,
    /// Read the key's factory SO PIN from this file descriptor (0: standard input).
    #[arg(long, default_value_t = 0)]
    pub factory_so_pin_fd: u32,
    /// Organisation name (单位名称).
    #[arg(long)]
    pub org_name: String,
    /// Unified social credit code.
    #[arg(long)]
    pub uscc: String,
    /// Legal address.
    #[arg(long)]
    pub address: String,
    /// Handler (经办人) name.
    #[arg(long)]
    pub handler_name: String,
    /// Handler's identity card number.
    #[arg(long)]
    pub id_number: String,
    /// Handler's mobile number; the activation SMS goes here.
    #[arg(long)]
    pub phone: String,
    /// Validity in years, 1 to 5.
    #[arg(long, default_value_t = 1)]
    pub years: u8,
    /// Key pair: `ec` (P-256) or `rsa` (2048).
    #[arg(long, default_value = "ec")]
    pub key: String,
}

impl AdminTarget {
    fn root_pem(&self) -> anyhow::Result<Option<String>> {
        if !self.url.starts_with("https:") {
            return Ok(None);
        }
        let root = self
            .root
            .clone()
            .unwrap_or_else(|| self.data_dir.join("ca").join("root.crt"));
        let pem = std::fs::read_to_string(&root)
            .with_context(|| format!("cannot read the CA root {}", root.display()))?;
        Ok(Some(pem))
    }

    /// The admin token: the file named, else the OS keyring, else `<data dir>/admin.token`.
    /// Which one was used is said on standard error; falling back to the file is a warning.
    fn token(&self) -> anyhow::Result<Secret> {
        if let Some(f) = &self.token_file {
            tracing::info!(file = %f.display(), "admin token from the file named");
            return read_token(f);
        }
        let fallback = self.data_dir.join("admin.token");
        credentials::use_os_keyring()?;
        match credentials::load_admin_token(&self.url) {
            Ok(Some(t)) => {
                tracing::info!(url = %self.url, "admin token from the OS keyring");
                return Ok(t);
            }
            Ok(None) => tracing::warn!(
                url = %self.url,
                file = %fallback.display(),
                "no admin token in the OS keyring (`keyward-ca login` stores one); using the token file"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                file = %fallback.display(),
                "OS keyring unavailable; using the token file"
            ),
        }
        read_token(&fallback)
    }

    /// A client with the admin credential.
    pub fn client(&self) -> anyhow::Result<CaClient> {
        Ok(
            CaClient::new(&ClientConfig::new(self.url.clone(), self.root_pem()?))?
                .with_admin(self.token()?),
        )
    }
}

fn read_token(path: &Path) -> anyhow::Result<Secret> {
    let t = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the admin token {}", path.display()))?;
    Ok(Secret::new(t.trim()))
}

/// `keyward-ca login`: stores the admin token of the service at `url` in the OS keyring.
pub fn login(target: &AdminTarget) -> anyhow::Result<()> {
    let path = target
        .token_file
        .clone()
        .unwrap_or_else(|| target.data_dir.join("admin.token"));
    let token = read_token(&path)?;
    credentials::use_os_keyring()?;
    credentials::save_admin_token(&target.url, &token)?;
    println!("admin token for {} stored in the OS keyring", target.url);
    Ok(())
}

/// `keyward-ca sms`: the SMS outbox, newest last.
pub fn sms(target: &AdminTarget, json: bool) -> anyhow::Result<()> {
    let outbox = target.client()?.sms_outbox()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&outbox)?);
        return Ok(());
    }
    for m in outbox.messages {
        println!(
            "{} {} {} {}",
            m.created_at,
            keyward_ca_api::ids::mask_mobile(&m.phone),
            m.key_serial.unwrap_or_default(),
            m.text
        );
    }
    Ok(())
}

fn read_pin(fd: u32) -> anyhow::Result<Pin> {
    let path = if fd == 0 {
        PathBuf::from("/dev/stdin")
    } else {
        Path::new("/dev/fd").join(fd.to_string())
    };
    let file =
        std::fs::File::open(&path).with_context(|| format!("cannot read descriptor {fd}"))?;
    let mut line = Vec::new();
    std::io::BufReader::new(file).read_until(b'\n', &mut line)?;
    Pin::from_line(line).context("the factory SO PIN must be UTF-8 text")
}

/// `keyward-ca issue`: provisions the blank key for the organisation.
pub fn issue_key(a: IssueArgs) -> anyhow::Result<()> {
    let spec = match a.key.as_str() {
        "ec" => KeySpec::EcP256,
        "rsa" => KeySpec::Rsa2048,
        other => bail!("unknown key type {other:?}: ec or rsa"),
    };
    let factory = read_pin(a.factory_so_pin_fd)?;
    let client = a.target.client()?;
    let module = Module::open(&a.module)?;
    let token = module.find(Some(&a.token))?;
    let order = StationOrder {
        organisation: Organisation {
            name: a.org_name,
            uscc: a.uscc,
            kind: OrganisationKind::Enterprise,
            legal_address: a.address,
        },
        handler: Handler {
            name: a.handler_name,
            id_number: a.id_number,
            phone: a.phone,
        },
        years: a.years,
        spec,
    };
    let mut on = |p: keyward_flows::Progress| eprintln!("[{}/{}] {:?}", p.index, p.total, p.step);
    let registered =
        issue(&client, &module, &token, &factory, &order, Some(&mut on)).map_err(|e| {
            anyhow::anyhow!(
                "{}",
                keyward_flows::user_error(&e, keyward_pki::Lang::En).message
            )
        })?;
    println!("{}", serde_json::to_string_pretty(&registered)?);
    Ok(())
}
