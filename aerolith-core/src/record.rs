//! The log record format: how one operation is framed on disk and decoded
//! back. Pure functions over byte slices, so the decoder can be fuzzed and
//! property-tested without files. The byte layout is documented in
//! `docs/format.md`; keep the two in step.
//!
//! A frame is `magic (4) | body_len u32 LE (4) | checksum (16) | body`. The
//! checksum is the first 16 bytes of blake3 over `body_len || body`. The body
//! is an operation payload, encrypted as a whole when the database is
//! encrypted (see `crypto`).

use crate::limits::DOC_SIZE_BYTES_MAX;

/// Marks the start of every frame, so recovery can tell a torn tail from
/// valid records that follow a damaged one.
pub(crate) const FRAME_MAGIC: [u8; 4] = [0xA7, b'L', b'R', b'1'];
/// Bytes before the body: magic, length, checksum.
pub(crate) const FRAME_HEADER_BYTES: usize = 24;
const CHECKSUM_BYTES: usize = 16;
/// The largest body a frame may carry: a maximal document plus its names,
/// transaction id and encryption overhead.
pub(crate) const FRAME_BODY_BYTES_MAX: usize = DOC_SIZE_BYTES_MAX + 4096;

/// Operation kinds, stored in the low 7 bits of the first body byte.
const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_CREATE_COLLECTION: u8 = 3;
const KIND_DROP_COLLECTION: u8 = 4;
const KIND_CREATE_INDEX: u8 = 5;
const KIND_DROP_INDEX: u8 = 6;
/// Set on the last record of a transaction: the transaction is committed
/// once this record is in the log.
const COMMIT_FLAG: u8 = 0x80;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The buffer ends before the frame does (a torn write at the tail).
    Incomplete,
    /// The first four bytes are not the frame magic.
    BadMagic,
    /// The declared body length exceeds [`FRAME_BODY_BYTES_MAX`].
    TooLarge(u64),
    /// The checksum does not match the bytes.
    BadChecksum,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Incomplete => write!(f, "record is cut short"),
            FrameError::BadMagic => write!(f, "no record header"),
            FrameError::TooLarge(n) => write!(f, "record length {n} exceeds the maximum"),
            FrameError::BadChecksum => write!(f, "checksum mismatch"),
        }
    }
}

fn checksum(body_len: [u8; 4], body: &[u8]) -> [u8; CHECKSUM_BYTES] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&body_len);
    hasher.update(body);
    let full = hasher.finalize();
    let mut out = [0u8; CHECKSUM_BYTES];
    out.copy_from_slice(&full.as_bytes()[..CHECKSUM_BYTES]);
    out
}

/// Appends a frame holding `body` to `out`.
pub(crate) fn encode_frame(body: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    encode_frame_unsummed_with(out, |out| out.extend_from_slice(body));
    let len_bytes: [u8; 4] = out[start + 4..start + 8].try_into().expect("4 bytes");
    let sum = checksum(len_bytes, body);
    out[start + 8..start + FRAME_HEADER_BYTES].copy_from_slice(&sum);
}

/// Marks an encoded operation payload (from [`encode_op`]) as its
/// transaction's commit record.
pub(crate) fn mark_commit(payload: &mut [u8]) {
    payload[0] |= COMMIT_FLAG;
}

/// Appends a frame holding `body` to `out` with its checksum left as zeros:
/// [`set_checksums`] fills it in, together with other frames' (a commit
/// encodes a batch's records first, then sums them several at a time).
pub(crate) fn encode_frame_unsummed(body: &[u8], out: &mut Vec<u8>) {
    encode_frame_unsummed_with(out, |out| out.extend_from_slice(body));
}

/// [`encode_frame_unsummed`] for a body that `write_body` appends to `out`
/// (so a sealed body is written once, in place, with no buffer of its own).
pub(crate) fn encode_frame_unsummed_with(out: &mut Vec<u8>, write_body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&[0u8; 4 + CHECKSUM_BYTES]);
    write_body(out);
    let body_len = out.len() - start - FRAME_HEADER_BYTES;
    assert!(
        body_len <= FRAME_BODY_BYTES_MAX,
        "frame body over the limit"
    );
    let len = u32::try_from(body_len).expect("bodies are bounded by FRAME_BODY_BYTES_MAX");
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
}

