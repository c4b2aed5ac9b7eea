//! Server configuration: what the operator can set, its defaults, and how the
//! four sources are layered. Precedence is command-line flag > environment
//! variable > TOML config file > built-in default, resolved field by field.
//!
//! Nothing here reads the process environment or parses the command line: the
//! caller passes the flags as a [`ConfigLayer`] and the environment as a map,
//! so the precedence rules are tested without touching global state. Only the
//! config file is read from disk, and only when one is named or present.
//!
//! A config file uses the field names of [`ServerConfig`]; unknown keys are
//! refused, so a typo is an error rather than a silently ignored setting:
//!
//! ```toml
//! listen_addr = "0.0.0.0:7070"
//! data_dir = "/var/lib/aerolith"
//! request_body_bytes_max = 16842752
//! json_depth_max = 64
//! request_timeout_ms = 30000
//! header_read_timeout_ms = 10000
//! write_stall_timeout_ms = 30000
//! connections_max = 1024
//! shutdown_grace_ms = 30000
//! meter_flush_interval_ms = 1000
//! storage_sample_interval_ms = 60000
//! billing_run_interval_ms = 60000
//! catalog_file = "/etc/aerolith/catalog.toml"
//! log_level = "info,aerolith_server=debug"
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

/// Default listen address: loopback only, so a fresh start is not exposed.
pub const LISTEN_ADDR_DEFAULT: &str = "127.0.0.1:7070";
/// Default data directory, relative to the working directory.
pub const DATA_DIR_DEFAULT: &str = "aerolith-data";
/// Name of the config file looked up inside the data directory.
pub const CONFIG_FILE_NAME: &str = "aerolith.toml";
/// Default request body limit: 16 MiB of document plus 64 KiB of envelope.
pub const REQUEST_BODY_BYTES_MAX_DEFAULT: u64 = 16 * 1024 * 1024 + 64 * 1024;
/// Default maximum JSON nesting depth accepted in a request body.
pub const JSON_DEPTH_MAX_DEFAULT: u32 = 64;
/// Largest JSON depth an operator may configure; serde_json refuses deeper
/// input anyway (its recursion limit is 128).
pub const JSON_DEPTH_MAX_LIMIT: u32 = 128;
/// Default deadline for handling one request, body read included.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Default time a client gets to send the complete request head.
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default time a response write may make no progress (a client that stops
/// reading) before the connection is dropped.
pub const WRITE_STALL_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Default maximum number of open client connections.
pub const CONNECTIONS_MAX_DEFAULT: u32 = 1_024;
/// Default time in-flight requests get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE_MS_DEFAULT: u64 = 30_000;
/// Default interval of the usage meter's drain into the billing ledger: the
/// most metered usage a crash can lose, and the most a usage read without a
/// flush can lag.
pub const METER_FLUSH_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Default interval between two samples of every tenant's stored bytes: the
/// longest a size change goes unseen by storage metering.
pub const STORAGE_SAMPLE_INTERVAL_MS_DEFAULT: u64 = 60_000;
/// Default interval of the billing run (trial ends, renewals, dunning).
pub const BILLING_RUN_INTERVAL_MS_DEFAULT: u64 = 60_000;
/// Default log filter (tracing-subscriber `EnvFilter` syntax).
pub const LOG_LEVEL_DEFAULT: &str = "info";

/// Environment variable naming the listen address.
pub const ENV_LISTEN: &str = "AEROLITH_LISTEN";
/// Environment variable naming the data directory.
pub const ENV_DATA_DIR: &str = "AEROLITH_DATA_DIR";
/// Environment variable naming the config file.
pub const ENV_CONFIG: &str = "AEROLITH_CONFIG";
/// Environment variable for the request body limit in bytes.
pub const ENV_REQUEST_BODY_BYTES_MAX: &str = "AEROLITH_REQUEST_BODY_BYTES_MAX";
/// Environment variable for the JSON depth limit.
pub const ENV_JSON_DEPTH_MAX: &str = "AEROLITH_JSON_DEPTH_MAX";
/// Environment variable for the request timeout in milliseconds.
pub const ENV_REQUEST_TIMEOUT_MS: &str = "AEROLITH_REQUEST_TIMEOUT_MS";
/// Environment variable for the header read timeout in milliseconds.
pub const ENV_HEADER_READ_TIMEOUT_MS: &str = "AEROLITH_HEADER_READ_TIMEOUT_MS";
/// Environment variable for the write stall timeout in milliseconds.
pub const ENV_WRITE_STALL_TIMEOUT_MS: &str = "AEROLITH_WRITE_STALL_TIMEOUT_MS";
/// Environment variable for the connection limit.
pub const ENV_CONNECTIONS_MAX: &str = "AEROLITH_CONNECTIONS_MAX";
/// Environment variable for the shutdown grace period in milliseconds.
pub const ENV_SHUTDOWN_GRACE_MS: &str = "AEROLITH_SHUTDOWN_GRACE_MS";
/// Environment variable for the meter flush interval in milliseconds.
pub const ENV_METER_FLUSH_INTERVAL_MS: &str = "AEROLITH_METER_FLUSH_INTERVAL_MS";
/// Environment variable for the storage sampling interval in milliseconds.
pub const ENV_STORAGE_SAMPLE_INTERVAL_MS: &str = "AEROLITH_STORAGE_SAMPLE_INTERVAL_MS";
/// Environment variable for the billing run interval in milliseconds.
pub const ENV_BILLING_RUN_INTERVAL_MS: &str = "AEROLITH_BILLING_RUN_INTERVAL_MS";
/// Environment variable naming the plan catalog file (TOML or JSON).
pub const ENV_CATALOG_FILE: &str = "AEROLITH_CATALOG";
/// Environment variable for the log filter.
pub const ENV_LOG: &str = "AEROLITH_LOG";

/// The resolved server configuration. Every field has a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address the HTTP server binds to.
    pub listen_addr: SocketAddr,
    /// Directory holding the keys, the config file and the data.
    pub data_dir: PathBuf,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Largest accepted request body.
    pub request_body_bytes_max: u64,
    /// Deepest accepted JSON nesting in a request body.
    pub json_depth_max: u32,
    /// Deadline for handling one request, body read included.
    pub request_timeout_ms: u64,
    /// Time a client gets to send the complete request head (slow-loris guard).
    pub header_read_timeout_ms: u64,
    /// Time a response write may make no progress before the connection is
    /// dropped (a client that stops reading).
    pub write_stall_timeout_ms: u64,
    /// Maximum number of open client connections; more wait in the backlog.
    pub connections_max: u32,
    /// Time in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace_ms: u64,
    /// How often the usage meter drains into the billing ledger.
    pub meter_flush_interval_ms: u64,
    /// How often every tenant's stored bytes are sampled for storage
    /// metering (`storage_byte_seconds`).
    pub storage_sample_interval_ms: u64,
    /// How often the billing run looks for due work (renewals, dunning).
    pub billing_run_interval_ms: u64,
    /// The plan catalog (TOML or JSON); `None` = the built-in default catalog.
    pub catalog_file: Option<PathBuf>,
    /// Log filter in tracing-subscriber `EnvFilter` syntax (`info`, `aerolith_server=debug`).
    pub log_level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen_addr: LISTEN_ADDR_DEFAULT
                .parse()
                .expect("the default listen address is a valid socket address"),
            data_dir: PathBuf::from(DATA_DIR_DEFAULT),
            config_file: None,
            request_body_bytes_max: REQUEST_BODY_BYTES_MAX_DEFAULT,
            json_depth_max: JSON_DEPTH_MAX_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            header_read_timeout_ms: HEADER_READ_TIMEOUT_MS_DEFAULT,
            write_stall_timeout_ms: WRITE_STALL_TIMEOUT_MS_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            shutdown_grace_ms: SHUTDOWN_GRACE_MS_DEFAULT,
            meter_flush_interval_ms: METER_FLUSH_INTERVAL_MS_DEFAULT,
            storage_sample_interval_ms: STORAGE_SAMPLE_INTERVAL_MS_DEFAULT,
            billing_run_interval_ms: BILLING_RUN_INTERVAL_MS_DEFAULT,
            catalog_file: None,
            log_level: LOG_LEVEL_DEFAULT.to_owned(),
        }
    }
}

