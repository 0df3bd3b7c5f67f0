//! CA throughput: the reference CA (`keyward-ca`, in this process, TLS on loopback; SQLite,
//! then PostgreSQL on a throw-away cluster when its binaries are installed) under a fixed number
//! of concurrent clients (`KEYWARD_BENCH_CA_CLIENTS`, default 32), each a `keyward-ca-client`
//! as the desktop client uses it, with software P-256 keys standing in for USB keys.
//!
//! Phases, each over `KEYWARD_BENCH_CA_KEYS` keys (default 1000), each at most 60 s:
//! - `issue`: the issuing station certifies a CSR and registers the key (two admin calls);
//! - `activate`: the operator redeems the SMS code and confirms with a signature;
//! - `renew`: apply (signed), pay in the sandbox, submit the new key's CSR (issuance, signed
//!   by the old key), confirm installed (signed by the new key);
//! - `progress`: four progress queries per key.
//!
//! Each phase begins with a warm-up (`KEYWARD_BENCH_CA_WARMUP` operations, default two per
//! client, on keys of their own) from another set of clients, not counted: a service that has
//! just started pays once for what a running one has (the database's first pages and plans,
//! the runtime's first allocations), and a phase would otherwise count that in its slowest
//! operations. The measured clients are fresh: each opens its connections in its first
//! operation, as a desktop does. Each measured operation is one latency sample; ops per
//! second is operations over the phase's wall time. The server's runtime has two worker
//! threads; the clients share the same two cores.
//!
//! Then the same on three instances of the service on one PostgreSQL database (`postgresql3`),
//! sharing one secrets directory made by the offline root, in the same runtime (so on the
//! same two cores): each operation goes to the next instance in turn.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keyward_bench::latency::Samples;
use keyward_ca::{Config, Server};
use keyward_ca_api::{
    CertifyRequest, Handler, InvoiceDetails, Organisation, OrganisationKind, PaymentStatus,
    RegisterKeyRequest, RenewalApplication, Secret,
};
use keyward_ca_client::{BusinessAuth, CaClient, ClientConfig, RequestSigner};
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, SigningKey};
use serde_json::json;

/// A software key standing in for a USB key.
struct SoftKey {
    serial: String,
    key: KeyPair,
}

impl RequestSigner for SoftKey {
    fn key_serial(&self) -> &str {
        &self.serial
    }
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.key.sign(input)?)
    }
}

fn csr(key: &KeyPair) -> Result<String> {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "token request");
    Ok(p.serialize_request(key)?.pem()?)
}

fn organisation(n: usize) -> Result<Organisation> {
    Ok(Organisation {
        name: format!("广州市压测示例第{n}有限公司"),
        uscc: keyward_pki::uscc::with_check_character(&format!("91440101MA5E{n:05}"))
            .context("credit code")?,
        kind: OrganisationKind::Enterprise,
        legal_address: "广州市天河区示例路 1 号".into(),
    })
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `op` over `warm_up` with clients `clients..2 * clients`, not counted, then over
/// `items` with clients `0..clients`, one sample per operation.
fn phase<T: Sync>(
    name: &str,
    db: &str,
    (warm_up, items): (&[T], &[T]),
    clients: usize,
    op: impl Fn(usize, &T) -> Result<()> + Sync,
) -> Result<()> {
    let warm = run_clients(warm_up, clients, clients, &op);
    if let Some(e) = warm.failure {
        bail!("{name} failed in its warm-up: {e}");
    }
    let start = Instant::now();
    let run = run_clients(items, 0, clients, &op);
    let wall = start.elapsed();
    if let Some(e) = run.failure {
        bail!("{name} failed: {e}");
    }
    let samples = run.samples;
    let ops = samples.len();
    let per_s = ops as f64 / wall.as_secs_f64();
    eprintln!(
        "ca-{name}-{db}: {ops} ops in {:.2} s = {per_s:.1}/s (after {} to warm up)",
        wall.as_secs_f64(),
        warm.samples.len()
    );
    samples.write(
        &format!("ca-{name}-{db}"),
        &format!("CA {name} on {db}, {clients} concurrent clients"),
        json!({
            "ops": ops,
            "wall_s": wall.as_secs_f64(),
            "ops_per_s": per_s,
            "clients": clients,
            "database": db,
            "keys": items.len(),
            "warm_up": warm.samples.len(),
            "warm_up_p99_ns": warm.samples.percentile(99.0),
        }),
    )
}

/// What a set of clients did: a sample per operation, and the first failure.
struct Run {
    samples: Samples,
    failure: Option<String>,
}

/// `clients` threads, worker numbers from `first`, taking `items` in turn until none is left
/// (or a minute has passed); a worker stops at its first failure.
fn run_clients<T: Sync>(
    items: &[T],
    first: usize,
    clients: usize,
    op: &(impl Fn(usize, &T) -> Result<()> + Sync),
) -> Run {
    let next = AtomicUsize::new(0);
    let samples = Mutex::new(Samples::new());
    let failure = Mutex::new(None::<String>);
    let deadline = Instant::now() + Duration::from_secs(60);
    std::thread::scope(|s| {
        for worker in first..first + clients {
            let (next, samples, failure) = (&next, &samples, &failure);
            s.spawn(move || {
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let t0 = Instant::now();
                    match op(worker, item) {
                        Ok(()) => {
                            let d = t0.elapsed();
                            if let Ok(mut s) = samples.lock() {
                                s.push(d);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(format!("{e:#}"));
                            }
                            break;
                        }
                    }
                }
            });
        }
    });
    Run {
        samples: samples.into_inner().unwrap_or_default(),
        failure: failure.into_inner().ok().flatten(),
    }
}