/// Sets the checksums of the frames that start at `starts` in `buf`
/// (written by [`encode_frame_unsummed`]): afterwards each is the frame
/// [`encode_frame`] writes.
pub(crate) fn set_checksums(buf: &mut [u8], starts: &[usize]) {
    for group in starts.chunks(FRAMES_AT_ONCE) {
        let mut sums = [[0u8; CHECKSUM_BYTES]; FRAMES_AT_ONCE];
        {
            let mut inputs: [([u8; 4], &[u8]); FRAMES_AT_ONCE] = [([0; 4], &[]); FRAMES_AT_ONCE];
            for (input, &start) in inputs.iter_mut().zip(group) {
                let len_bytes: [u8; 4] = buf[start + 4..start + 8].try_into().expect("slice of 4");
                let body_start = start + FRAME_HEADER_BYTES;
                let body_end = body_start + u32::from_le_bytes(len_bytes) as usize;
                *input = (len_bytes, &buf[body_start..body_end]);
            }
            checksums_of(&inputs[..group.len()], &mut sums[..group.len()]);
        }
        for (sum, &start) in sums.iter().zip(group) {
            buf[start + 8..start + FRAME_HEADER_BYTES].copy_from_slice(sum);
        }
    }
}

/// Frames checked together by [`decode_frames`]: enough to fill the
/// widest SIMD hashing of the machine (8 lanes with AVX2, 16 with AVX-512).
pub(crate) const FRAMES_AT_ONCE: usize = 16;

/// The checksums of up to [`FRAMES_AT_ONCE`] frame bodies, each with its
/// length bytes: the same values as [`checksum`], computed several at a
/// time. A record of 1–2 KiB (a typical document) is hashed as a first
/// 1 KiB chunk and a short second one; blake3 hashes the first chunks of
/// several records side by side in SIMD lanes (measured: about half of a
/// filtered full scan was the checksum, one record at a time). Other
/// sizes are hashed one by one.
fn checksums_of(inputs: &[([u8; 4], &[u8])], out: &mut [[u8; CHECKSUM_BYTES]]) {
    use blake3::hazmat::HasherExt;
    use blake3::CHUNK_LEN;
    assert!(inputs.len() <= FRAMES_AT_ONCE && out.len() == inputs.len());
    // The blake3 constants the hashing below needs (the spec's IV and
    // flags); tests hold the result to `blake3::Hasher`.
    const IV: [u32; 8] = [
        0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
        0x5BE0CD19,
    ];
    const CHUNK_START: u8 = 1;
    const CHUNK_END: u8 = 2;
    let two_chunks = |body: &[u8]| (CHUNK_LEN + 1..=2 * CHUNK_LEN).contains(&(4 + body.len()));
    let mut firsts = [[0u8; CHUNK_LEN]; FRAMES_AT_ONCE];
    let mut lanes = [0usize; FRAMES_AT_ONCE];
    let mut n = 0;
    for (i, (len_bytes, body)) in inputs.iter().enumerate() {
        if two_chunks(body) {
            firsts[n][..4].copy_from_slice(len_bytes);
            firsts[n][4..].copy_from_slice(&body[..CHUNK_LEN - 4]);
            lanes[n] = i;
            n += 1;
        } else {
            out[i] = checksum(*len_bytes, body);
        }
    }
    if n == 0 {
        return;
    }
    // `blake3::platform` is public but hidden from blake3's docs and called
    // unstable there: the workspace pins the release exactly, and a release that
    // changed it would fail to build or fail the tests that compare these
    // sums with `blake3::Hasher`'s, never write other checksums.
    let refs: [&[u8; CHUNK_LEN]; FRAMES_AT_ONCE] = std::array::from_fn(|k| &firsts[k]);
    let mut cvs = [0u8; 32 * FRAMES_AT_ONCE];
    blake3::platform::Platform::detect().hash_many(
        &refs[..n],
        &IV,
        0,
        blake3::IncrementCounter::No,
        0,
        CHUNK_START,
        CHUNK_END,
        &mut cvs[..32 * n],
    );
    // Each root is the parent of the two chunks, merged with blake3's own
    // documented tree API (`hazmat`): one compression per record.
    for (k, &i) in lanes[..n].iter().enumerate() {
        let second = blake3::Hasher::new()
            .set_input_offset(CHUNK_LEN as u64)
            .update(&inputs[i].1[CHUNK_LEN - 4..])
            .finalize_non_root();
        let first: blake3::hazmat::ChainingValue =
            cvs[32 * k..32 * (k + 1)].try_into().expect("32 bytes");
        let root = blake3::hazmat::merge_subtrees_root(&first, &second, blake3::hazmat::Mode::Hash);
        out[i].copy_from_slice(&root.as_bytes()[..CHECKSUM_BYTES]);
    }
}