/// One source of configuration: every field optional. The flags, the
/// environment and the config file each produce one; [`ServerConfig::resolve`]
/// layers them. In TOML, the keys are the field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    /// See [`ServerConfig::listen_addr`].
    pub listen_addr: Option<SocketAddr>,
    /// See [`ServerConfig::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// The config file to read. Ignored inside a config file.
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    /// See [`ServerConfig::request_body_bytes_max`].
    pub request_body_bytes_max: Option<u64>,
    /// See [`ServerConfig::json_depth_max`].
    pub json_depth_max: Option<u32>,
    /// See [`ServerConfig::request_timeout_ms`].
    pub request_timeout_ms: Option<u64>,
    /// See [`ServerConfig::header_read_timeout_ms`].
    pub header_read_timeout_ms: Option<u64>,
    /// See [`ServerConfig::write_stall_timeout_ms`].
    pub write_stall_timeout_ms: Option<u64>,
    /// See [`ServerConfig::connections_max`].
    pub connections_max: Option<u32>,
    /// See [`ServerConfig::shutdown_grace_ms`].
    pub shutdown_grace_ms: Option<u64>,
    /// See [`ServerConfig::meter_flush_interval_ms`].
    pub meter_flush_interval_ms: Option<u64>,
    /// See [`ServerConfig::storage_sample_interval_ms`].
    pub storage_sample_interval_ms: Option<u64>,
    /// See [`ServerConfig::billing_run_interval_ms`].
    pub billing_run_interval_ms: Option<u64>,
    /// See [`ServerConfig::catalog_file`].
    pub catalog_file: Option<PathBuf>,
    /// See [`ServerConfig::log_level`].
    pub log_level: Option<String>,
}

