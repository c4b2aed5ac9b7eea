//! Encryption at rest. Each log record body is sealed on its own with
//! XChaCha20-Poly1305 under a random 24-byte nonce; the record key is derived
//! from the caller's 32-byte master key and the database's random salt with
//! `blake3::derive_key`, so two databases opened with the same master key
//! still use different keys. A key-check value in the database's meta file
//! lets `open` tell a wrong key from corruption.

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// blake3 `derive_key` context for record keys. Changing it changes every key.
const RECORD_KEY_CONTEXT: &str = "aerolith-core 2026-11 database record key v1";
/// Plaintext whose keyed hash is stored as the key-check value.
const KEY_CHECK_INPUT: &[u8] = b"aerolith-core key check v1";
/// Nonce bytes stored in front of each ciphertext.
pub(crate) const NONCE_BYTES: usize = 24;
/// Poly1305 tag bytes after each ciphertext.
pub(crate) const TAG_BYTES: usize = 16;

/// A 32-byte master key from which per-database keys are derived. Its
/// `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// Wraps 32 key bytes (from a key file or a KMS).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(bytes)
    }

    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        MasterKey(bytes)
    }

    /// The raw key bytes, for storing in a key file.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derives a subkey for another purpose (for example one tenant's
    /// database), so one operator key can serve many databases.
    pub fn derive(&self, context: &str, material: &[u8]) -> MasterKey {
        let mut hasher = blake3::Hasher::new_derive_key(context);
        hasher.update(&self.0);
        hasher.update(material);
        MasterKey(*hasher.finalize().as_bytes())
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// The record cipher of one open database.
#[derive(Clone)]
pub(crate) struct RecordCipher {
    aead: XChaCha20Poly1305,
    key_check: [u8; 32],
}

/// Decryption failed: wrong key or a damaged record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecryptError;

impl RecordCipher {
    pub(crate) fn new(master: &MasterKey, salt: &[u8]) -> Self {
        let record_key = master.derive(RECORD_KEY_CONTEXT, salt);
        let key_check = *blake3::keyed_hash(record_key.as_bytes(), KEY_CHECK_INPUT).as_bytes();
        RecordCipher {
            aead: XChaCha20Poly1305::new(record_key.as_bytes().into()),
            key_check,
        }
    }

    /// The value stored in the meta file to recognise this key.
    pub(crate) fn key_check(&self) -> [u8; 32] {
        self.key_check
    }

    /// Appends `nonce || ciphertext || tag` of `plaintext` to `out`: the
    /// bytes [`Self::seal`] returns, encrypted in place.
    pub(crate) fn seal_into(&self, plaintext: &[u8], out: &mut Vec<u8>) {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        out.reserve(NONCE_BYTES + plaintext.len() + TAG_BYTES);
        out.extend_from_slice(&nonce);
        let at = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .aead
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), b"", &mut out[at..])
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        out.extend_from_slice(&tag);
    }

    /// Bytes sealing adds to a plaintext.
    pub(crate) const SEAL_OVERHEAD_BYTES: usize = NONCE_BYTES + TAG_BYTES;

    /// `nonce || ciphertext || tag`.
    pub(crate) fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.seal_into(plaintext, &mut out);
        out
    }

    /// The plaintext of a record body: `body` itself without a cipher, else
    /// `body` opened with it.
    pub(crate) fn open_body<'a>(
        cipher: Option<&RecordCipher>,
        body: &'a [u8],
    ) -> Result<std::borrow::Cow<'a, [u8]>, DecryptError> {
        match cipher {
            Some(c) => c.open(body).map(std::borrow::Cow::Owned),
            None => Ok(std::borrow::Cow::Borrowed(body)),
        }
    }

    pub(crate) fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, DecryptError> {
        if sealed.len() < NONCE_BYTES + TAG_BYTES {
            return Err(DecryptError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        self.aead
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| DecryptError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_records_open_only_with_the_same_key_and_salt() {
        let key = MasterKey::from_bytes([7; 32]);
        let cipher = RecordCipher::new(&key, b"salt-a");
        let sealed = cipher.seal(b"secret document");
        assert_eq!(cipher.open(&sealed).unwrap(), b"secret document");
        assert!(RecordCipher::new(&key, b"salt-b").open(&sealed).is_err());
        assert!(
            RecordCipher::new(&MasterKey::from_bytes([8; 32]), b"salt-a")
                .open(&sealed)
                .is_err()
        );
    }

    #[test]
    fn seal_into_appends_what_open_reads_back() {
        let cipher = RecordCipher::new(&MasterKey::from_bytes([3; 32]), b"s");
        let mut out = b"prefix".to_vec();
        cipher.seal_into(b"payload", &mut out);
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(out.len(), 6 + 7 + RecordCipher::SEAL_OVERHEAD_BYTES);
        assert_eq!(cipher.open(&out[6..]).unwrap(), b"payload");
    }

    #[test]
    fn nonces_differ_so_equal_plaintexts_differ() {
        let cipher = RecordCipher::new(&MasterKey::from_bytes([1; 32]), b"s");
        assert_ne!(cipher.seal(b"same"), cipher.seal(b"same"));
    }

    #[test]
    fn tampered_ciphertext_is_refused() {
        let cipher = RecordCipher::new(&MasterKey::from_bytes([1; 32]), b"s");
        let mut sealed = cipher.seal(b"payload");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(cipher.open(&sealed), Err(DecryptError));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let shown = format!("{:?}", MasterKey::from_bytes([0xAB; 32]));
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab"));
    }
}