fn run(
    db: &str,
    database_url: Option<String>,
    instances: usize,
    (keys, warm_up): (usize, usize),
    clients: usize,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Several instances share a secrets directory certified by an offline root.
    let secrets = dir.path().join("secrets");
    if instances > 1 {
        let now = time::OffsetDateTime::now_utc();
        let root = dir.path().join("root");
        keyward_ca::offline::init_root(&root, 30, now)?;
        keyward_ca::offline::issue_issuing_ca(&root, &secrets, 20, false, now)?;
        keyward_ca::offline::init_secrets(
            &secrets,
            keyward_ca::offline::SecretsInit {
                admin_token: true,
                sandbox_payments: true,
            },
        )?;
    }
    let clock = keyward_ca::Clock::system();
    let mut servers = Vec::new();
    for n in 0..instances.max(1) {
        // Sandbox payments and SMS. Every client of the benchmark comes from one loopback
        // address, so the request rates per address are set (as the trust rules allow: no
        // rule rests on them) to the loopback figures, far above what the run sends; the
        // daily caps and single-use rules in the database are the service's own.
        let mut config = Config::sandbox(dir.path().join(format!("ca{n}")));
        config.rate_limit = keyward_ca::RateLimit::LOOPBACK_TESTS;
        config.database_url = database_url.clone();
        config.clock = clock.clone();
        if instances > 1 {
            config.secrets_dir = Some(secrets.clone());
        }
        servers.push(runtime.block_on(Server::start(config))?);
    }
    let server = &servers[0];
    let connect = |s: &keyward_ca::ServerHandle| {
        CaClient::new(&ClientConfig::new(
            s.base_url(),
            Some(s.root_pem().to_owned()),
        ))
    };
    // Each concurrent client is a client of its own, as each operator's desktop is: its own
    // connections (kept alive between requests) to every instance. The second half warm up.
    let workers: Vec<Vec<CaClient>> = (0..2 * clients)
        .map(|_| servers.iter().map(connect).collect::<Result<_, _>>())
        .collect::<Result<_, _>>()?;
    let admins: Vec<Vec<CaClient>> = workers
        .iter()
        .map(|w| {
            w.iter()
                .map(|c| c.clone().with_admin(Secret::new(server.admin_token())))
                .collect()
        })
        .collect();
    // Each operation on the next instance.
    let turn = AtomicUsize::new(0);
    let next = || turn.fetch_add(1, Ordering::Relaxed) % servers.len();
    let client = &workers[0][0];
    let admin = &admins[0][0];
    let handler = Handler {
        name: "张经办".into(),
        id_number: "11010519491231002X".into(),
        phone: "13800138000".into(),
    };

    // Keys and CSRs are made before the clock starts: they are the client's work.
    // The last `warm_up` keys are the warm-up's.
    let mut orders = Vec::with_capacity(keys + warm_up);
    for n in 0..keys + warm_up {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let csr_pem = csr(&key)?;
        let serial = format!("KWB{n:08}");
        orders.push((SoftKey { serial, key }, csr_pem, organisation(n + 1)?));
    }
    phase(
        "issue",
        db,
        split(&orders, keys),
        clients,
        |w, (k, csr_pem, org)| {
            let admin = &admins[w][next()];
            let issued = admin.certify(&CertifyRequest {
                organisation: org.clone(),
                csr_pem: csr_pem.clone(),
                years: 1,
                keep_validity_of: None,
            })?;
            admin.register_key(&RegisterKeyRequest {
                key_serial: k.serial.clone(),
                organisation: org.clone(),
                handler: handler.clone(),
                certificate_pem: issued.certificate_pem,
                so_pin: Secret::new("SoPin-Bench-0001"),
                transport_pin: Secret::new("Transport-7788"),
            })?;
            Ok(())
        },
    )?;

    // A code asked for each key (its ticket kept), then the codes read from the outbox once.
    let mut tickets = std::collections::HashMap::new();
    for (k, _, _) in &orders {
        let sent = client.send_activation_code(&k.serial)?;
        tickets.insert(
            k.serial.clone(),
            sent.ticket.context("a code answer without its ticket")?,
        );
    }
    let outbox = admin.sms_outbox()?;
    let code_of = |serial: &str| -> Option<String> {
        let text = &outbox
            .messages
            .iter()
            .filter(|m| m.key_serial.as_deref() == Some(serial) && m.text.contains("编号"))
            .max_by_key(|m| m.created_at)?
            .text;
        let after = text.split("验证码").nth(1)?;
        Some(
            after
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect(),
        )
    };
    let activations: Vec<(&SoftKey, String)> = orders
        .iter()
        .map(|(k, _, _)| {
            code_of(&k.serial)
                .map(|c| (k, c))
                .with_context(|| format!("no SMS code for {}", k.serial))
        })
        .collect::<Result<_>>()?;
    phase(
        "activate",
        db,
        split(&activations, keys),
        clients,
        |w, (k, code)| {
            let client = &workers[w][next()];
            let ticket = tickets.get(&k.serial).context("no ticket")?;
            client.redeem_activation_code(&k.serial, code, ticket)?;
            client.confirm_activation(*k)?;
            Ok(())
        },
    )?;

    // Into the renewal window: 30 days before the one-year certificates expire. An operator
    // renews from a later session of the desktop, a client of its own: what the activation's
    // client kept (its next nonces) is not carried across the year.
    server.clock().advance(time::Duration::days(335));
    let workers: Vec<Vec<CaClient>> = (0..2 * clients)
        .map(|_| servers.iter().map(connect).collect::<Result<_, _>>())
        .collect::<Result<_, _>>()?;
    let mut renewals = Vec::with_capacity(keys + warm_up);
    for (k, _, org) in &orders {
        let new_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let new_csr = csr(&new_key)?;
        renewals.push((
            k,
            SoftKey {
                serial: k.serial.clone(),
                key: new_key,
            },
            new_csr,
            org,
        ));
    }
    let profile = Profile::start(db)?;
    phase(
        "renew",
        db,
        split(&renewals, keys),
        clients,
        |w, (old, new, new_csr, org)| {
            let client = &workers[w][next()];
            let created = client.apply_renewal(
                &RenewalApplication {
                    years: 1,
                    invoice: InvoiceDetails {
                        title: org.name.clone(),
                        tax_id: org.uscc.clone(),
                        email: "finance@example.cn".into(),
                    },
                },
                *old,
            )?;
            let business = created.business;
            let payment = client.payment(&business.id, BusinessAuth::Secret(&created.secret))?;
            client.sandbox_pay(&payment.payment_id, PaymentStatus::Paid)?;
            client.submit_renewal_csr(&business.id, new_csr, *old)?;
            client.confirm_renewal_installed(&business.id, new)?;
            Ok(())
        },
    )?;

    drop(profile);

    // Progress is the key's to read: each query is signed by the renewed key.
    let queries: Vec<&SoftKey> = renewals
        .iter()
        .flat_map(|(_, new, _, _)| std::iter::repeat_n(new, 4))
        .collect();
    phase(
        "progress",
        db,
        split(&queries, 4 * keys),
        clients,
        |w, key| {
            let client = &workers[w][next()];
            let list = client.businesses(*key)?;
            if list.businesses.is_empty() {
                bail!("no business for {}", key.serial);
            }
            Ok(())
        },
    )?;
    drop(admins);
    drop(workers);
    for s in servers {
        runtime.block_on(s.shutdown());
    }
    Ok(())
}

