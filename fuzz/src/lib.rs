//! The code paths the fuzz targets drive, one function per target, kept in
//! one file so that the fuzzer (`fuzz_targets/*.rs`) and the corpus-replay
//! test in the main workspace (`tests/fuzz_corpus.rs`, which includes this
//! file with `#[path]`) run exactly the same code. Each function must return
//! normally for every input; a panic, abort or hang is a finding.
//!
//! Depends only on the four Aerolith crates, `blake3`, `rand`, `serde_json`
//! and `tempfile`, which both the fuzz crate and the main workspace's facade
//! package (as dev-dependencies) provide.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use aerolith_billing::payment::crypto::{SolanaAddress, TronAddress};
use aerolith_billing::payment::webhook::{self, WebhookError, WebhookVerifier};
use aerolith_billing::Catalog;
use aerolith_core::{Database, Durability, ManualClock, Options, Query, RecoveryMode};
use aerolith_server::fuzzing::{decode_route_body, ROUTE_BODIES};
use aerolith_server::{check_json_depth, ApiError, BadRequestReason};
use aerolith_tenancy::{
    parse_api_key, ApiKeys, KeyId, MemoryApiKeyStore, NewApiKey, Role, Slug, TenantId, TokenError,
    TokenSigner, TOKEN_LIFETIME_MS_MAX,
};
use rand::SeedableRng;
use serde_json::{json, Value};

/// The collection the template database holds.
pub const TEMPLATE_COLLECTION: &str = "fuzz";

/// Magic at the start of every log frame (see `docs/format.md`).
const FRAME_MAGIC: [u8; 4] = [0xA7, b'L', b'R', b'1'];
/// Bytes of a segment file's header.
const SEGMENT_HEADER_BYTES: usize = 32;
/// Bytes of a frame's header: magic, body length, checksum.
const FRAME_HEADER_BYTES: usize = 24;

/// Wraps `body` in a frame with a correct checksum, so that fuzzed bodies
/// get past the checksum and reach the operation decoder and replay.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len())
        .expect("fuzz inputs are far below 4 GiB")
        .to_le_bytes();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&len);
    hasher.update(body);
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&len);
    out.extend_from_slice(&hasher.finalize().as_bytes()[..16]);
    out.extend_from_slice(body);
    out
}

/// Decodes the bytes as one log frame and its operation, then decodes them
/// again as the body of a correctly checksummed frame (`record_decode`).
/// Returns whether the bytes were a valid frame.
pub fn record_decode(data: &[u8]) -> bool {
    let as_frame = aerolith_core::fuzzing::decode_record(data);
    let _ = aerolith_core::fuzzing::decode_record(&frame(data));
    as_frame
}

/// Decodes the bytes as a whole checkpoint file (and every item it lists);
/// as a plain checkpoint directory (which must re-encode to the same bytes
/// if it decodes); as that directory in a file with a correct hash and no
/// items, which may decode only if the directory does and lists no item
/// bytes; as a block of an id table (every entry it decodes must be found
/// by the in-place search); and as an index's entries
/// (`checkpoint_decode`). Returns whether any decoded.
pub fn checkpoint_decode(data: &[u8]) -> bool {
    use aerolith_core::fuzzing::{
        checkpoint_file_of_directory, decode_checkpoint, decode_checkpoint_block,
        decode_checkpoint_directory, decode_checkpoint_index,
    };
    let as_file = decode_checkpoint(data);
    let as_directory = decode_checkpoint_directory(data);
    let in_file = decode_checkpoint(&checkpoint_file_of_directory(data));
    assert!(
        !in_file || as_directory == Some(0),
        "a directory decodes inside a file only if it decodes alone and lists no item bytes"
    );
    let as_block = decode_checkpoint_block(data);
    let as_index = decode_checkpoint_index(data);
    as_file || as_directory.is_some() || as_block || as_index
}

/// Parses the bytes as JSON and validates them as a document
/// (`document_validate`). Returns whether the document is valid.
pub fn document_validate(data: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(data) {
        Ok(doc) => aerolith_core::limits::validate_document(&doc).is_ok(),
        Err(_) => false,
    }
}

