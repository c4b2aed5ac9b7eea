//! The real `aerolith` binary end to end: first start on a fresh data
//! directory prints a working admin key and creates 0600 key files; SIGTERM
//! exits 0; a second start on the same directory does not print a key; a
//! taken port is a clear error; the CLI prints API errors readably; offline
//! verify checks the secret files first.

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use aerolith_server::{AdminClient, ClientError};

const BIN: &str = env!("CARGO_BIN_EXE_aerolith");
/// Polling bounds while waiting for the server: 500 x 20 ms.
const POLL_ATTEMPTS_MAX: u32 = 500;
const POLL_INTERVAL_MS: u64 = 20;

pub(crate) struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
    pub(crate) url: String,
    pub(crate) admin_key: Option<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion must not leave the server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    for var in [
        "AEROLITH_ADMIN_KEY",
        "AEROLITH_MASTER_KEY",
        "AEROLITH_LISTEN",
        "AEROLITH_DATA_DIR",
        "AEROLITH_CONFIG",
        "AEROLITH_SERVER",
    ] {
        command.env_remove(var);
    }
    command.env("AEROLITH_LOG", "warn");
    command
}

/// Starts `aerolith serve` on an OS-chosen port with `data_dir`.
pub(crate) fn start(data_dir: &Path) -> Running {
    spawn(command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().expect("utf-8 path"),
    ]))
}

/// Starts `aerolith serve` like [`start`], with extra environment variables.
pub(crate) fn start_with_env(data_dir: &Path, vars: &[(&str, &str)]) -> Running {
    let mut command = command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().expect("utf-8 path"),
    ]);
    command.envs(vars.iter().copied());
    spawn(command)
}

/// Spawns a `serve` command and reads its first two start-up lines: the
/// address and the data directory. The admin key lines, if any, follow.
fn spawn(mut command: Command) -> Running {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first line");
    let url = line
        .trim()
        .split_once(" listening on ")
        .map(|(_, url)| url.to_owned())
        .unwrap_or_else(|| {
            let mut stderr = String::new();
            let _ = child
                .stderr
                .take()
                .map(|mut e| e.read_to_string(&mut stderr));
            panic!("unexpected first line {line:?}; stderr: {stderr}")
        });
    line.clear();
    stdout.read_line(&mut line).expect("data dir line");
    assert!(line.starts_with("data directory: "), "{line:?}");
    Running {
        child,
        stdout,
        url,
        admin_key: None,
    }
}

pub(crate) fn read_admin_key(running: &mut Running) {
    let mut notice = String::new();
    running.stdout.read_line(&mut notice).expect("notice line");
    assert!(notice.starts_with("first start:"), "{notice:?}");
    let mut line = String::new();
    running.stdout.read_line(&mut line).expect("key line");
    let key = line
        .trim()
        .strip_prefix("admin key: ")
        .unwrap_or_else(|| panic!("no admin key line: {line:?}"));
    assert!(key.starts_with("adm_"), "{key}");
    running.admin_key = Some(key.to_owned());
}