/// `perf record` of the whole machine while it lives, when `KEYWARD_BENCH_CA_PERF` names
/// the file (`cargo xtask bench --flamegraph`), for the renewal phase on PostgreSQL.
struct Profile(Option<std::process::Child>);

impl Profile {
    fn start(db: &str) -> Result<Profile> {
        let Some(out) = std::env::var_os("KEYWARD_BENCH_CA_PERF") else {
            return Ok(Profile(None));
        };
        if db != "postgresql" {
            return Ok(Profile(None));
        }
        let child = Command::new("perf")
            .args([
                "record",
                "-a",
                "-F",
                "499",
                "--call-graph",
                "dwarf,16384",
                "-o",
            ])
            .arg(out)
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting perf (Debian package linux-perf)")?;
        // perf needs a moment before it samples.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Profile(Some(child)))
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// A throw-away PostgreSQL cluster on a loopback port (initdb and pg_ctl in a temp dir,
/// fsync off), stopped on drop.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres: bool,
    port: u16,
}

impl Cluster {
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        let out = self.command(tool).args(args).output()?;
        if !out.status.success() {
            bail!("{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// `None` when the PostgreSQL server binaries are not installed.
    fn start() -> Result<Option<Cluster>> {
        let mut bins: Vec<PathBuf> = match std::fs::read_dir("/usr/lib/postgresql") {
            Ok(d) => d
                .flatten()
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect(),
            Err(_) => return Ok(None),
        };
        bins.sort();
        let Some(bin) = bins.pop() else {
            return Ok(None);
        };
        let uid = Command::new("id").arg("-u").output()?;
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = tempfile::tempdir()?;
        if as_postgres {
            // initdb refuses to run as root: the cluster belongs to the postgres user.
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let cluster = Cluster {
            bin,
            dir,
            as_postgres,
            port,
        };
        let data = cluster.dir.path().join("pgdata").display().to_string();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "keyward",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            cluster.dir.path().display()
        );
        let log = cluster.dir.path().join("pg.log").display().to_string();
        cluster.run(
            "pg_ctl",
            &["-D", &data, "-o", &opts, "-l", &log, "-w", "start"],
        )?;
        Ok(Some(cluster))
    }

    fn url(&self) -> String {
        format!(
            "postgres://keyward@localhost:{}/postgres?host={}",
            self.port,
            self.dir.path().display()
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("pgdata");
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// The warm-up's part (after `measured`) and the measured part.
fn split<T>(all: &[T], measured: usize) -> (&[T], &[T]) {
    let (items, warm_up) = all.split_at(measured.min(all.len()));
    (warm_up, items)
}

fn main() -> Result<()> {
    let keys = env_usize("KEYWARD_BENCH_CA_KEYS", 1000);
    let clients = env_usize("KEYWARD_BENCH_CA_CLIENTS", 32);
    let warm_up = env_usize("KEYWARD_BENCH_CA_WARMUP", 2 * clients);
    // Which of sqlite, postgresql, postgresql3 to run (all by default).
    let databases = std::env::var("KEYWARD_BENCH_CA_DATABASES")
        .unwrap_or_else(|_| "sqlite,postgresql,postgresql3".into());
    let wanted = |db: &str| databases.split(',').any(|d| d == db);
    if wanted("sqlite") {
        run("sqlite", None, 1, (keys, warm_up), clients)?;
    }
    for (db, instances) in [("postgresql", 1), ("postgresql3", 3)] {
        if !wanted(db) {
            continue;
        }
        // A fresh database for each, so their figures start from empty.
        match Cluster::start()? {
            Some(cluster) => run(db, Some(cluster.url()), instances, (keys, warm_up), clients)?,
            None => eprintln!("PostgreSQL server binaries not found: {db} figures skipped"),
        }
    }
    Ok(())
}
