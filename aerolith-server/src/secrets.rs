//! The operator's secrets: the admin key that manages tenants and the master
//! key the engine derives every per-database encryption key from.
//!
//! On first start both are generated from the operating system's random
//! source and written into the data directory with mode 0600 (written to a
//! temporary file, fsynced, renamed, directory fsynced, so a crash never
//! leaves half a key). The admin key itself is never stored: only its blake3
//! hash is, and the plain key is handed back once so the caller can print it.
//! Presented keys are compared with the stored hash in constant time.
//! `AEROLITH_ADMIN_KEY` and `AEROLITH_MASTER_KEY` override the files.

use std::collections::HashMap;
use std::fmt;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::TryRngCore as _;
use subtle::ConstantTimeEq as _;

/// File in the data directory holding the blake3 hash of the admin key.
pub const ADMIN_KEY_HASH_FILE: &str = "admin-key.blake3";
/// File in the data directory holding the master key (base64url).
pub const MASTER_KEY_FILE: &str = "master.key";
/// Environment variable overriding the admin key.
pub const ENV_ADMIN_KEY: &str = "AEROLITH_ADMIN_KEY";
/// Environment variable overriding the master key (base64url of 32 bytes).
pub const ENV_MASTER_KEY: &str = "AEROLITH_MASTER_KEY";
/// Prefix of every generated admin key, so a leaked key is recognisable.
pub const ADMIN_KEY_PREFIX: &str = "adm_";
/// Random bytes in a generated admin key (256 bits).
pub const ADMIN_KEY_RANDOM_BYTES: usize = 32;
/// Shortest admin key accepted from the environment.
pub const ADMIN_KEY_LEN_MIN: usize = 32;
/// Length of the master key in bytes.
pub const MASTER_KEY_BYTES: usize = 32;
/// Permission bits a secret file must have (owner read/write only).
pub const SECRET_FILE_MODE: u32 = 0o600;

const ADMIN_HASH_TAG: &str = "blake3:";

/// Why the secrets could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// Reading, writing or creating a file or directory failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`create directory`, `read`, `write`).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A secret file is readable or writable by group or others.
    #[error("{path} has permissions {mode:o}, must be 600 (run `chmod 600 {path}`)")]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A secret file does not hold what it should.
    #[error("{path} is malformed: {expected}")]
    MalformedFile {
        /// The file.
        path: PathBuf,
        /// What it should contain.
        expected: &'static str,
    },
    /// An environment variable holds an unusable secret.
    #[error("environment variable {var} is unusable: {expected}")]
    InvalidEnv {
        /// The variable name.
        var: &'static str,
        /// What it should contain.
        expected: &'static str,
    },
    /// The operating system's random source failed.
    #[error("cannot read random bytes from the operating system: {detail}")]
    Random {
        /// The error as reported.
        detail: String,
    },
}

/// The blake3 hash of the admin key; the only form the server keeps.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminKeyHash([u8; 32]);

impl AdminKeyHash {
    /// Hashes a plain admin key.
    pub fn of(key: &str) -> AdminKeyHash {
        AdminKeyHash(*blake3::hash(key.as_bytes()).as_bytes())
    }

    /// Whether `presented` is the admin key. The hashes are compared in
    /// constant time, so timing reveals nothing about the stored hash.
    pub fn verify(&self, presented: &str) -> bool {
        let presented = blake3::hash(presented.as_bytes());
        bool::from(self.0.ct_eq(presented.as_bytes()))
    }
}

impl fmt::Debug for AdminKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminKeyHash(..)")
    }
}

/// The 32-byte master key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; MASTER_KEY_BYTES]);

impl MasterKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; MASTER_KEY_BYTES]) -> MasterKey {
        MasterKey(bytes)
    }

    /// The raw key bytes, for the engine's key derivation.
    pub fn as_bytes(&self) -> &[u8; MASTER_KEY_BYTES] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// The loaded secrets.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// Hash of the admin key, to check presented keys against.
    pub admin_key_hash: AdminKeyHash,
    /// The master key.
    pub master_key: MasterKey,
    /// The plain admin key, present only when it was generated by this call
    /// (first start): the caller prints it once, then it is gone.
    pub generated_admin_key: Option<String>,
    /// Whether the master key was generated by this call (no file, no
    /// environment variable): existing data cannot have been written with it.
    pub generated_master_key: bool,
}

/// Loads the secrets from `data_dir`, creating the directory and any missing
/// secret file. Variables in `env` ([`ENV_ADMIN_KEY`], [`ENV_MASTER_KEY`])
/// take precedence over the files, and a secret given that way is not written.
pub fn load_or_create(
    data_dir: &Path,
    env: &HashMap<String, String>,
) -> Result<Secrets, SecretsError> {
    create_data_dir(data_dir)?;
    let (admin_key_hash, generated_admin_key) = admin_key(data_dir, env)?;
    let (master_key, generated_master_key) = master_key(data_dir, env)?;
    Ok(Secrets {
        admin_key_hash,
        master_key,
        generated_admin_key,
        generated_master_key,
    })
}