/// Parses the bytes as JSON, then as a query spec and as a bare filter
/// (`query_parse`). Returns whether either parse succeeded.
pub fn query_parse(data: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(data) {
        Ok(spec) => {
            let as_spec = Query::from_json(&spec).is_ok();
            let as_filter = Query::filter(&spec).is_ok();
            as_spec || as_filter
        }
        Err(_) => false,
    }
}

/// The files of a small real database, produced by the engine: the meta
/// file, the manifest and its single segment.
pub struct TemplateFiles {
    /// `(file name, bytes)` of every file except the segment and the lock.
    pub fixed: Vec<(String, Vec<u8>)>,
    /// The segment's file name (the one the manifest lists).
    pub segment_name: String,
    /// The segment's bytes: a valid log, usable as a seed.
    pub segment: Vec<u8>,
}

/// Builds the template database once per process.
pub fn template_files() -> &'static TemplateFiles {
    static TEMPLATE: OnceLock<TemplateFiles> = OnceLock::new();
    TEMPLATE.get_or_init(build_template)
}

fn build_template() -> TemplateFiles {
    let dir = tempfile::tempdir().expect("temp dir for the template database");
    let db = Database::open(dir.path(), Options::default().durability(Durability::Never))
        .expect("a fresh template database opens");
    db.create_collection(TEMPLATE_COLLECTION)
        .expect("template collection");
    db.create_index(TEMPLATE_COLLECTION, "kind", false)
        .expect("template index");
    for i in 0..4 {
        db.insert(
            TEMPLATE_COLLECTION,
            json!({"_id": format!("d{i}"), "kind": i % 2, "tags": ["a", {"n": i}]}),
        )
        .expect("template insert");
    }
    db.delete(TEMPLATE_COLLECTION, "d3")
        .expect("template delete");
    db.patch(
        TEMPLATE_COLLECTION,
        "d0",
        json!({"kind": null, "extra": 1.5}),
    )
    .expect("template patch");
    db.close().expect("template close");
    drop(db);

    let mut fixed = Vec::new();
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("template dir is readable") {
        let entry = entry.expect("template dir entry");
        let name = entry
            .file_name()
            .into_string()
            .expect("engine file names are UTF-8");
        let bytes = std::fs::read(entry.path()).expect("template file is readable");
        if name.starts_with("seg-") {
            segments.push((name, bytes));
        } else if name != "LOCK" {
            fixed.push((name, bytes));
        }
    }
    assert_eq!(
        segments.len(),
        1,
        "the template database fits in one segment"
    );
    let (segment_name, segment) = segments.pop().expect("one segment");
    TemplateFiles {
        fixed,
        segment_name,
        segment,
    }
}

/// Writes the template's meta file and manifest plus `segment` as its
/// segment file into `dir`.
fn lay_out(dir: &Path, segment: &[u8]) {
    let template = template_files();
    for (name, bytes) in &template.fixed {
        std::fs::write(dir.join(name), bytes).expect("write template file");
    }
    std::fs::write(dir.join(&template.segment_name), segment).expect("write fuzzed segment");
}

/// Reads everything an opened database will show, so that damage accepted
/// by recovery is also exercised by the read path.
fn read_everything(db: &Database) {
    let _ = db.stats();
    for collection in db.list_collections() {
        let _ = db.collection_stats(&collection);
        let _ = db.list_indexes(&collection);
        if let Ok(docs) = db.find(&collection, &Query::default()) {
            for doc in docs {
                if let Some(id) = doc.get("_id").and_then(Value::as_str) {
                    let _ = db.get(&collection, id);
                }
            }
        }
        if let Ok(q) = Query::filter(&json!({"kind": 1})) {
            let _ = db.find(&collection, &q);
        }
    }
    let _ = db.close();
}

/// Opens a database whose only segment holds `data` (`recovery`): strict
/// first, then in salvage mode on a fresh copy. Returns whether the strict
/// open succeeded.
pub fn recovery(data: &[u8]) -> bool {
    let strict_ok = open_with(data, RecoveryMode::Strict);
    if !strict_ok {
        open_with(data, RecoveryMode::Salvage);
    }
    strict_ok
}