/// [`decode_frame`] for up to [`FRAMES_AT_ONCE`] frames, one answer per
/// frame in `out` (cleared first): the same answers, with the checksums
/// computed several at a time.
pub(crate) fn decode_frames<'a>(
    frames: &[&'a [u8]],
    out: &mut Vec<Result<(&'a [u8], usize), FrameError>>,
) {
    assert!(frames.len() <= FRAMES_AT_ONCE);
    out.clear();
    let mut inputs: [([u8; 4], &[u8]); FRAMES_AT_ONCE] = [([0; 4], &[]); FRAMES_AT_ONCE];
    let mut expected = [[0u8; CHECKSUM_BYTES]; FRAMES_AT_ONCE];
    let mut checked = [0usize; FRAMES_AT_ONCE];
    let mut n = 0;
    for (i, frame) in frames.iter().enumerate() {
        let parts = frame_parts(frame);
        if let Ok(parts) = &parts {
            inputs[n] = (parts.len_bytes, parts.body);
            expected[n] = parts.checksum;
            checked[n] = i;
            n += 1;
        }
        out.push(parts.map(|p| (p.body, p.total)));
    }
    let mut actual = [[0u8; CHECKSUM_BYTES]; FRAMES_AT_ONCE];
    checksums_of(&inputs[..n], &mut actual[..n]);
    for k in 0..n {
        if actual[k] != expected[k] {
            out[checked[k]] = Err(FrameError::BadChecksum);
        }
    }
}

/// A frame's fields, its length and magic checked, its checksum not yet.
struct FrameParts<'a> {
    len_bytes: [u8; 4],
    checksum: [u8; CHECKSUM_BYTES],
    body: &'a [u8],
    total: usize,
}

fn frame_parts(buf: &[u8]) -> Result<FrameParts<'_>, FrameError> {
    if buf.len() < FRAME_HEADER_BYTES {
        // A short header is either torn or damaged; tell them apart by the magic
        // where we can.
        let n = buf.len().min(4);
        if buf[..n] != FRAME_MAGIC[..n] {
            return Err(FrameError::BadMagic);
        }
        return Err(FrameError::Incomplete);
    }
    if buf[..4] != FRAME_MAGIC {
        return Err(FrameError::BadMagic);
    }
    let len_bytes: [u8; 4] = buf[4..8].try_into().expect("slice of 4");
    let body_len = u32::from_le_bytes(len_bytes) as usize;
    if body_len > FRAME_BODY_BYTES_MAX {
        return Err(FrameError::TooLarge(body_len as u64));
    }
    let total = FRAME_HEADER_BYTES + body_len;
    if buf.len() < total {
        return Err(FrameError::Incomplete);
    }
    Ok(FrameParts {
        len_bytes,
        checksum: buf[8..24].try_into().expect("slice of 16"),
        body: &buf[FRAME_HEADER_BYTES..total],
        total,
    })
}

/// Decodes the frame at the start of `buf`. On success returns the body and
/// the total frame length.
pub(crate) fn decode_frame(buf: &[u8]) -> Result<(&[u8], usize), FrameError> {
    let parts = frame_parts(buf)?;
    if checksum(parts.len_bytes, parts.body) != parts.checksum {
        return Err(FrameError::BadChecksum);
    }
    Ok((parts.body, parts.total))
}

/// One logged operation. Log records are physical: an insert, upsert,
/// replace or patch is logged as the `Put` of the resulting document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    /// Store `doc` (encoded JSON) under `id`.
    Put {
        coll: &'a str,
        id: &'a str,
        doc: &'a [u8],
    },
    /// Remove the document `id`.
    Delete { coll: &'a str, id: &'a str },
    /// Create an empty collection.
    CreateCollection { coll: &'a str },
    /// Drop a collection with its documents and indexes.
    DropCollection { coll: &'a str },
    /// Create a secondary index on `path`.
    CreateIndex {
        coll: &'a str,
        path: &'a str,
        unique: bool,
    },
    /// Drop the index on `path`.
    DropIndex { coll: &'a str, path: &'a str },
}

/// An operation with its transaction id and commit mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpRecord<'a> {
    pub(crate) txn: u64,
    pub(crate) commit: bool,
    pub(crate) op: Op<'a>,
}

