//! The reference CA service in the test process: sandbox mode (SMS outbox, sandbox
//! payments), TLS under its own root on a loopback port, its data in a folder of its own.

use std::path::PathBuf;

use keyward_ca::{Config, Server, ServerHandle};
use keyward_ca_api::Secret;
use keyward_flows::connect::{CaClient, CaSettings, RootSource, connect};

/// A running CA service.
pub struct Ca {
    pub server: ServerHandle,
    /// A staff client (the admin token): the station, the reviewer, the SMS outbox.
    pub admin: CaClient,
    runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

impl Ca {
    /// The service on its sandbox defaults.
    pub fn start() -> Ca {
        Ca::start_with(|_| {})
    }

    /// The service with `tweak` applied to its sandbox configuration first.
    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> Ca {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = Config::sandbox(dir.path().join("ca"));
        tweak(&mut config);
        let server = runtime.block_on(Server::start(config)).unwrap();
        std::fs::write(dir.path().join("root.pem"), server.root_pem()).unwrap();
        let admin = connect(&CaSettings::new(
            server.base_url(),
            Some(RootSource::Pem(server.root_pem().to_owned())),
        ))
        .unwrap()
        .with_admin(Secret::new(server.admin_token()));
        Ca {
            server,
            admin,
            runtime,
            dir,
        }
    }

    /// The service's data directory (its keys, database and `forms/`).
    #[allow(dead_code)]
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    /// The service's address (`https://127.0.0.1:…`).
    pub fn url(&self) -> String {
        self.server.base_url()
    }

    /// Its root certificate, PEM.
    pub fn root_pem(&self) -> &str {
        self.server.root_pem()
    }

    /// A file holding its root, as an operator is handed it (`--ca-root`, `KEYWARD_CA_ROOT`).
    pub fn root_file(&self) -> PathBuf {
        self.dir.path().join("root.pem")
    }

    /// The CA client's settings as a front end makes them: this address, this root pinned.
    pub fn settings(&self) -> CaSettings {
        CaSettings::new(self.url(), Some(RootSource::File(self.root_file())))
    }

    /// The tokio runtime the service runs on (for tests that start more beside it).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// Moves the CA's clock by `by` (back, when negative).
    pub fn advance(&self, by: time::Duration) {
        self.server.clock().advance(by);
    }

    /// Moves the CA's clock by `days` (back, when negative).
    pub fn advance_days(&self, days: i64) {
        self.server.clock().advance(time::Duration::days(days));
    }

    /// The newest SMS code sent about the key `serial`, read from the sandbox outbox.
    pub fn sms_code(&self, serial: &str) -> String {
        let outbox = self.admin.sms_outbox().unwrap();
        let msg = outbox
            .messages
            .iter()
            .filter(|m| m.key_serial.as_deref() == Some(serial) && m.text.contains("编号"))
            .max_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)))
            .expect("an SMS with a code for the key");
        let after = msg.text.split("验证码").nth(1).expect("a code in the SMS");
        after
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect()
    }
}