pub(crate) fn wait_healthy(url: &str) {
    let client = AdminClient::new(url, None);
    for _ in 0..POLL_ATTEMPTS_MAX {
        if client.get("/healthz").is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
    panic!("{url}/healthz never answered");
}

/// Sends SIGTERM and waits (bounded) for the exit status; returns the rest
/// of stdout.
pub(crate) fn terminate(mut running: Running) -> (std::process::ExitStatus, String) {
    let pid = running.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    for _ in 0..POLL_ATTEMPTS_MAX {
        if let Some(status) = running.child.try_wait().expect("try_wait") {
            let mut rest = String::new();
            running
                .stdout
                .read_to_string(&mut rest)
                .expect("stdout drains");
            return (status, rest);
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
    panic!("server did not exit after SIGTERM");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn first_start_prints_a_working_admin_key_once_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");

    let mut first = start(&data_dir);
    read_admin_key(&mut first);
    let key = first.admin_key.clone().expect("key read");
    wait_healthy(&first.url);

    assert_eq!(mode(&data_dir.join("admin-key.blake3")), 0o600);
    assert_eq!(mode(&data_dir.join("master.key")), 0o600);
    let stored = std::fs::read_to_string(data_dir.join("admin-key.blake3")).expect("read");
    assert!(!stored.contains(&key), "only the hash is stored");

    let operator = AdminClient::new(&first.url, Some(key.clone()));
    let whoami = operator
        .get("/v1/admin/whoami")
        .expect("admin key accepted");
    assert_eq!(whoami["principal"], "operator");
    let ready = operator.get("/readyz").expect("ready");
    assert_eq!(ready["status"], "ready");

    let stranger = AdminClient::new(&first.url, Some("adm_not_the_key".to_owned()));
    match stranger.get("/v1/admin/whoami") {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (401, "unauthenticated"));
        }
        other => panic!("expected 401, got {other:?}"),
    }

    // A second server on the same port is refused with a clear message.
    let addr = first.url.trim_start_matches("http://").to_owned();
    let other_dir = dir.path().join("other");
    let clash = command(&[
        "serve",
        "--listen",
        &addr,
        "--data-dir",
        other_dir.to_str().expect("utf-8 path"),
    ])
    .output()
    .expect("runs");
    assert!(!clash.status.success());
    let stderr = String::from_utf8_lossy(&clash.stderr);
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(
        !other_dir.join("admin-key.blake3").exists(),
        "a start that cannot listen generates no key it could not print"
    );

    // The CLI reports an API error readably.
    let cli = command(&[
        "tenant",
        "get",
        "no-such-tenant",
        "--server",
        &first.url,
        "--admin-key",
        &key,
    ])
    .output()
    .expect("runs");
    assert_eq!(cli.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(
        stderr.contains("error: not_found (404): tenant \"no-such-tenant\" not found"),
        "{stderr}"
    );

    let (status, rest) = terminate(first);
    assert!(status.success(), "exit status {status:?}");
    assert!(!rest.contains("admin key"), "{rest}");

    let second = start(&data_dir);
    wait_healthy(&second.url);
    let operator = AdminClient::new(&second.url, Some(key));
    operator
        .get("/v1/admin/whoami")
        .expect("the first key still works");
    let (status, rest) = terminate(second);
    assert!(status.success(), "exit status {status:?}");
    assert!(
        !rest.contains("admin key"),
        "second start prints no key: {rest}"
    );
}

#[test]
fn environment_and_config_file_settings_reach_the_running_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("aerolith.toml"),
        "request_body_bytes_max = 10\nlisten_addr = \"127.0.0.1:7070\"\n",
    )
    .expect("config written");
    // No flags: the data directory and the listen address come from the
    // environment (which beats the file's listen_addr), the body limit from
    // <data_dir>/aerolith.toml.
    let mut serve = command(&["serve"]);
    serve
        .env("AEROLITH_DATA_DIR", dir.path())
        .env("AEROLITH_LISTEN", "127.0.0.1:0");
    let mut running = spawn(serve);
    assert!(!running.url.ends_with(":7070"), "{}", running.url);
    wait_healthy(&running.url);
    let client = AdminClient::new(&running.url, None);
    match client.post(
        "/healthz",
        &serde_json::json!({"padding": "more than ten bytes"}),
    ) {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (413, "payload_too_large"));
        }
        other => panic!("expected 413, got {other:?}"),
    }
    read_admin_key(&mut running);
    let (status, _) = terminate(running);
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let output = command(&["frobnicate"]).output().expect("runs");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn offline_verify_checks_the_secret_files_and_needs_the_databases() {
    let dir = tempfile::tempdir().expect("temp dir");
    aerolith_server::secrets::load_or_create(dir.path(), &Default::default()).expect("secrets");
    let data_dir = dir.path().to_str().expect("utf-8");
    let output = command(&["verify", "--data-dir", data_dir])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ok   secret files"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no database at"), "{stderr}");

    let master = dir.path().join("master.key");
    std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = command(&["verify", "--data-dir", data_dir])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("must be 600"), "{stderr}");
}