/// Why an operation payload could not be decoded (after its frame checksum
/// passed, so this means a format bug or a hostile file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PayloadError(pub(crate) &'static str);

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).expect("names are bounded by the limits module");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Encodes an operation payload into `out`.
pub(crate) fn encode_op(rec: &OpRecord<'_>, out: &mut Vec<u8>) {
    let (kind, coll) = match &rec.op {
        Op::Put { coll, .. } => (KIND_PUT, coll),
        Op::Delete { coll, .. } => (KIND_DELETE, coll),
        Op::CreateCollection { coll } => (KIND_CREATE_COLLECTION, coll),
        Op::DropCollection { coll } => (KIND_DROP_COLLECTION, coll),
        Op::CreateIndex { coll, .. } => (KIND_CREATE_INDEX, coll),
        Op::DropIndex { coll, .. } => (KIND_DROP_INDEX, coll),
    };
    out.push(kind | if rec.commit { COMMIT_FLAG } else { 0 });
    out.extend_from_slice(&rec.txn.to_le_bytes());
    put_str(out, coll);
    match &rec.op {
        Op::Put { id, doc, .. } => {
            put_str(out, id);
            out.extend_from_slice(doc);
        }
        Op::Delete { id, .. } => put_str(out, id),
        Op::CreateCollection { .. } | Op::DropCollection { .. } => {}
        Op::CreateIndex { path, unique, .. } => {
            put_str(out, path);
            out.push(u8::from(*unique));
        }
        Op::DropIndex { path, .. } => put_str(out, path),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PayloadError> {
        if self.buf.len() < n {
            return Err(PayloadError("payload cut short"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, PayloadError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, PayloadError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("slice of 8"),
        ))
    }

    fn str(&mut self) -> Result<&'a str, PayloadError> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().expect("slice of 2")) as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| PayloadError("name is not UTF-8"))
    }

    fn finish(self) -> Result<(), PayloadError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(PayloadError("trailing bytes after the operation"))
        }
    }
}

