//! The `aerolith` command line: `serve`, the operator's remote subcommands
//! (which call the admin API of a running server through [`AdminClient`]),
//! and the offline subcommands that work on a data directory.
//!
//! Output contract: results go to stdout as pretty JSON (`verify` prints
//! one `ok ...` line per check instead); errors go to stderr
//! as one `error: ...` line, with exit status 1 (2 for a usage error).
//! `verify` and `compact` work on a data directory while no server
//! holds it (its engines' locks tell), with the master key from the data
//! directory or `AEROLITH_MASTER_KEY`; on a terminal they show a progress
//! spinner, as `backup` and `restore` show a byte progress bar.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::client::{AdminClient, ClientError};
use crate::config::{ConfigLayer, ServerConfig, CONFIG_FILE_NAME};
use crate::secrets;

/// Default server URL of the remote subcommands.
pub const SERVER_URL_DEFAULT: &str = "http://127.0.0.1:7070";

/// Aerolith: a multi-tenant JSON document database with tenancy, quotas,
/// metering and billing built in.
#[derive(Debug, Parser)]
#[command(name = "aerolith", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Manage tenants on a running server.
    Tenant {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Manage a tenant's API keys on a running server.
    Key {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Show a tenant's usage for the current billing period.
    Usage {
        #[command(flatten)]
        remote: RemoteArgs,
        /// The tenant.
        tenant: String,
    },
    /// Read a tenant's invoices on a running server.
    Invoice {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        action: InvoiceAction,
    },
    /// Export a tenant's documents as JSON Lines.
    Backup {
        #[command(flatten)]
        remote: RemoteArgs,
        /// The tenant.
        tenant: String,
        /// Output file.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Import a tenant's documents from a JSON Lines backup.
    Restore {
        #[command(flatten)]
        remote: RemoteArgs,
        /// The tenant.
        tenant: String,
        /// Input file (written by `aerolith backup`).
        #[arg(long = "in", short)]
        input: PathBuf,
    },
    /// Check a data directory offline (server not running).
    Verify {
        /// The data directory.
        #[arg(long, default_value = crate::config::DATA_DIR_DEFAULT)]
        data_dir: PathBuf,
    },
    /// Compact a data directory offline (server not running).
    Compact {
        /// The data directory.
        #[arg(long, default_value = crate::config::DATA_DIR_DEFAULT)]
        data_dir: PathBuf,
    },
}

/// Flags of `aerolith serve`; unset flags fall back to the environment, the
/// config file and the defaults.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on [env: AEROLITH_LISTEN] [default: 127.0.0.1:7070].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Data directory [env: AEROLITH_DATA_DIR] [default: ./aerolith-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TOML config file [env: AEROLITH_CONFIG] [default: <data-dir>/aerolith.toml if present].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `aerolith_server=debug` [env: AEROLITH_LOG].
    #[arg(long)]
    log_level: Option<String>,
}

#[derive(Debug, Args)]
struct RemoteArgs {
    /// URL of the running server.
    #[arg(long, env = "AEROLITH_SERVER", default_value = SERVER_URL_DEFAULT, global = true)]
    server: String,
    /// The operator admin key.
    #[arg(
        long,
        env = "AEROLITH_ADMIN_KEY",
        hide_env_values = true,
        global = true
    )]
    admin_key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum TenantAction {
    /// Create a tenant; prints its owner API key once.
    Create {
        /// Tenant name.
        name: String,
        /// Plan id (e.g. starter, professional, enterprise).
        #[arg(long, default_value = "starter")]
        plan: String,
        /// Isolation mode: shared or dedicated.
        #[arg(long, default_value = "shared")]
        isolation: String,
    },
    /// List tenants.
    List,
    /// Show one tenant.
    Get {
        /// The tenant.
        tenant: String,
    },
    /// Suspend a tenant (read-only).
    Suspend {
        /// The tenant.
        tenant: String,
    },
    /// Resume a suspended tenant.
    Resume {
        /// The tenant.
        tenant: String,
    },
    /// Delete a tenant and crypto-shred its data.
    Delete {
        /// The tenant.
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeyAction {
    /// Create an API key for a tenant; prints the key once.
    Create {
        /// The tenant.
        tenant: String,
        /// Role: owner, admin, writer or reader.
        #[arg(long, default_value = "reader")]
        role: String,
        /// A label to recognise the key by.
        #[arg(long)]
        name: Option<String>,
    },
    /// List a tenant's API keys (never the secrets).
    List {
        /// The tenant.
        tenant: String,
    },
    /// Revoke an API key.
    Revoke {
        /// The tenant.
        tenant: String,
        /// The key id.
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum InvoiceAction {
    /// List a tenant's invoices.
    List {
        /// The tenant.
        tenant: String,
    },
    /// Show one invoice.
    Show {
        /// The tenant.
        tenant: String,
        /// The invoice id or number.
        invoice: String,
    },
}

/// Why a CLI command failed.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// Parses `args` (program name first) and runs the command. The process
/// environment is read once here and passed down as a map.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let env = process_env();
    match execute(cli.command, &env) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The `AEROLITH_*` variables of the process environment (non-UTF-8 values
/// are skipped rather than aborting).
fn process_env() -> HashMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("AEROLITH_"))
        .collect()
}

fn execute(command: Command, env: &HashMap<String, String>) -> Result<(), CliError> {
    match command {
        Command::Serve(args) => {
            let flags = ConfigLayer {
                listen_addr: args.listen,
                data_dir: args.data_dir,
                config_file: args.config,
                log_level: args.log_level,
                ..ConfigLayer::default()
            };
            let config = ServerConfig::resolve(flags, env).map_err(anyhow::Error::from)?;
            crate::serve::run_serve(config, env)?;
            Ok(())
        }
        Command::Tenant { remote, action } => print(tenant(&client(&remote), action)?),
        Command::Key { remote, action } => print(key(&client(&remote), action)?),
        Command::Usage { remote, tenant } => {
            print(client(&remote).get(&format!("/v1/admin/tenants/{}/usage", seg(&tenant)))?)
        }
        Command::Invoice { remote, action } => print(invoice(&client(&remote), action)?),
        Command::Backup {
            remote,
            tenant,
            out,
        } => backup(&client(&remote), &tenant, &out),
        Command::Restore {
            remote,
            tenant,
            input,
        } => restore(&client(&remote), &tenant, &input),
        Command::Verify { data_dir } => verify(&data_dir, env),
        Command::Compact { data_dir } => compact(&data_dir, env),
    }
}

fn client(remote: &RemoteArgs) -> AdminClient {
    AdminClient::new(&remote.server, remote.admin_key.clone())
}

fn print(value: Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(&value).map_err(anyhow::Error::from)?;
    println!("{text}");
    Ok(())
}

/// Percent-encodes a path segment (ids are plain, but a stray `/` or `?`
/// must not change the route).
fn seg(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn tenant(client: &AdminClient, action: TenantAction) -> Result<Value, ClientError> {
    match action {
        TenantAction::Create {
            name,
            plan,
            isolation,
        } => client.post(
            "/v1/admin/tenants",
            &json!({"name": name, "plan": plan, "isolation": isolation}),
        ),
        TenantAction::List => client.get("/v1/admin/tenants"),
        TenantAction::Get { tenant } => client.get(&format!("/v1/admin/tenants/{}", seg(&tenant))),
        TenantAction::Suspend { tenant } => client.post(
            &format!("/v1/admin/tenants/{}/suspend", seg(&tenant)),
            &json!({}),
        ),
        TenantAction::Resume { tenant } => client.post(
            &format!("/v1/admin/tenants/{}/resume", seg(&tenant)),
            &json!({}),
        ),
        TenantAction::Delete { tenant } => {
            client.delete(&format!("/v1/admin/tenants/{}", seg(&tenant)))
        }
    }
}

fn key(client: &AdminClient, action: KeyAction) -> Result<Value, ClientError> {
    match action {
        KeyAction::Create { tenant, role, name } => client.post(
            &format!("/v1/admin/tenants/{}/keys", seg(&tenant)),
            &json!({"role": role, "name": name}),
        ),
        KeyAction::List { tenant } => {
            client.get(&format!("/v1/admin/tenants/{}/keys", seg(&tenant)))
        }
        KeyAction::Revoke { tenant, key_id } => client.delete(&format!(
            "/v1/admin/tenants/{}/keys/{}",
            seg(&tenant),
            seg(&key_id)
        )),
    }
}

fn invoice(client: &AdminClient, action: InvoiceAction) -> Result<Value, ClientError> {
    match action {
        InvoiceAction::List { tenant } => {
            client.get(&format!("/v1/admin/tenants/{}/invoices", seg(&tenant)))
        }
        InvoiceAction::Show { tenant, invoice } => client.get(&format!(
            "/v1/admin/tenants/{}/invoices/{}",
            seg(&tenant),
            seg(&invoice)
        )),
    }
}

/// A byte-count progress bar on stderr when it is a terminal, hidden otherwise.
fn progress_bar(total_bytes: Option<u64>) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    match total_bytes {
        Some(total) => {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            ) {
                bar.set_style(style);
            }
            bar
        }
        None => {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {bytes} ({bytes_per_sec})")
            {
                bar.set_style(style);
            }
            bar
        }
    }
}

fn backup(client: &AdminClient, tenant: &str, out: &Path) -> Result<(), CliError> {
    let file_err = |action, source| {
        CliError::Client(ClientError::File {
            action,
            path: out.display().to_string(),
            source,
        })
    };
    // Write beside the target and rename at the end, so a failed backup never
    // leaves a truncated file under the final name.
    let partial = out.with_extension("partial");
    let mut file = std::fs::File::create(&partial).map_err(|e| file_err("create", e))?;
    let bar = progress_bar(None);
    let result = client.download(
        &format!("/v1/admin/tenants/{}/export", seg(tenant)),
        &mut file,
        &mut |bytes| bar.set_position(bytes),
    );
    bar.finish_and_clear();
    let bytes = match result {
        Ok(bytes) => bytes,
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            return Err(err.into());
        }
    };
    file.sync_all().map_err(|e| file_err("fsync", e))?;
    std::fs::rename(&partial, out).map_err(|e| file_err("rename into", e))?;
    print(json!({"tenant": tenant, "file": out.display().to_string(), "size_bytes": bytes}))
}

fn restore(client: &AdminClient, tenant: &str, input: &Path) -> Result<(), CliError> {
    let file_err = |action, source| {
        CliError::Client(ClientError::File {
            action,
            path: input.display().to_string(),
            source,
        })
    };
    let file = std::fs::File::open(input).map_err(|e| file_err("open", e))?;
    let size = file.metadata().map_err(|e| file_err("inspect", e))?.len();
    let bar = progress_bar(Some(size));
    let mut reader = bar.wrap_read(file);
    let result = client.upload(
        &format!("/v1/admin/tenants/{}/import", seg(tenant)),
        "application/x-ndjson",
        &mut reader,
    );
    bar.finish_and_clear();
    print(result?)
}

/// A progress bar over the engines of a data directory on stderr when it is
/// a terminal, hidden otherwise.
fn engine_progress() -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {pos} engines {msg}") {
        bar.set_style(style);
    }
    bar
}