/// Why the configuration could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An environment variable holds a value that does not parse.
    #[error("environment variable {var}={value:?} is not a valid {expected}")]
    InvalidEnv {
        /// The variable name.
        var: &'static str,
        /// The value found.
        value: String,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config file {path}: {source}")]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The TOML error, with line and column.
        source: Box<toml::de::Error>,
    },
    /// A value is out of its allowed range.
    #[error("{field} = {value} is out of range: {allowed}")]
    OutOfRange {
        /// The field name.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The allowed range, in words.
        allowed: &'static str,
    },
}

impl ConfigLayer {
    /// Reads the `AEROLITH_*` variables from `env` (a snapshot of the process
    /// environment, or a test map). Unset variables stay `None`; empty values
    /// count as unset.
    pub fn from_env(env: &HashMap<String, String>) -> Result<ConfigLayer, ConfigError> {
        Ok(ConfigLayer {
            listen_addr: env_parse(env, ENV_LISTEN, "socket address (host:port)")?,
            data_dir: env_value(env, ENV_DATA_DIR).map(PathBuf::from),
            config_file: env_value(env, ENV_CONFIG).map(PathBuf::from),
            request_body_bytes_max: env_parse(env, ENV_REQUEST_BODY_BYTES_MAX, "byte count")?,
            json_depth_max: env_parse(env, ENV_JSON_DEPTH_MAX, "depth")?,
            request_timeout_ms: env_parse(env, ENV_REQUEST_TIMEOUT_MS, "millisecond count")?,
            header_read_timeout_ms: env_parse(
                env,
                ENV_HEADER_READ_TIMEOUT_MS,
                "millisecond count",
            )?,
            write_stall_timeout_ms: env_parse(
                env,
                ENV_WRITE_STALL_TIMEOUT_MS,
                "millisecond count",
            )?,
            connections_max: env_parse(env, ENV_CONNECTIONS_MAX, "connection count")?,
            shutdown_grace_ms: env_parse(env, ENV_SHUTDOWN_GRACE_MS, "millisecond count")?,
            meter_flush_interval_ms: env_parse(
                env,
                ENV_METER_FLUSH_INTERVAL_MS,
                "millisecond count",
            )?,
            storage_sample_interval_ms: env_parse(
                env,
                ENV_STORAGE_SAMPLE_INTERVAL_MS,
                "millisecond count",
            )?,
            billing_run_interval_ms: env_parse(
                env,
                ENV_BILLING_RUN_INTERVAL_MS,
                "millisecond count",
            )?,
            catalog_file: env_value(env, ENV_CATALOG_FILE).map(PathBuf::from),
            log_level: env_value(env, ENV_LOG).map(str::to_owned),
        })
    }

    /// Parses a config file's text. `path` is only used in the error.
    pub fn from_toml(text: &str, path: &Path) -> Result<ConfigLayer, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::ParseFile {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Reads and parses a config file.
    pub fn from_file(path: &Path) -> Result<ConfigLayer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        ConfigLayer::from_toml(&text, path)
    }