/// Builds a segment from the template's header and the bodies in `data`,
/// each framed with a correct checksum, then recovers it like [`recovery`]
/// (`recovery_framed`). `data` is a sequence of `len u16 LE | body`
/// chunks; a short last chunk takes what is left. This reaches replay with
/// arbitrary operations, which checksums keep raw fuzzed files from doing.
pub fn recovery_framed(data: &[u8]) -> bool {
    recovery(&segment_of_bodies(data))
}

/// The segment `recovery_framed` builds from `data`.
pub fn segment_of_bodies(data: &[u8]) -> Vec<u8> {
    let mut segment = template_files().segment[..SEGMENT_HEADER_BYTES].to_vec();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let body = &rest[2..(2 + len).min(rest.len())];
        segment.extend_from_slice(&frame(body));
        rest = &rest[2 + body.len()..];
    }
    segment
}

/// The inverse of [`segment_of_bodies`] for an engine-written segment:
/// its frame bodies as `len u16 LE | body` chunks (for seeds).
pub fn bodies_of(segment: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames_of(segment) {
        let body = &frame[FRAME_HEADER_BYTES..];
        let len = u16::try_from(body.len()).expect("template records are small");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
    }
    out
}

fn open_with(data: &[u8], mode: RecoveryMode) -> bool {
    let dir = tempfile::tempdir().expect("temp dir for a fuzzed database");
    lay_out(dir.path(), data);
    let options = Options::default()
        .durability(Durability::Never)
        .recovery(mode)
        .must_exist();
    match Database::open(dir.path(), options) {
        Ok(db) => {
            read_everything(&db);
            true
        }
        Err(_) => false,
    }
}

/// Splits a segment produced by the engine into its frames (header of 32
/// bytes, then `magic 4 | body_len u32 LE | checksum 16 | body`), for seeds.
pub fn frames_of(segment: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES;
    while at + FRAME_HEADER_BYTES <= segment.len() {
        let len_bytes: [u8; 4] = segment[at + 4..at + 8].try_into().expect("four bytes");
        let end = at + FRAME_HEADER_BYTES + u32::from_le_bytes(len_bytes) as usize;
        if end > segment.len() {
            break;
        }
        frames.push(segment[at..end].to_vec());
        at = end;
    }
    frames
}

/// Reads fixed-size fields off the front of a fuzz input; past the end every
/// field reads as zeros, so short inputs still drive the whole target.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(data: &'a [u8]) -> Self {
        Fields { rest: data }
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.rest.len());
        out[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        out
    }

    fn byte(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    fn rest(self) -> &'a [u8] {
        self.rest
    }
}

/// Applies edits read from `edits` (`op | position | byte` triples:
/// replace, insert or delete at `position` modulo the length) to `text`.
fn mutate(text: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut out = text.to_vec();
    for edit in edits.chunks_exact(3) {
        let (op, position, byte) = (edit[0] % 3, usize::from(edit[1]), edit[2]);
        match op {
            0 if !out.is_empty() => {
                let at = position % out.len();
                out[at] = byte;
            }
            1 => {
                let at = position % (out.len() + 1);
                out.insert(at, byte);
            }
            _ if !out.is_empty() => {
                let at = position % out.len();
                out.remove(at);
            }
            _ => {}
        }
    }
    out
}

/// The server secret the `credentials` target signs tokens with.
const TOKEN_SECRET: [u8; 32] = *b"aerolith fuzz token secret 32 b.";
/// Slug used when the input's slug is not a valid one.
const FALLBACK_SLUG: &str = "acme";