/// Checks the secret files of an existing data directory without creating
/// anything: both present, mode 0600, well formed.
pub fn verify_files(data_dir: &Path) -> Result<(), SecretsError> {
    parse_admin_hash_file(&data_dir.join(ADMIN_KEY_HASH_FILE))?;
    parse_master_key_file(&data_dir.join(MASTER_KEY_FILE))?;
    Ok(())
}

/// The master key of an existing data directory, for the offline commands:
/// [`ENV_MASTER_KEY`] if set, else the key file, which must exist (nothing
/// is created).
pub fn load_master_key(
    data_dir: &Path,
    env: &HashMap<String, String>,
) -> Result<MasterKey, SecretsError> {
    if let Some(text) = env.get(ENV_MASTER_KEY) {
        return decode_master_key(text).ok_or(SecretsError::InvalidEnv {
            var: ENV_MASTER_KEY,
            expected: "base64url (no padding) of exactly 32 bytes",
        });
    }
    parse_master_key_file(&data_dir.join(MASTER_KEY_FILE))
}

/// Generates a new admin key: `adm_` followed by 256 random bits in base64url.
pub fn generate_admin_key() -> Result<String, SecretsError> {
    let bytes = random_bytes::<ADMIN_KEY_RANDOM_BYTES>()?;
    Ok(format!(
        "{ADMIN_KEY_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes)
    ))
}

fn create_data_dir(data_dir: &Path) -> Result<(), SecretsError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|source| SecretsError::Io {
            action: "create directory",
            path: data_dir.to_owned(),
            source,
        })
}

fn admin_key(
    data_dir: &Path,
    env: &HashMap<String, String>,
) -> Result<(AdminKeyHash, Option<String>), SecretsError> {
    if let Some(key) = env.get(ENV_ADMIN_KEY).map(|k| k.trim()) {
        if key.len() < ADMIN_KEY_LEN_MIN {
            return Err(SecretsError::InvalidEnv {
                var: ENV_ADMIN_KEY,
                expected: "a key of at least 32 characters",
            });
        }
        return Ok((AdminKeyHash::of(key), None));
    }
    let path = data_dir.join(ADMIN_KEY_HASH_FILE);
    if path.exists() {
        return Ok((parse_admin_hash_file(&path)?, None));
    }
    let key = generate_admin_key()?;
    let hash = AdminKeyHash::of(&key);
    let text = format!("{ADMIN_HASH_TAG}{}\n", blake3::Hash::from(hash.0).to_hex());
    write_secret_file(&path, text.as_bytes())?;
    Ok((hash, Some(key)))
}