    /// Field by field, `self` where set, otherwise `lower`.
    fn over(self, lower: ConfigLayer) -> ConfigLayer {
        ConfigLayer {
            listen_addr: self.listen_addr.or(lower.listen_addr),
            data_dir: self.data_dir.or(lower.data_dir),
            config_file: self.config_file.or(lower.config_file),
            request_body_bytes_max: self.request_body_bytes_max.or(lower.request_body_bytes_max),
            json_depth_max: self.json_depth_max.or(lower.json_depth_max),
            request_timeout_ms: self.request_timeout_ms.or(lower.request_timeout_ms),
            header_read_timeout_ms: self.header_read_timeout_ms.or(lower.header_read_timeout_ms),
            write_stall_timeout_ms: self.write_stall_timeout_ms.or(lower.write_stall_timeout_ms),
            connections_max: self.connections_max.or(lower.connections_max),
            shutdown_grace_ms: self.shutdown_grace_ms.or(lower.shutdown_grace_ms),
            meter_flush_interval_ms: self
                .meter_flush_interval_ms
                .or(lower.meter_flush_interval_ms),
            storage_sample_interval_ms: self
                .storage_sample_interval_ms
                .or(lower.storage_sample_interval_ms),
            billing_run_interval_ms: self
                .billing_run_interval_ms
                .or(lower.billing_run_interval_ms),
            catalog_file: self.catalog_file.or(lower.catalog_file),
            log_level: self.log_level.or(lower.log_level),
        }
    }
}

fn env_value<'e>(env: &'e HashMap<String, String>, var: &'static str) -> Option<&'e str> {
    env.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn env_parse<T: FromStr>(
    env: &HashMap<String, String>,
    var: &'static str,
    expected: &'static str,
) -> Result<Option<T>, ConfigError> {
    match env_value(env, var) {
        None => Ok(None),
        Some(value) => value
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::InvalidEnv {
                var,
                value: value.to_owned(),
                expected,
            }),
    }
}