/// API keys and session tokens (`credentials`). The input, as text, goes
/// through `parse_api_key`, key authentication and token verification; any
/// key that parses must name its slug verbatim and only the one key in the
/// store authenticates; any token that verifies must be re-issued to the same
/// text. Then the input, read as fields, creates a key and issues a token:
/// both must verify with their exact claims, and the `op | pos | byte` edits
/// at the end of the input, applied to either text, must never produce
/// another text that verifies. Returns whether the input text was a
/// well-formed API key or a token that verified.
pub fn credentials(data: &[u8]) -> bool {
    let mut fields = Fields::new(data);
    let slug_len = usize::from(fields.byte() % 48);
    let slug_bytes = fields.array::<48>();
    let key_seed = fields.array::<32>();
    let tenant = TenantId::new(u64::from_be_bytes(fields.array()));
    let key_id = KeyId::from_u128(u128::from_be_bytes(fields.array()));
    let role = Role::ALL[usize::from(fields.byte() % 4)];
    let issued_unix_ms = i64::from_be_bytes(fields.array());
    let lifetime_raw_ms = u64::from_be_bytes(fields.array());
    let edits = fields.rest();

    let slug = std::str::from_utf8(&slug_bytes[..slug_len])
        .ok()
        .and_then(|text| Slug::new(text).ok())
        .unwrap_or_else(|| Slug::new(FALLBACK_SLUG).expect("the fallback slug is valid"));
    let clock = Arc::new(ManualClock::new(issued_unix_ms));
    let keys = ApiKeys::new(MemoryApiKeyStore::new(), clock.clone());
    let new_key = NewApiKey {
        tenant,
        slug: slug.clone(),
        role,
        expires_unix_ms: None,
    };
    let created = keys
        .create_with_rng(new_key, &mut rand::rngs::StdRng::from_seed(key_seed))
        .expect("a key without expiry is always created");
    let key_text = created.secret.expose();
    let parsed = parse_api_key(key_text).expect("a created key parses");
    assert_eq!(parsed.slug, slug, "the key names its tenant's slug");
    let authenticated = keys
        .authenticate(key_text)
        .expect("a created key authenticates");
    assert_eq!(authenticated, created.record);

    let signer = TokenSigner::new(&TOKEN_SECRET, clock.clone());

    // The whole input as text.
    let text = String::from_utf8_lossy(data);
    let mut accepted = false;
    if let Ok(parsed) = parse_api_key(&text) {
        accepted = true;
        let after_prefix = text
            .strip_prefix("ak_")
            .expect("a parsed key has the prefix");
        assert!(after_prefix.starts_with(&format!("{}_", parsed.slug)));
    }
    if keys.authenticate(&text).is_ok() {
        assert_eq!(text, key_text, "only the stored key authenticates");
    }
    if let Ok(claims) = signer.verify(&text, None) {
        accepted = true;
        let lifetime_ms = claims
            .expires_unix_ms
            .checked_sub(claims.issued_unix_ms)
            .and_then(|ms| u64::try_from(ms).ok())
            .expect("a verified token expires after it was issued");
        let reissuer = TokenSigner::new(
            &TOKEN_SECRET,
            Arc::new(ManualClock::new(claims.issued_unix_ms)),
        );
        let (again, _) = reissuer
            .issue(claims.tenant, claims.key_id, claims.role, lifetime_ms)
            .expect("a verified token's lifetime can be issued");
        assert_eq!(
            again.expose(),
            text,
            "a verified token re-encodes to its text"
        );
    }

    // Issuing from the input's fields.
    let in_range = (1..=TOKEN_LIFETIME_MS_MAX).contains(&lifetime_raw_ms);
    let issued = signer.issue(tenant, key_id, role, lifetime_raw_ms);
    assert_eq!(
        issued.is_ok(),
        in_range,
        "lifetimes outside the range are refused"
    );
    let lifetime_ms = 1 + lifetime_raw_ms % TOKEN_LIFETIME_MS_MAX;
    let (token, claims) = signer
        .issue(tenant, key_id, role, lifetime_ms)
        .expect("an in-range lifetime is issued");
    assert_eq!(
        (
            claims.tenant,
            claims.key_id,
            claims.role,
            claims.issued_unix_ms
        ),
        (tenant, key_id, role, issued_unix_ms)
    );
    let verified = signer.verify(token.expose(), Some(tenant));
    if issued_unix_ms < claims.expires_unix_ms {
        assert_eq!(verified, Ok(claims), "a fresh token verifies to its claims");
        let other_tenant = TenantId::new(tenant.get().wrapping_add(1));
        assert_eq!(
            signer.verify(token.expose(), Some(other_tenant)),
            Err(TokenError::WrongTenant)
        );
    } else {
        // Issued at the very end of time: the saturated expiry is now.
        assert!(matches!(verified, Err(TokenError::Expired { .. })));
    }
    clock.set_unix_ms(claims.expires_unix_ms);
    assert!(matches!(
        signer.verify(token.expose(), None),
        Err(TokenError::Expired { .. })
    ));
    clock.set_unix_ms(issued_unix_ms);
    let other_signer = TokenSigner::new(&[0x5a; 32], clock.clone());
    assert_eq!(
        other_signer.verify(token.expose(), None),
        Err(TokenError::BadSignature)
    );

    // Edited texts never verify.
    let edited_token = mutate(token.expose().as_bytes(), edits);
    if let Ok(edited) = std::str::from_utf8(&edited_token) {
        if edited != token.expose() {
            assert!(
                signer.verify(edited, None).is_err(),
                "an edited token never verifies"
            );
        }
    }
    let edited_key = mutate(key_text.as_bytes(), edits);
    if let Ok(edited) = std::str::from_utf8(&edited_key) {
        if edited != key_text {
            assert!(
                keys.authenticate(edited).is_err(),
                "an edited key never authenticates"
            );
        }
    }
    accepted
}