/// Says so when an engine error means the server holds the directory.
fn offline_error(err: impl std::fmt::Display, locked: bool) -> CliError {
    if locked {
        anyhow::anyhow!(
            "{err}: the data directory is in use; stop `aerolith serve` first (offline commands need it closed)"
        )
        .into()
    } else {
        anyhow::anyhow!("{err}").into()
    }
}

fn tenancy_error(err: aerolith_tenancy::OfflineError) -> CliError {
    let locked = matches!(
        &err,
        aerolith_tenancy::OfflineError::Engine {
            source: aerolith_core::Error::Locked { .. },
            ..
        }
    );
    offline_error(err, locked)
}

fn billing_error(path: &Path, err: aerolith_core::Error) -> CliError {
    let locked = matches!(err, aerolith_core::Error::Locked { .. });
    offline_error(format!("billing ({}): {err}", path.display()), locked)
}

/// The master key of `data_dir`, as the core type.
fn offline_master_key(
    data_dir: &Path,
    env: &HashMap<String, String>,
) -> Result<aerolith_core::MasterKey, CliError> {
    if !data_dir.is_dir() {
        return Err(anyhow::anyhow!("{} is not a directory", data_dir.display()).into());
    }
    let key = secrets::load_master_key(data_dir, env).map_err(anyhow::Error::from)?;
    Ok(aerolith_core::MasterKey::from_bytes(*key.as_bytes()))
}