/// The master key, and whether it was generated just now.
fn master_key(
    data_dir: &Path,
    env: &HashMap<String, String>,
) -> Result<(MasterKey, bool), SecretsError> {
    if let Some(text) = env.get(ENV_MASTER_KEY) {
        let key = decode_master_key(text).ok_or(SecretsError::InvalidEnv {
            var: ENV_MASTER_KEY,
            expected: "base64url (no padding) of exactly 32 bytes",
        })?;
        return Ok((key, false));
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    if path.exists() {
        return Ok((parse_master_key_file(&path)?, false));
    }
    let key = MasterKey(random_bytes::<MASTER_KEY_BYTES>()?);
    let text = format!("{}\n", URL_SAFE_NO_PAD.encode(key.0));
    write_secret_file(&path, text.as_bytes())?;
    Ok((key, true))
}

fn decode_master_key(text: &str) -> Option<MasterKey> {
    let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
    let bytes: [u8; MASTER_KEY_BYTES] = bytes.try_into().ok()?;
    Some(MasterKey(bytes))
}

fn parse_admin_hash_file(path: &Path) -> Result<AdminKeyHash, SecretsError> {
    let text = read_secret_file(path)?;
    let malformed = || SecretsError::MalformedFile {
        path: path.to_owned(),
        expected: "`blake3:` followed by 64 hex digits",
    };
    let hex = text
        .trim()
        .strip_prefix(ADMIN_HASH_TAG)
        .ok_or_else(malformed)?;
    let hash = blake3::Hash::from_hex(hex).map_err(|_| malformed())?;
    Ok(AdminKeyHash(*hash.as_bytes()))
}

fn parse_master_key_file(path: &Path) -> Result<MasterKey, SecretsError> {
    let text = read_secret_file(path)?;
    decode_master_key(&text).ok_or_else(|| SecretsError::MalformedFile {
        path: path.to_owned(),
        expected: "base64url (no padding) of exactly 32 bytes",
    })
}

/// Reads a secret file after checking nobody but the owner can read it.
fn read_secret_file(path: &Path) -> Result<String, SecretsError> {
    let io_err = |action, source| SecretsError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(|e| io_err("inspect", e))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    std::fs::read_to_string(path).map_err(|e| io_err("read", e))
}

/// Writes `contents` to `path` atomically with mode 0600: temporary file,
/// fsync, rename, fsync of the directory.
fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), SecretsError> {
    let io_err = |action, path: &Path, source| SecretsError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    // A temporary file left by a crash is garbage: it was never renamed.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("remove stale", &tmp, e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(SECRET_FILE_MODE)
        .open(&tmp)
        .map_err(|e| io_err("create", &tmp, e))?;
    file.write_all(contents)
        .map_err(|e| io_err("write", &tmp, e))?;
    file.sync_all().map_err(|e| io_err("fsync", &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| io_err("rename into", path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("fsync directory", dir, e))?;
    Ok(())
}

fn random_bytes<const N: usize>() -> Result<[u8; N], SecretsError> {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| SecretsError::Random {
            detail: e.to_string(),
        })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn first_start_generates_keys_with_mode_0600_and_returns_the_admin_key_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let first = load_or_create(&data_dir, &HashMap::new()).expect("first start");
        let key = first.generated_admin_key.clone().expect("key generated");
        assert!(key.starts_with(ADMIN_KEY_PREFIX));
        assert_eq!(key.len(), ADMIN_KEY_PREFIX.len() + 43);
        assert!(first.admin_key_hash.verify(&key));
        assert_eq!(mode_of(&data_dir.join(ADMIN_KEY_HASH_FILE)), 0o600);
        assert_eq!(mode_of(&data_dir.join(MASTER_KEY_FILE)), 0o600);
        let stored = std::fs::read_to_string(data_dir.join(ADMIN_KEY_HASH_FILE)).expect("read");
        assert!(!stored.contains(&key), "the plain key is never stored");

        let second = load_or_create(&data_dir, &HashMap::new()).expect("second start");
        assert_eq!(second.generated_admin_key, None);
        assert!(second.admin_key_hash.verify(&key));
        assert_eq!(second.master_key, first.master_key);
        verify_files(&data_dir).expect("files verify");
    }

    #[test]
    fn wrong_admin_key_is_refused() {
        let hash = AdminKeyHash::of("adm_right");
        assert!(!hash.verify("adm_wrong"));
        assert!(!hash.verify(""));
        assert!(hash.verify("adm_right"));
    }

    #[test]
    fn secret_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        load_or_create(dir.path(), &HashMap::new()).expect("first start");
        let path = dir.path().join(MASTER_KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = load_or_create(dir.path(), &HashMap::new()).expect_err("loose mode");
        assert!(
            matches!(err, SecretsError::InsecurePermissions { mode: 0o644, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn malformed_master_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        load_or_create(dir.path(), &HashMap::new()).expect("first start");
        let path = dir.path().join(MASTER_KEY_FILE);
        std::fs::write(&path, "short\n").expect("overwrite");
        let err = load_or_create(dir.path(), &HashMap::new()).expect_err("malformed");
        assert!(matches!(err, SecretsError::MalformedFile { .. }), "{err:?}");
    }

    #[test]
    fn environment_overrides_the_files_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let master = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let env: HashMap<String, String> = [
            (
                ENV_ADMIN_KEY.to_owned(),
                "adm_from_the_environment_0123456789".to_owned(),
            ),
            (ENV_MASTER_KEY.to_owned(), master),
        ]
        .into_iter()
        .collect();
        let secrets = load_or_create(dir.path(), &env).expect("loads");
        assert_eq!(secrets.generated_admin_key, None);
        assert!(secrets
            .admin_key_hash
            .verify("adm_from_the_environment_0123456789"));
        assert_eq!(secrets.master_key.as_bytes(), &[7u8; 32]);
        assert!(!dir.path().join(ADMIN_KEY_HASH_FILE).exists());
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
    }

    #[test]
    fn short_admin_key_from_environment_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env: HashMap<String, String> = [(ENV_ADMIN_KEY.to_owned(), "short".to_owned())]
            .into_iter()
            .collect();
        let err = load_or_create(dir.path(), &env).expect_err("too short");
        assert!(
            matches!(
                err,
                SecretsError::InvalidEnv {
                    var: ENV_ADMIN_KEY,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn master_key_of_wrong_length_from_environment_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env: HashMap<String, String> =
            [(ENV_MASTER_KEY.to_owned(), URL_SAFE_NO_PAD.encode([1u8; 31]))]
                .into_iter()
                .collect();
        let err = load_or_create(dir.path(), &env).expect_err("31 bytes");
        assert!(
            matches!(
                err,
                SecretsError::InvalidEnv {
                    var: ENV_MASTER_KEY,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let key = MasterKey::from_bytes([0xAB; 32]);
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
        assert_eq!(format!("{:?}", AdminKeyHash::of("x")), "AdminKeyHash(..)");
    }
}