/// Catalog files (`catalog_load`): the bytes as TOML and as JSON. A catalog
/// that loads (parse plus validation) must serialise to both formats and
/// load back equal. Returns whether either format loaded.
pub fn catalog_load(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut loaded = false;
    for catalog in [Catalog::from_toml_str(text), Catalog::from_json_str(text)]
        .into_iter()
        .flatten()
    {
        loaded = true;
        catalog.validate().expect("a loaded catalog is valid");
        let as_json = catalog.to_json_string();
        let from_json = Catalog::from_json_str(&as_json).expect("re-serialised JSON loads");
        assert_eq!(from_json, catalog, "JSON round trip");
        let as_toml = catalog
            .to_toml_string()
            .expect("a loaded catalog serialises to TOML");
        let from_toml = Catalog::from_toml_str(&as_toml).expect("re-serialised TOML loads");
        assert_eq!(from_toml, catalog, "TOML round trip");
    }
    loaded
}

/// The secret the `webhook_verify` target's verifier holds.
const WEBHOOK_SECRET: &[u8] = b"whsec_fuzz";
/// Now, for `webhook_verify`, in Unix seconds.
const WEBHOOK_NOW_UNIX_S: i64 = 1_800_000_000;

/// Webhook signatures (`webhook_verify`). The input is `header \n payload`
/// (no newline: all header, empty payload). The header is verified against
/// the payload with a fixed secret: if it verifies, one of its `v1` values is
/// the correct HMAC for the timestamp it carries. Then a correctly signed
/// header for the payload must verify, and must not verify for an edited
/// payload or under another secret. Returns whether the input's own header
/// verified.
pub fn webhook_verify(data: &[u8]) -> bool {
    let (header_bytes, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[data.len()..]),
    };
    let header = String::from_utf8_lossy(header_bytes);
    let clock = ManualClock::new(WEBHOOK_NOW_UNIX_S * 1_000 + 250);
    let verifier =
        WebhookVerifier::new(vec![WEBHOOK_SECRET.to_vec()]).expect("one secret is configured");
    let verified = verifier.verify(&header, payload, &clock);
    if let Ok(webhook) = &verified {
        assert_eq!(webhook.secret_index, 0);
        assert!(
            webhook.timestamp_unix_s.abs_diff(WEBHOOK_NOW_UNIX_S) <= webhook::DEFAULT_TOLERANCE_S
        );
        let correct = webhook::sign(WEBHOOK_SECRET, webhook.timestamp_unix_s, payload);
        let correct_v1 = correct
            .split_once(",v1=")
            .map(|(_, hex)| hex)
            .expect("sign writes t= then v1=");
        assert!(
            header.split(',').any(|part| part
                .trim()
                .strip_prefix("v1=")
                .is_some_and(|hex| hex.eq_ignore_ascii_case(correct_v1))),
            "a verified header carries the correct signature: {header:?}"
        );
    }

    let offset_s = i64::from(header_bytes.first().copied().unwrap_or(0)) - 128;
    let timestamp_unix_s = WEBHOOK_NOW_UNIX_S + offset_s * 4;
    let signed = webhook::sign(WEBHOOK_SECRET, timestamp_unix_s, payload);
    let within = timestamp_unix_s.abs_diff(WEBHOOK_NOW_UNIX_S) <= webhook::DEFAULT_TOLERANCE_S;
    match verifier.verify(&signed, payload, &clock) {
        Ok(webhook) => {
            assert!(within);
            assert_eq!(webhook.timestamp_unix_s, timestamp_unix_s);
        }
        Err(WebhookError::TimestampOutsideTolerance { .. }) => assert!(!within),
        Err(other) => panic!("a correctly signed webhook was refused: {other}"),
    }
    let mut edited = payload.to_vec();
    match edited.last_mut() {
        Some(last) => *last ^= 0x01,
        None => edited.push(b' '),
    }
    assert_eq!(
        verifier.verify(&signed, &edited, &clock),
        Err(WebhookError::BadSignature)
    );
    let stranger = WebhookVerifier::new(vec![b"whsec_other".to_vec()]).expect("one secret");
    assert_eq!(
        stranger.verify(&signed, payload, &clock),
        Err(WebhookError::BadSignature)
    );
    verified.is_ok()
}