/// `aerolith verify`: the config file and the secret files, then every
/// record of every engine (system, shared, dedicated tenants, billing) and
/// every audit chain. The first failure ends it with its file and offset.
fn verify(data_dir: &Path, env: &HashMap<String, String>) -> Result<(), CliError> {
    let master_key = offline_master_key(data_dir, env)?;
    let config_file = data_dir.join(CONFIG_FILE_NAME);
    if config_file.is_file() {
        ConfigLayer::from_file(&config_file).map_err(anyhow::Error::from)?;
        println!("ok   config file {}", config_file.display());
    }
    if env.contains_key(secrets::ENV_MASTER_KEY) {
        println!("ok   master key (from {})", secrets::ENV_MASTER_KEY);
    } else {
        secrets::verify_files(data_dir).map_err(anyhow::Error::from)?;
        println!("ok   secret files (present, mode 0600, well formed)");
    }
    let bar = engine_progress();
    let report = aerolith_tenancy::verify_offline(
        &data_dir.join(crate::serve::DB_DIR),
        &master_key,
        &mut |check| {
            bar.inc(1);
            bar.set_message(check.engine.clone());
            bar.suspend(|| print_engine_check(&check.engine, &check.report));
        },
    );
    let billing_dir = data_dir.join(crate::metering::BILLING_DIR);
    let billing = report.map_err(tenancy_error).and_then(|report| {
        let options =
            crate::metering::billing_db_options(&master_key, Arc::new(aerolith_core::SystemClock));
        let billing = aerolith_core::Database::verify_offline(&billing_dir, &options)
            .map_err(|err| billing_error(&billing_dir, err))?;
        bar.inc(1);
        Ok((report, billing))
    });
    bar.finish_and_clear();
    let (report, billing) = billing?;
    print_engine_check("billing", &billing);
    println!("ok   {} audit chains", report.audit_chains);
    println!(
        "verified {} engines, {} records",
        report.engines.len() + 1,
        report.engines.iter().map(|e| e.report.records).sum::<u64>() + billing.records
    );
    Ok(())
}

