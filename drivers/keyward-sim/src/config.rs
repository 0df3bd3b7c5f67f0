//! The simulator's configuration: a TOML file named by `KEYWARD_SIM_CONF`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;

/// Name of the environment variable that points at the configuration file.
pub const CONF_ENV: &str = "KEYWARD_SIM_CONF";

/// Default number of tries for the user PIN and the SO PIN.
pub const DEFAULT_TRIES: u32 = 10;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Path of the PKCS#11 module the simulator forwards to (SoftHSM 2).
    pub module: PathBuf,
    /// Directory holding everything the simulator persists.
    pub state_dir: PathBuf,
    /// Maximum tries of the user PIN, unless a `[[token]]` table overrides it.
    #[serde(default = "default_tries")]
    pub user_pin_tries: u32,
    /// Maximum tries of the SO PIN, unless a `[[token]]` table overrides it.
    #[serde(default = "default_tries")]
    pub so_pin_tries: u32,
    /// File the module's log is appended to; standard error when absent.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`); `KEYWARD_SIM_LOG` wins.
    #[serde(default)]
    pub log_level: Option<String>,
    /// Per-token identity and retry overrides.
    #[serde(default, rename = "token")]
    pub tokens: Vec<TokenOverride>,
}

/// One `[[token]]` table: overrides for the token whose underlying serial or
/// label equals `match`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenOverride {
    /// The underlying token's serial number or label (as the module below reports it).
    #[serde(rename = "match")]
    pub matches: String,
    /// Manufacturer shown in `CK_TOKEN_INFO` (at most 32 bytes).
    #[serde(default)]
    pub manufacturer: Option<String>,
    /// Model shown in `CK_TOKEN_INFO` (at most 16 bytes).
    #[serde(default)]
    pub model: Option<String>,
    /// Serial number shown in `CK_TOKEN_INFO` (at most 16 bytes).
    #[serde(default)]
    pub serial: Option<String>,
    /// Maximum tries of this token's user PIN.
    #[serde(default)]
    pub user_pin_tries: Option<u32>,
    /// Maximum tries of this token's SO PIN.
    #[serde(default)]
    pub so_pin_tries: Option<u32>,
}

fn default_tries() -> u32 {
    DEFAULT_TRIES
}

impl Config {
    /// Reads the configuration named by `KEYWARD_SIM_CONF`.
    pub fn from_env() -> Result<Self, Error> {
        let path = std::env::var_os(CONF_ENV).ok_or(Error::ConfigUnset)?;
        Self::load(Path::new(&path))
    }

    /// Reads and checks a configuration file. Relative paths inside it are
    /// taken relative to the file's directory, except a bare `module` file
    /// name (no `/`), which is left to the system's library search path.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| Error::ConfigInvalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if config.module.components().count() > 1 {
            config.module = absolute(base, &config.module);
        }
        config.state_dir = absolute(base, &config.state_dir);
        config.log_file = config.log_file.map(|f| absolute(base, &f));
        config.check().map_err(|message| Error::ConfigInvalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.user_pin_tries == 0 || self.so_pin_tries == 0 {
            return Err("user_pin_tries and so_pin_tries must be at least 1".into());
        }
        if let Some(level) = &self.log_level
            && let Err(e) = tracing_subscriber::EnvFilter::try_new(level)
        {
            return Err(format!("log_level {level:?}: {e}"));
        }
        for t in &self.tokens {
            if t.matches.trim().is_empty() {
                return Err("a [[token]] table has an empty `match`".into());
            }
            let limits = [
                ("manufacturer", &t.manufacturer, 32),
                ("model", &t.model, 16),
                ("serial", &t.serial, 16),
            ];
            for (name, value, max) in limits {
                if let Some(v) = value
                    && v.len() > max
                {
                    return Err(format!(
                        "[[token]] {:?}: {name} is longer than {max} bytes",
                        t.matches
                    ));
                }
            }
            if t.user_pin_tries == Some(0) || t.so_pin_tries == Some(0) {
                return Err(format!(
                    "[[token]] {:?}: tries must be at least 1",
                    t.matches
                ));
            }
        }
        Ok(())
    }

    /// The override table for a token, looked up by its underlying serial, then label.
    pub fn override_for(&self, serial: &str, label: &str) -> Option<&TokenOverride> {
        self.tokens
            .iter()
            .find(|t| t.matches == serial)
            .or_else(|| self.tokens.iter().find(|t| t.matches == label))
    }
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sim.toml");
        std::fs::write(&path, text).expect("write");
        Config::load(&path)
    }

    #[test]
    fn full_configuration_and_defaults() {
        let c = load(
            "module = \"/usr/lib/softhsm/libsofthsm2.so\"\nstate_dir = \"state\"\n\
             [[token]]\nmatch = \"T\"\nserial = \"NC0001\"\nso_pin_tries = 6\n",
        )
        .expect("valid");
        assert_eq!((c.user_pin_tries, c.so_pin_tries), (10, 10));
        assert!(c.state_dir.is_absolute() && c.state_dir.ends_with("state"));
        let o = c.override_for("0123", "T").expect("matched by label");
        assert_eq!(
            (o.serial.as_deref(), o.so_pin_tries),
            (Some("NC0001"), Some(6))
        );
        assert!(c.override_for("0123", "U").is_none());
    }

    #[test]
    fn a_bare_module_name_is_left_to_the_library_search_path() {
        let c = load("module = \"libsofthsm2.so\"\nstate_dir = \"/tmp/s\"\n").expect("valid");
        assert_eq!(c.module, PathBuf::from("libsofthsm2.so"));
        let c = load("module = \"lib/x.so\"\nstate_dir = \"/tmp/s\"\n").expect("valid");
        assert!(c.module.is_absolute());
    }

    #[test]
    fn broken_configurations_are_refused_with_a_reason() {
        for (text, why) in [
            ("state_dir = \"/tmp/s\"\n", "missing field `module`"),
            (
                "module = \"m\"\nstate_dir = \"/s\"\nuser_pin_tries = 0\n",
                "at least 1",
            ),
            (
                "module = \"m\"\nstate_dir = \"/s\"\nlog_level = \"a[{=x\"\n",
                "log_level",
            ),
            (
                "module = \"m\"\nstate_dir = \"/s\"\ncolour = 1\n",
                "unknown field",
            ),
            (
                "module = \"m\"\nstate_dir = \"/s\"\n[[token]]\nmatch = \"T\"\nserial = \"12345678901234567\"\n",
                "longer than 16",
            ),
        ] {
            let e = load(text).expect_err(text).to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
