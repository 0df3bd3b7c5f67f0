//! `keyward-sim`: pull tokens out of the simulator, plug them in, arm faults
//! and read PIN counters, from a shell or a test.
//!
//! The state directory comes from `--state-dir`, else `KEYWARD_SIM_STATE_DIR`,
//! else the `state_dir` of the configuration named by `KEYWARD_SIM_CONF`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::dbg_macro)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keyward_sim::control::{self, Effect, Fault};
use keyward_sim::{Config, Error};

#[derive(Debug, Parser)]
#[command(
    name = "keyward-sim",
    version,
    about = "Control the Keyward USB key simulator"
)]
struct Cli {
    /// The simulator's state directory.
    #[arg(long, global = true, env = "KEYWARD_SIM_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Plug a token back in (by serial or label).
    Insert { token: String },
    /// Pull a token out (by serial or label).
    Remove { token: String },
    /// Show tokens, presence, counters and faults.
    Status,
    /// Arm a fault at the Nth call of a PKCS#11 function.
    Fault {
        /// The function, e.g. C_Sign.
        function: String,
        /// Fire at this call after arming (1 = the next call).
        #[arg(long, default_value_t = 1)]
        at_call: u64,
        /// Answer this return code (CKR_ name, hex or decimal).
        #[arg(long = "return", value_name = "CKR", conflicts_with = "remove_token")]
        rv: Option<String>,
        /// Pull the token out instead.
        #[arg(long)]
        remove_token: bool,
        /// Block the call this many seconds instead, then go on (C_Initialize too).
        #[arg(long, value_name = "SECONDS")]
        hang: Option<u64>,
    },
    /// Forget every fault.
    ClearFaults,
    /// Remaining PIN tries of a token (by serial or label).
    Tries { token: String },
}

fn state_dir(cli: &Cli) -> Result<PathBuf, String> {
    if let Some(d) = &cli.state_dir {
        return Ok(d.clone());
    }
    Config::from_env()
        .map(|c| c.state_dir)
        .map_err(|e| format!("no --state-dir given, and {e}"))
}

fn run(cli: &Cli) -> Result<(), String> {
    let dir = state_dir(cli)?;
    let e = |e: Error| e.to_string();
    match &cli.command {
        Command::Insert { token } => control::insert(&dir, token).map_err(e)?,
        Command::Remove { token } => control::remove(&dir, token).map_err(e)?,
        Command::ClearFaults => control::clear_faults(&dir).map_err(e)?,
        Command::Fault {
            function,
            at_call,
            rv,
            remove_token,
            hang,
        } => {
            let effect = match (rv, remove_token, hang) {
                (Some(rv), false, None) => Effect::Return(
                    control::parse_rv(rv).ok_or_else(|| format!("unknown return code {rv:?}"))?,
                ),
                (None, true, None) => Effect::RemoveToken,
                (None, false, Some(secs)) => Effect::Hang(*secs),
                _ => {
                    return Err(
                        "give exactly one of --return CKR_…, --remove-token or --hang SECONDS"
                            .into(),
                    );
                }
            };
            let id = control::arm_fault(
                &dir,
                Fault {
                    function,
                    at_call: *at_call,
                    effect,
                },
            )
            .map_err(e)?;
            if cli.json {
                println!("{}", serde_json::json!({ "id": id }));
            } else {
                println!("fault {id} armed");
            }
        }
        Command::Tries { token } => {
            let t = control::tries(&dir, token).map_err(e)?;
            if cli.json {
                println!("{}", serde_json::to_string(&t).map_err(|e| e.to_string())?);
            } else {
                println!(
                    "user {}/{}  so {}/{}",
                    t.user_left, t.user_max, t.so_left, t.so_max
                );
            }
        }
        Command::Status => {
            let s = control::status(&dir).map_err(e)?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&s).map_err(|e| e.to_string())?
                );
                return Ok(());
            }
            for t in &s.tokens {
                println!(
                    "{:<16} {:<32} {:<7} user {}/{} so {}/{}",
                    t.serial,
                    t.label,
                    if t.present { "present" } else { "absent" },
                    t.tries.user_left,
                    t.tries.user_max,
                    t.tries.so_left,
                    t.tries.so_max
                );
            }
            if !s.absent.is_empty() {
                println!("absent: {}", s.absent.join(", "));
            }
            for f in &s.faults {
                let effect = match f.effect {
                    Effect::Return(rv) => control::rv_name(rv)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{rv:#x}")),
                    Effect::RemoveToken => "remove token".into(),
                    Effect::Hang(secs) => format!("hang {secs} s"),
                };
                println!(
                    "fault {}: {} call {} → {} ({} counted{})",
                    f.id,
                    f.function,
                    f.at_call,
                    effect,
                    f.calls,
                    if f.fired { ", fired" } else { "" }
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("keyward-sim: {msg}");
            ExitCode::FAILURE
        }
    }
}