fn print_engine_check(engine: &str, report: &aerolith_core::VerifyReport) {
    let torn = match &report.torn_tail {
        Some((path, offset)) => format!(
            "; torn tail at {} offset {offset} (a crash mid-write; the next start truncates it)",
            path.display()
        ),
        None => String::new(),
    };
    println!(
        "ok   engine {engine}: {} segments, {} records, {} bytes{torn}",
        report.segments, report.records, report.bytes
    );
}

/// `aerolith compact`: compacts every engine of `data_dir` offline.
fn compact(data_dir: &Path, env: &HashMap<String, String>) -> Result<(), CliError> {
    let master_key = offline_master_key(data_dir, env)?;
    let bar = engine_progress();
    let compacted = aerolith_tenancy::compact_offline(
        &data_dir.join(crate::serve::DB_DIR),
        &master_key,
        &mut |engine, _| {
            bar.inc(1);
            bar.set_message(engine.to_owned());
        },
    )
    .map_err(tenancy_error)
    .and_then(|mut reports| {
        let billing_dir = data_dir.join(crate::metering::BILLING_DIR);
        let options =
            crate::metering::billing_db_options(&master_key, Arc::new(aerolith_core::SystemClock));
        let mut options = options;
        options.create_if_missing = false;
        let db = aerolith_core::Database::open(&billing_dir, options)
            .map_err(|err| billing_error(&billing_dir, err))?;
        let report = db.compact();
        db.close().map_err(|err| billing_error(&billing_dir, err))?;
        reports.push((
            "billing".to_owned(),
            report.map_err(|err| billing_error(&billing_dir, err))?,
        ));
        bar.inc(1);
        Ok(reports)
    });
    bar.finish_and_clear();
    let engines: Vec<Value> = compacted?
        .into_iter()
        .map(|(engine, report)| json!({"engine": engine, "report": report}))
        .collect();
    print(json!({"compacted": engines}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(seg("t_1-a.b~"), "t_1-a.b~");
        assert_eq!(seg("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn serve_flags_parse() {
        let cli = Cli::try_parse_from([
            "aerolith",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/tmp/x",
        ])
        .expect("parses");
        match cli.command {
            Command::Serve(args) => {
                assert_eq!(args.listen.map(|a| a.port()), Some(0));
                assert_eq!(args.data_dir, Some(PathBuf::from("/tmp/x")));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