/// Nesting of a JSON value (a scalar 0, `[]` 1, `[{}]` 2), without recursion.
fn json_depth(value: &Value) -> u32 {
    let mut deepest = 0;
    let mut pending = vec![(value, 0u32)];
    while let Some((value, depth)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => {
                deepest = deepest.max(depth);
                continue;
            }
        };
        deepest = deepest.max(depth + 1);
        pending.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

/// The server's JSON request bodies (`server_json_body`). The first byte
/// picks the route, the second the nesting limit, the rest is the body.
/// Decoding must never panic; a body nested deeper than the limit is always
/// refused as too deep, and for well-formed JSON the depth scan agrees
/// exactly with the parsed value's depth. Returns whether the body was
/// accepted.
pub fn server_json_body(data: &[u8]) -> bool {
    let mut fields = Fields::new(data);
    let route = ROUTE_BODIES[usize::from(fields.byte()) % ROUTE_BODIES.len()];
    let depth_max = u32::from(fields.byte());
    let body = fields.rest();
    let decoded = decode_route_body(route, body, depth_max);
    let scan = check_json_depth(body, depth_max);
    if scan.is_err() {
        assert!(
            matches!(
                decoded,
                Err(ApiError::BadRequest {
                    reason: BadRequestReason::JsonTooDeep { .. }
                })
            ),
            "a body over the depth limit is refused as too deep: {decoded:?}"
        );
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        assert_eq!(
            scan.is_ok(),
            json_depth(&value) <= depth_max,
            "the depth scan agrees with the parsed depth"
        );
    }
    decoded.is_ok()
}

/// Crypto payment addresses (`crypto_address`): the bytes as a Solana
/// (base58) and as a Tron (base58check) address. An address that parses
/// must print back to exactly the input text. Returns whether either parsed.
pub fn crypto_address(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let solana = SolanaAddress::parse(&text);
    if let Ok(address) = &solana {
        assert_eq!(
            address.to_string(),
            text,
            "Solana addresses have one spelling"
        );
    }
    let tron = TronAddress::parse(&text);
    if let Ok(address) = &tron {
        assert_eq!(
            address.to_string(),
            text,
            "Tron addresses have one spelling"
        );
    }
    solana.is_ok() || tron.is_ok()
}