/// Decodes an operation payload.
pub(crate) fn decode_op(payload: &[u8]) -> Result<OpRecord<'_>, PayloadError> {
    let mut r = Reader { buf: payload };
    let first = r.u8()?;
    let commit = first & COMMIT_FLAG != 0;
    let txn = r.u64()?;
    let coll = r.str()?;
    let op = match first & !COMMIT_FLAG {
        KIND_PUT => {
            let id = r.str()?;
            let doc = std::mem::take(&mut r.buf);
            Op::Put { coll, id, doc }
        }
        KIND_DELETE => Op::Delete { coll, id: r.str()? },
        KIND_CREATE_COLLECTION => Op::CreateCollection { coll },
        KIND_DROP_COLLECTION => Op::DropCollection { coll },
        KIND_CREATE_INDEX => {
            let path = r.str()?;
            let unique = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(PayloadError("unique flag is not 0 or 1")),
            };
            Op::CreateIndex { coll, path, unique }
        }
        KIND_DROP_INDEX => Op::DropIndex {
            coll,
            path: r.str()?,
        },
        _ => return Err(PayloadError("unknown operation kind")),
    };
    r.finish()?;
    Ok(OpRecord { txn, commit, op })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_ops() -> Vec<OpRecord<'static>> {
        vec![
            OpRecord {
                txn: 1,
                commit: false,
                op: Op::CreateCollection { coll: "users" },
            },
            OpRecord {
                txn: 1,
                commit: true,
                op: Op::Put {
                    coll: "users",
                    id: "a",
                    doc: br#"{"x":1}"#,
                },
            },
            OpRecord {
                txn: 2,
                commit: true,
                op: Op::Delete {
                    coll: "users",
                    id: "a",
                },
            },
            OpRecord {
                txn: 3,
                commit: true,
                op: Op::CreateIndex {
                    coll: "users",
                    path: "x.y",
                    unique: true,
                },
            },
            OpRecord {
                txn: 4,
                commit: true,
                op: Op::DropIndex {
                    coll: "users",
                    path: "x.y",
                },
            },
            OpRecord {
                txn: u64::MAX,
                commit: true,
                op: Op::DropCollection { coll: "users" },
            },
        ]
    }

    #[test]
    fn every_op_round_trips_through_a_frame() {
        for rec in sample_ops() {
            let mut payload = Vec::new();
            encode_op(&rec, &mut payload);
            let mut frame = Vec::new();
            encode_frame(&payload, &mut frame);
            let (body, len) = decode_frame(&frame).expect("valid frame");
            assert_eq!(len, frame.len());
            assert_eq!(decode_op(body).expect("valid op"), rec);
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut payload = Vec::new();
        encode_op(&sample_ops()[1], &mut payload);
        let mut frame = Vec::new();
        encode_frame(&payload, &mut frame);
        for byte in 0..frame.len() {
            for bit in 0..8 {
                let mut damaged = frame.clone();
                damaged[byte] ^= 1 << bit;
                assert!(
                    decode_frame(&damaged).is_err(),
                    "flip at {byte}:{bit} passed"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_incomplete_or_rejected() {
        let mut frame = Vec::new();
        encode_frame(b"hello", &mut frame);
        for cut in 0..frame.len() {
            assert!(decode_frame(&frame[..cut]).is_err());
        }
        assert_eq!(decode_frame(&frame[..10]), Err(FrameError::Incomplete));
    }

    #[test]
    fn oversized_length_is_refused_before_reading() {
        let mut frame = FRAME_MAGIC.to_vec();
        frame.extend_from_slice(&u32::MAX.to_le_bytes());
        frame.extend_from_slice(&[0; 16]);
        assert_eq!(
            decode_frame(&frame),
            Err(FrameError::TooLarge(u32::MAX as u64))
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok((body, _)) = decode_frame(&bytes) {
                let _ = decode_op(body);
            }
            let _ = decode_op(&bytes);
        }

        /// Checking frames together gives every frame the answer it gets
        /// alone: bodies of every size around the one- and two-chunk
        /// boundaries (the batched hashing only takes 1–2 KiB inputs),
        /// damaged ones among them, any number of frames at once.
        #[test]
        fn decoding_frames_together_answers_as_one_by_one(
            frames in proptest::collection::vec(
                (
                    prop_oneof![0usize..40, 1000usize..1060, 2030usize..2060, 3000usize..3100],
                    any::<u8>(),
                    proptest::option::of((any::<prop::sample::Index>(), 1u8..=255)),
                ),
                0..=FRAMES_AT_ONCE,
            )
        ) {
            let mut bufs = Vec::new();
            for (len, fill, damage) in &frames {
                let body: Vec<u8> = (0..*len).map(|i| fill.wrapping_add(i as u8)).collect();
                let mut buf = Vec::new();
                encode_frame(&body, &mut buf);
                if let Some((at, xor)) = damage {
                    let at = at.index(buf.len());
                    buf[at] ^= xor;
                }
                bufs.push(buf);
            }
            let slices: Vec<&[u8]> = bufs.iter().map(Vec::as_slice).collect();
            let mut together = Vec::new();
            decode_frames(&slices, &mut together);
            let alone: Vec<_> = slices.iter().map(|b| decode_frame(b)).collect();
            prop_assert_eq!(together, alone);
        }
    }

    #[test]
    fn frames_summed_together_are_the_frames_encoded_one_by_one() {
        let bodies: Vec<Vec<u8>> = (0..40)
            .map(|i| vec![i as u8; [3, 1019, 1020, 1021, 1500, 2044, 2045, 3000][i % 8]])
            .collect();
        let mut alone = Vec::new();
        let mut together = Vec::new();
        let mut starts = Vec::new();
        for body in &bodies {
            encode_frame(body, &mut alone);
            starts.push(together.len());
            encode_frame_unsummed(body, &mut together);
        }
        set_checksums(&mut together, &starts);
        assert_eq!(together, alone);
    }

    #[test]
    fn batched_checksums_equal_blake3_at_every_two_chunk_length() {
        let bodies: Vec<Vec<u8>> = (1000..=2050)
            .map(|len| (0..len).map(|i| (i * 7 % 251) as u8).collect())
            .collect();
        for group in bodies.chunks(FRAMES_AT_ONCE - 3) {
            let inputs: Vec<([u8; 4], &[u8])> = group
                .iter()
                .map(|b| ((b.len() as u32).to_le_bytes(), b.as_slice()))
                .collect();
            let mut out = vec![[0u8; CHECKSUM_BYTES]; inputs.len()];
            checksums_of(&inputs, &mut out);
            for ((len_bytes, body), sum) in inputs.iter().zip(&out) {
                assert_eq!(
                    *sum,
                    checksum(*len_bytes, body),
                    "body of {} bytes",
                    body.len()
                );
            }
        }
    }
}