impl ServerConfig {
    /// Resolves the configuration: `flags` over `env` over the config file
    /// over the defaults.
    ///
    /// The config file is the one named by the flags or the environment
    /// (`AEROLITH_CONFIG`), which must exist; otherwise
    /// `<data_dir>/aerolith.toml` if it exists, where `data_dir` comes from
    /// the flags, the environment or the default.
    pub fn resolve(
        flags: ConfigLayer,
        env: &HashMap<String, String>,
    ) -> Result<ServerConfig, ConfigError> {
        let upper = flags.over(ConfigLayer::from_env(env)?);
        let (file_layer, config_file) = match &upper.config_file {
            Some(path) => (ConfigLayer::from_file(path)?, Some(path.clone())),
            None => {
                let data_dir = upper
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT));
                let candidate = data_dir.join(CONFIG_FILE_NAME);
                if candidate.is_file() {
                    (ConfigLayer::from_file(&candidate)?, Some(candidate))
                } else {
                    (ConfigLayer::default(), None)
                }
            }
        };
        let merged = upper.over(file_layer);
        let defaults = ServerConfig::default();
        let config = ServerConfig {
            listen_addr: merged.listen_addr.unwrap_or(defaults.listen_addr),
            data_dir: merged.data_dir.unwrap_or(defaults.data_dir),
            config_file,
            request_body_bytes_max: merged
                .request_body_bytes_max
                .unwrap_or(defaults.request_body_bytes_max),
            json_depth_max: merged.json_depth_max.unwrap_or(defaults.json_depth_max),
            request_timeout_ms: merged
                .request_timeout_ms
                .unwrap_or(defaults.request_timeout_ms),
            header_read_timeout_ms: merged
                .header_read_timeout_ms
                .unwrap_or(defaults.header_read_timeout_ms),
            write_stall_timeout_ms: merged
                .write_stall_timeout_ms
                .unwrap_or(defaults.write_stall_timeout_ms),
            connections_max: merged.connections_max.unwrap_or(defaults.connections_max),
            shutdown_grace_ms: merged
                .shutdown_grace_ms
                .unwrap_or(defaults.shutdown_grace_ms),
            meter_flush_interval_ms: merged
                .meter_flush_interval_ms
                .unwrap_or(defaults.meter_flush_interval_ms),
            storage_sample_interval_ms: merged
                .storage_sample_interval_ms
                .unwrap_or(defaults.storage_sample_interval_ms),
            billing_run_interval_ms: merged
                .billing_run_interval_ms
                .unwrap_or(defaults.billing_run_interval_ms),
            catalog_file: merged.catalog_file,
            log_level: merged.log_level.unwrap_or(defaults.log_level),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every limit is within its allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(&'static str, u64, u64, u64, &'static str); 10] = [
            (
                "request_body_bytes_max",
                self.request_body_bytes_max,
                1,
                u64::from(u32::MAX),
                "1 ..= 4294967295",
            ),
            (
                "json_depth_max",
                u64::from(self.json_depth_max),
                1,
                u64::from(JSON_DEPTH_MAX_LIMIT),
                "1 ..= 128",
            ),
            (
                "request_timeout_ms",
                self.request_timeout_ms,
                1,
                86_400_000,
                "1 ..= 86400000",
            ),
            (
                "header_read_timeout_ms",
                self.header_read_timeout_ms,
                1,
                86_400_000,
                "1 ..= 86400000",
            ),
            (
                "write_stall_timeout_ms",
                self.write_stall_timeout_ms,
                1,
                86_400_000,
                "1 ..= 86400000",
            ),
            (
                "connections_max",
                u64::from(self.connections_max),
                1,
                1_000_000,
                "1 ..= 1000000",
            ),
            (
                "shutdown_grace_ms",
                self.shutdown_grace_ms,
                0,
                86_400_000,
                "0 ..= 86400000",
            ),
            (
                "meter_flush_interval_ms",
                self.meter_flush_interval_ms,
                1,
                3_600_000,
                "1 ..= 3600000",
            ),
            (
                "storage_sample_interval_ms",
                self.storage_sample_interval_ms,
                1,
                3_600_000,
                "1 ..= 3600000",
            ),
            (
                "billing_run_interval_ms",
                self.billing_run_interval_ms,
                1,
                86_400_000,
                "1 ..= 86400000",
            ),
        ];
        for (field, value, low, high, allowed) in checks {
            if value < low || value > high {
                return Err(ConfigError::OutOfRange {
                    field,
                    value,
                    allowed,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn empty_data_dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let dir = empty_data_dir();
        let flags = ConfigLayer {
            data_dir: Some(dir.path().to_owned()),
            ..ConfigLayer::default()
        };
        let config = ServerConfig::resolve(flags, &HashMap::new()).expect("resolves");
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:7070");
        assert_eq!(
            config.request_body_bytes_max,
            REQUEST_BODY_BYTES_MAX_DEFAULT
        );
        assert_eq!(config.json_depth_max, 64);
        assert_eq!(config.config_file, None);
    }

    #[test]
    fn meter_interval_and_catalog_come_from_env_or_file_and_are_checked() {
        let dir = empty_data_dir();
        std::fs::write(
            dir.path().join(CONFIG_FILE_NAME),
            "meter_flush_interval_ms = 250\ncatalog_file = \"plans.toml\"\n",
        )
        .expect("write config");
        let flags = || ConfigLayer {
            data_dir: Some(dir.path().to_owned()),
            ..ConfigLayer::default()
        };
        let config = ServerConfig::resolve(flags(), &HashMap::new()).expect("resolves");
        assert_eq!(config.meter_flush_interval_ms, 250);
        assert_eq!(config.catalog_file, Some(PathBuf::from("plans.toml")));
        let config = ServerConfig::resolve(
            flags(),
            &env(&[
                (ENV_METER_FLUSH_INTERVAL_MS, "5000"),
                (ENV_CATALOG_FILE, "/etc/catalog.json"),
            ]),
        )
        .expect("resolves");
        assert_eq!(config.meter_flush_interval_ms, 5000, "env beats file");
        assert_eq!(
            config.storage_sample_interval_ms,
            STORAGE_SAMPLE_INTERVAL_MS_DEFAULT
        );
        assert_eq!(
            config.catalog_file,
            Some(PathBuf::from("/etc/catalog.json"))
        );
        let config =
            ServerConfig::resolve(flags(), &env(&[(ENV_STORAGE_SAMPLE_INTERVAL_MS, "50")]))
                .expect("resolves");
        assert_eq!(config.storage_sample_interval_ms, 50);
        let err = ServerConfig::resolve(flags(), &env(&[(ENV_STORAGE_SAMPLE_INTERVAL_MS, "0")]))
            .expect_err("zero is refused");
        assert!(matches!(
            err,
            ConfigError::OutOfRange {
                field: "storage_sample_interval_ms",
                ..
            }
        ));
        let err = ServerConfig::resolve(flags(), &env(&[(ENV_METER_FLUSH_INTERVAL_MS, "0")]))
            .expect_err("zero is refused");
        assert!(matches!(
            err,
            ConfigError::OutOfRange {
                field: "meter_flush_interval_ms",
                ..
            }
        ));
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let dir = empty_data_dir();
        let file = dir.path().join("custom.toml");
        std::fs::write(
            &file,
            "listen_addr = \"127.0.0.1:3000\"\njson_depth_max = 10\nrequest_timeout_ms = 5\nlog_level = \"warn\"\n",
        )
        .expect("write config");
        let env = env(&[
            (ENV_LISTEN, "127.0.0.1:2000"),
            (ENV_JSON_DEPTH_MAX, "20"),
            (ENV_CONFIG, file.to_str().expect("utf-8 path")),
        ]);
        let flags = ConfigLayer {
            listen_addr: Some("127.0.0.1:1000".parse().expect("addr")),
            data_dir: Some(dir.path().to_owned()),
            ..ConfigLayer::default()
        };
        let config = ServerConfig::resolve(flags, &env).expect("resolves");
        assert_eq!(
            config.listen_addr.to_string(),
            "127.0.0.1:1000",
            "flag wins"
        );
        assert_eq!(config.json_depth_max, 20, "env beats file");
        assert_eq!(config.request_timeout_ms, 5, "file beats default");
        assert_eq!(config.log_level, "warn");
        assert_eq!(
            config.header_read_timeout_ms,
            HEADER_READ_TIMEOUT_MS_DEFAULT
        );
        assert_eq!(config.config_file, Some(file));
    }

    #[test]
    fn config_file_in_data_dir_is_found_without_being_named() {
        let dir = empty_data_dir();
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), "connections_max = 7\n")
            .expect("write config");
        let env = env(&[(ENV_DATA_DIR, dir.path().to_str().expect("utf-8 path"))]);
        let config = ServerConfig::resolve(ConfigLayer::default(), &env).expect("resolves");
        assert_eq!(config.connections_max, 7);
        assert_eq!(config.data_dir, dir.path());
    }

    #[test]
    fn named_config_file_that_is_missing_is_an_error() {
        let dir = empty_data_dir();
        let flags = ConfigLayer {
            config_file: Some(dir.path().join("nope.toml")),
            ..ConfigLayer::default()
        };
        let err = ServerConfig::resolve(flags, &HashMap::new()).expect_err("missing file");
        assert!(matches!(err, ConfigError::ReadFile { .. }), "{err:?}");
    }

    #[test]
    fn documented_example_config_file_parses() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| *l != "//! ```toml")
            .skip(1)
            .take_while(|l| *l != "//! ```")
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start()))
            .collect();
        let layer = ConfigLayer::from_toml(&example, Path::new("example.toml")).expect("parses");
        assert_eq!(layer.write_stall_timeout_ms, Some(30_000));
        assert_eq!(layer.data_dir, Some(PathBuf::from("/var/lib/aerolith")));
    }

    #[test]
    fn unknown_key_in_config_file_is_refused() {
        let err = ConfigLayer::from_toml("listen = \"x\"\n", Path::new("a.toml"))
            .expect_err("unknown key");
        assert!(matches!(err, ConfigError::ParseFile { .. }), "{err:?}");
        assert!(err.to_string().contains("a.toml"));
    }

    #[test]
    fn malformed_env_value_names_the_variable() {
        let err = ConfigLayer::from_env(&env(&[(ENV_REQUEST_TIMEOUT_MS, "soon")]))
            .expect_err("bad number");
        match err {
            ConfigError::InvalidEnv { var, value, .. } => {
                assert_eq!(var, ENV_REQUEST_TIMEOUT_MS);
                assert_eq!(value, "soon");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn empty_env_value_counts_as_unset() {
        let layer = ConfigLayer::from_env(&env(&[(ENV_LISTEN, "  ")])).expect("parses");
        assert_eq!(layer.listen_addr, None);
    }

    #[test]
    fn json_depth_limit_is_range_checked_at_the_edge() {
        let dir = empty_data_dir();
        let at_limit = ConfigLayer {
            data_dir: Some(dir.path().to_owned()),
            json_depth_max: Some(JSON_DEPTH_MAX_LIMIT),
            ..ConfigLayer::default()
        };
        assert!(ServerConfig::resolve(at_limit, &HashMap::new()).is_ok());
        let past_limit = ConfigLayer {
            data_dir: Some(dir.path().to_owned()),
            json_depth_max: Some(JSON_DEPTH_MAX_LIMIT + 1),
            ..ConfigLayer::default()
        };
        let err = ServerConfig::resolve(past_limit, &HashMap::new()).expect_err("too deep");
        assert!(
            matches!(
                err,
                ConfigError::OutOfRange {
                    field: "json_depth_max",
                    value: 129,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
