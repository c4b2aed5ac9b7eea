//! Crypto payments: Solana (SOL, USDC) and Tron (TRX, USDT) behind the
//! [`PaymentProvider`] trait.
//!
//! What is pure and tested here:
//! - address validation with the chains' real encodings:
//!   [`SolanaAddress`] is base58 of exactly 32 bytes (an Ed25519 public key
//!   or program-derived address; Solana addresses carry no checksum, so a
//!   typo can give another valid address, which is why payments are checked
//!   against the configured recipient); [`TronAddress`] is base58check of 25
//!   bytes: version byte `0x41`, 20-byte account hash, and the first 4 bytes
//!   of SHA-256(SHA-256(first 21 bytes)) as checksum;
//! - token amounts in each token's minor units ([`Token::decimals`]) and the
//!   exact conversion of a fiat invoice amount at a quoted exchange rate
//!   ([`fiat_to_token_minor`]);
//! - the confirmation rules of [`CryptoProvider`]: right recipient, right
//!   token, amount at least the quote, enough confirmations, and one
//!   transaction pays one invoice only.
//!
//! What needs a live node: reading a transaction. [`ChainRpc`] is the seam;
//! an operator implements it with an RPC client pointed at their own Solana
//! or Tron node (for example Solana's `getTransaction` with `jsonParsed`
//! token balances, or TronGrid's `gettransactioninfobyid` plus TRC-20
//! `Transfer` logs) and reports the transfer and its confirmations. This
//! crate makes no network calls; its tests use a fake `ChainRpc`.

use std::collections::HashMap;

use parking_lot::Mutex;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::payment::{
    ChargeRequest, DeclineReason, PaymentError, PaymentMethod, PaymentOutcome, PaymentProvider,
};

const PROVIDER: &str = "crypto";

/// Longest base58 text of a 32-byte Solana address.
pub const SOLANA_ADDRESS_CHARS_MAX: usize = 44;
/// Length of a base58 Tron address.
pub const TRON_ADDRESS_CHARS: usize = 34;
/// Tron mainnet address version byte.
pub const TRON_VERSION_BYTE: u8 = 0x41;
/// Longest transaction id accepted (Solana signatures are 88 chars of
/// base58, Tron hashes 64 hex digits).
pub const TX_ID_CHARS_MAX: usize = 128;
/// Most decimals accepted for a fiat currency.
pub const FIAT_DECIMALS_MAX: u32 = 6;

/// A blockchain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chain {
    /// Solana mainnet.
    Solana,
    /// Tron mainnet.
    Tron,
}

/// Why an address, amount or transaction id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The address has a character outside the base58 alphabet.
    #[error("character {character:?} at {index} is not base58")]
    InvalidCharacter {
        /// The character.
        character: char,
        /// Its position.
        index: usize,
    },
    /// The address is empty or longer than the chain allows.
    #[error("{chain:?} address of {chars} characters has the wrong length")]
    InvalidTextLength {
        /// The chain.
        chain: Chain,
        /// Its length in characters.
        chars: usize,
    },
    /// The address decodes to the wrong number of bytes.
    #[error("{chain:?} address decodes to {actual_bytes} bytes, expected {expected_bytes}")]
    InvalidByteLength {
        /// The chain.
        chain: Chain,
        /// Bytes expected.
        expected_bytes: usize,
        /// Bytes decoded.
        actual_bytes: usize,
    },
    /// The Tron checksum does not match.
    #[error("Tron address checksum does not match")]
    BadChecksum,
    /// The Tron version byte is not [`TRON_VERSION_BYTE`].
    #[error("Tron address version byte is {actual:#04x}, expected {expected:#04x}", expected = TRON_VERSION_BYTE)]
    BadVersion {
        /// The version byte found.
        actual: u8,
    },
    /// The exchange rate is zero or negative.
    #[error("exchange rate {rate} is not positive")]
    NonPositiveRate {
        /// The rate.
        rate: Decimal,
    },
    /// The fiat amount is zero or negative.
    #[error("amount {amount_minor} is not positive")]
    NonPositiveAmount {
        /// The amount.
        amount_minor: i64,
    },
    /// The fiat currency has more than [`FIAT_DECIMALS_MAX`] decimals.
    #[error("{fiat_decimals} fiat decimals exceed {max}", max = FIAT_DECIMALS_MAX)]
    FiatDecimalsOutOfRange {
        /// The decimals given.
        fiat_decimals: u32,
    },
    /// The converted amount does not fit in 128 bits.
    #[error("token amount overflows")]
    AmountOverflow,
    /// The transaction id is empty, too long or not base58/hex.
    #[error("transaction id of {chars} characters is invalid")]
    InvalidTransactionId {
        /// Its length.
        chars: usize,
    },
    /// No recipient address is configured for the token's chain.
    #[error("no recipient address configured for {chain:?}")]
    NoRecipient {
        /// The chain.
        chain: Chain,
    },
}

fn decode_base58(text: &str) -> Result<Vec<u8>, CryptoError> {
    bs58::decode(text).into_vec().map_err(|e| {
        let index = match e {
            bs58::decode::Error::InvalidCharacter { index, .. }
            | bs58::decode::Error::NonAsciiCharacter { index } => index,
            _ => 0,
        };
        // `index` is a byte offset; report the character found there.
        let character = text
            .get(index..)
            .and_then(|rest| rest.chars().next())
            .unwrap_or('\u{fffd}');
        CryptoError::InvalidCharacter { character, index }
    })
}

/// A Solana account address (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SolanaAddress([u8; 32]);

impl SolanaAddress {
    /// Parses a base58 address.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        if text.is_empty() || text.len() > SOLANA_ADDRESS_CHARS_MAX {
            return Err(CryptoError::InvalidTextLength {
                chain: Chain::Solana,
                chars: text.chars().count(),
            });
        }
        let bytes = decode_base58(text)?;
        let array: [u8; 32] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| CryptoError::InvalidByteLength {
                    chain: Chain::Solana,
                    expected_bytes: 32,
                    actual_bytes: bytes.len(),
                })?;
        Ok(SolanaAddress(array))
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Display for SolanaAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&bs58::encode(self.0).into_string())
    }
}

/// A Tron account address (version byte + 20-byte hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TronAddress([u8; 21]);

fn tron_checksum(payload: &[u8]) -> [u8; 4] {
    let digest = Sha256::digest(Sha256::digest(payload));
    [digest[0], digest[1], digest[2], digest[3]]
}

impl TronAddress {
    /// Parses a base58check address.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        if text.len() != TRON_ADDRESS_CHARS {
            return Err(CryptoError::InvalidTextLength {
                chain: Chain::Tron,
                chars: text.chars().count(),
            });
        }
        let bytes = decode_base58(text)?;
        if bytes.len() != 25 {
            return Err(CryptoError::InvalidByteLength {
                chain: Chain::Tron,
                expected_bytes: 25,
                actual_bytes: bytes.len(),
            });
        }
        let (payload, checksum) = bytes.split_at(21);
        if tron_checksum(payload) != checksum {
            return Err(CryptoError::BadChecksum);
        }
        if payload[0] != TRON_VERSION_BYTE {
            return Err(CryptoError::BadVersion { actual: payload[0] });
        }
        let mut array = [0u8; 21];
        array.copy_from_slice(payload);
        Ok(TronAddress(array))
    }

    /// The 21 bytes: version byte then account hash.
    pub fn as_bytes(&self) -> &[u8; 21] {
        &self.0
    }
}

impl std::fmt::Display for TronAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut bytes = self.0.to_vec();
        bytes.extend_from_slice(&tron_checksum(&self.0));
        f.write_str(&bs58::encode(bytes).into_string())
    }
}

/// A token accepted for payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Token {
    /// SOL, in lamports (9 decimals).
    Sol,
    /// USDC on Solana (6 decimals).
    UsdcSolana,
    /// TRX, in sun (6 decimals).
    Trx,
    /// USDT on Tron, TRC-20 (6 decimals).
    UsdtTron,
}

impl Token {
    /// Decimals of the token's minor unit.
    pub fn decimals(self) -> u32 {
        match self {
            Token::Sol => 9,
            Token::UsdcSolana | Token::Trx | Token::UsdtTron => 6,
        }
    }

    /// The chain the token lives on.
    pub fn chain(self) -> Chain {
        match self {
            Token::Sol | Token::UsdcSolana => Chain::Solana,
            Token::Trx | Token::UsdtTron => Chain::Tron,
        }
    }
}

fn div_round_half_even(numerator: u128, denominator: u128) -> u128 {
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    // remainder < denominator, so comparing remainder with the rest avoids
    // overflowing remainder * 2.
    let rest = denominator - remainder;
    match remainder.cmp(&rest) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal if quotient.is_multiple_of(2) => quotient,
        std::cmp::Ordering::Equal => quotient + 1,
    }
}

/// Converts a fiat amount into token minor units at a quoted rate.
///
/// `amount_minor` is in fiat minor units with `fiat_decimals` decimals (2 for
/// USD, EUR); `rate_fiat_per_token` is the price of one whole token in whole
/// fiat units (e.g. `150.25` USD per SOL). The result is
/// `amount / 10^fiat_decimals / rate * 10^token.decimals()`, computed exactly
/// in integers from the rate's decimal mantissa and scale, and rounded half to
/// even to a whole minor unit once, at the end. No floats anywhere.
pub fn fiat_to_token_minor(
    amount_minor: i64,
    fiat_decimals: u32,
    rate_fiat_per_token: Decimal,
    token: Token,
) -> Result<u128, CryptoError> {
    if amount_minor <= 0 {
        return Err(CryptoError::NonPositiveAmount { amount_minor });
    }
    if rate_fiat_per_token <= Decimal::ZERO {
        return Err(CryptoError::NonPositiveRate {
            rate: rate_fiat_per_token,
        });
    }
    if fiat_decimals > FIAT_DECIMALS_MAX {
        return Err(CryptoError::FiatDecimalsOutOfRange { fiat_decimals });
    }
    let rate = rate_fiat_per_token.normalize();
    let mantissa = u128::try_from(rate.mantissa()).map_err(|_| CryptoError::AmountOverflow)?;
    let pow10 = |exp: u32| 10u128.checked_pow(exp).ok_or(CryptoError::AmountOverflow);
    let amount = u128::try_from(amount_minor).map_err(|_| CryptoError::AmountOverflow)?;
    let numerator = amount
        .checked_mul(pow10(rate.scale())?)
        .and_then(|n| n.checked_mul(pow10(token.decimals()).ok()?))
        .ok_or(CryptoError::AmountOverflow)?;
    let denominator = mantissa
        .checked_mul(pow10(fiat_decimals)?)
        .ok_or(CryptoError::AmountOverflow)?;
    Ok(div_round_half_even(numerator, denominator))
}

/// A token transfer as a node reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedTransfer {
    /// Recipient address, in the chain's text form.
    pub to: String,
    /// Token moved.
    pub token: Token,
    /// Amount in the token's minor units.
    pub amount_minor: u128,
    /// Blocks confirming the transaction (0 = seen, not yet in a block).
    pub confirmations: u64,
}

/// Why a node could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The node is unreachable or timed out.
    #[error("node unavailable: {detail}")]
    Unavailable {
        /// What failed.
        detail: String,
    },
    /// The node answered something that could not be understood.
    #[error("invalid node response: {detail}")]
    InvalidResponse {
        /// What was wrong.
        detail: String,
    },
}

/// Reads transactions from a chain. Implemented by the operator against a
/// node; `Ok(None)` means the node does not know the transaction (yet).
pub trait ChainRpc: Send + Sync {
    /// The transfer made by transaction `tx_id` on `chain`, if known.
    fn get_transaction(
        &self,
        chain: Chain,
        tx_id: &str,
    ) -> Result<Option<ObservedTransfer>, RpcError>;
}

/// Where to receive payments and how many confirmations to require.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoConfig {
    /// Recipient for SOL and USDC, if Solana payments are accepted.
    pub solana_recipient: Option<SolanaAddress>,
    /// Recipient for TRX and USDT, if Tron payments are accepted.
    pub tron_recipient: Option<TronAddress>,
    /// Confirmations required on Solana (default 32: finalized).
    pub solana_confirmations: u64,
    /// Confirmations required on Tron (default 19: solidified).
    pub tron_confirmations: u64,
}

impl Default for CryptoConfig {
    fn default() -> Self {
        CryptoConfig {
            solana_recipient: None,
            tron_recipient: None,
            solana_confirmations: 32,
            tron_confirmations: 19,
        }
    }
}

#[derive(Debug, Clone)]
struct Claim {
    invoice_id: String,
    token: Token,
    quoted_amount_minor: u128,
}

/// Confirms customer-sent transactions against invoices.
pub struct CryptoProvider<R> {
    rpc: R,
    config: CryptoConfig,
    claims: Mutex<HashMap<String, Claim>>,
}

fn validate_tx_id(tx_id: &str) -> Result<(), CryptoError> {
    let valid = !tx_id.is_empty()
        && tx_id.len() <= TX_ID_CHARS_MAX
        && tx_id.bytes().all(|b| b.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(CryptoError::InvalidTransactionId {
            chars: tx_id.chars().count(),
        })
    }
}

impl<R: ChainRpc> CryptoProvider<R> {
    /// A provider reading the chain through `rpc`.
    pub fn new(rpc: R, config: CryptoConfig) -> Self {
        CryptoProvider {
            rpc,
            config,
            claims: Mutex::new(HashMap::new()),
        }
    }

    fn recipient_matches(&self, chain: Chain, to: &str) -> Result<bool, CryptoError> {
        Ok(match chain {
            Chain::Solana => {
                let expected = self
                    .config
                    .solana_recipient
                    .ok_or(CryptoError::NoRecipient { chain })?;
                SolanaAddress::parse(to).is_ok_and(|a| a == expected)
            }
            Chain::Tron => {
                let expected = self
                    .config
                    .tron_recipient
                    .ok_or(CryptoError::NoRecipient { chain })?;
                TronAddress::parse(to).is_ok_and(|a| a == expected)
            }
        })
    }

    fn confirmations_required(&self, chain: Chain) -> u64 {
        match chain {
            Chain::Solana => self.config.solana_confirmations,
            Chain::Tron => self.config.tron_confirmations,
        }
    }

    fn check(&self, tx_id: &str, claim: &Claim) -> Result<PaymentOutcome, PaymentError> {
        let chain = claim.token.chain();
        let reference = tx_id.to_owned();
        let observed =
            self.rpc
                .get_transaction(chain, tx_id)
                .map_err(|e| PaymentError::Transient {
                    provider: PROVIDER,
                    detail: e.to_string(),
                })?;
        let Some(transfer) = observed else {
            return Ok(PaymentOutcome::Pending { reference });
        };
        let decline = |reason| Ok(PaymentOutcome::Declined { reason });
        if !self.recipient_matches(chain, &transfer.to)? {
            return decline(DeclineReason::WrongRecipient);
        }
        if transfer.token != claim.token {
            return decline(DeclineReason::WrongToken);
        }
        if transfer.amount_minor < claim.quoted_amount_minor {
            return decline(DeclineReason::Underpaid {
                expected_minor: claim.quoted_amount_minor,
                received_minor: transfer.amount_minor,
            });
        }
        if transfer.confirmations < self.confirmations_required(chain) {
            return Ok(PaymentOutcome::Pending { reference });
        }
        Ok(PaymentOutcome::Succeeded { reference })
    }
}

impl<R: ChainRpc> PaymentProvider for CryptoProvider<R> {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn charge(&self, request: &ChargeRequest) -> Result<PaymentOutcome, PaymentError> {
        let PaymentMethod::Crypto {
            token,
            tx_id,
            quoted_amount_minor,
        } = &request.method
        else {
            return Err(PaymentError::UnsupportedMethod {
                provider: PROVIDER,
                method: request.method.kind(),
            });
        };
        validate_tx_id(tx_id)?;
        // Fail early on an unconfigured chain, before touching the node.
        self.recipient_matches(token.chain(), "")?;
        let claim = Claim {
            invoice_id: request.invoice_id.clone(),
            token: *token,
            quoted_amount_minor: *quoted_amount_minor,
        };
        let mut claims = self.claims.lock();
        if let Some(existing) = claims.get(tx_id) {
            if existing.invoice_id != request.invoice_id {
                return Ok(PaymentOutcome::Declined {
                    reason: DeclineReason::TransactionAlreadyUsed {
                        invoice_id: existing.invoice_id.clone(),
                    },
                });
            }
        }
        let outcome = self.check(tx_id, &claim)?;
        if !matches!(outcome, PaymentOutcome::Declined { .. }) {
            claims.insert(tx_id.clone(), claim);
        }
        Ok(outcome)
    }

    fn status(&self, reference: &str) -> Result<PaymentOutcome, PaymentError> {
        let claim = self.claims.lock().get(reference).cloned().ok_or_else(|| {
            PaymentError::UnknownReference {
                reference: reference.to_owned(),
            }
        })?;
        self.check(reference, &claim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::IdempotentPayments;
    use rust_decimal_macros::dec;

    const USDT_CONTRACT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
    const USDC_MINT: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
    const SYSTEM_PROGRAM: &str = "11111111111111111111111111111111";

    /// Replaces the character at `index` with `with`.
    fn corrupt(text: &str, index: usize, with: char) -> String {
        text.char_indices()
            .map(|(i, c)| if i == index { with } else { c })
            .collect()
    }

    #[test]
    fn real_addresses_parse_and_round_trip() {
        let tron = TronAddress::parse(USDT_CONTRACT).expect("valid");
        assert_eq!(tron.as_bytes()[0], TRON_VERSION_BYTE);
        assert_eq!(tron.to_string(), USDT_CONTRACT);
        let sol = SolanaAddress::parse(USDC_MINT).expect("valid");
        assert_eq!(sol.to_string(), USDC_MINT);
        assert_eq!(
            SolanaAddress::parse(SYSTEM_PROGRAM).map(|a| *a.as_bytes()),
            Ok([0u8; 32])
        );
    }

    #[test]
    fn tron_checksum_agrees_with_bs58_check() {
        let ours = TronAddress::parse(USDT_CONTRACT).expect("valid");
        let theirs = bs58::decode(USDT_CONTRACT)
            .with_check(Some(TRON_VERSION_BYTE))
            .into_vec()
            .expect("bs58 accepts it");
        assert_eq!(&theirs[..], &ours.as_bytes()[..]);
        assert_eq!(
            bs58::encode(&ours.as_bytes()[..])
                .with_check()
                .into_string(),
            USDT_CONTRACT
        );
    }

    #[test]
    fn corrupted_tron_address_fails_its_checksum() {
        let typo = corrupt(USDT_CONTRACT, 10, 'Q');
        assert_ne!(typo, USDT_CONTRACT);
        assert_eq!(TronAddress::parse(&typo), Err(CryptoError::BadChecksum));
    }

    #[test]
    fn tron_address_with_another_version_byte_is_refused() {
        let mut payload = TronAddress::parse(USDT_CONTRACT)
            .expect("valid")
            .as_bytes()
            .to_vec();
        payload[0] = 0x42; // any byte but 0x41
        let mut bytes = payload.clone();
        bytes.extend_from_slice(&tron_checksum(&payload));
        let text = bs58::encode(bytes).into_string();
        assert_eq!(text.len(), TRON_ADDRESS_CHARS);
        assert_eq!(
            TronAddress::parse(&text),
            Err(CryptoError::BadVersion { actual: 0x42 })
        );
    }

    #[test]
    fn bad_alphabet_and_lengths_are_refused_with_their_reason() {
        assert_eq!(
            TronAddress::parse(&corrupt(USDT_CONTRACT, 5, '0')),
            Err(CryptoError::InvalidCharacter {
                character: '0',
                index: 5
            })
        );
        assert_eq!(
            SolanaAddress::parse(&corrupt(USDC_MINT, 3, 'l')),
            Err(CryptoError::InvalidCharacter {
                character: 'l',
                index: 3
            })
        );
        assert_eq!(
            TronAddress::parse(&USDT_CONTRACT[..33]),
            Err(CryptoError::InvalidTextLength {
                chain: Chain::Tron,
                chars: 33
            })
        );
        assert_eq!(
            SolanaAddress::parse(""),
            Err(CryptoError::InvalidTextLength {
                chain: Chain::Solana,
                chars: 0
            })
        );
        assert_eq!(
            SolanaAddress::parse(&format!("{USDC_MINT}1")),
            Err(CryptoError::InvalidTextLength {
                chain: Chain::Solana,
                chars: 45
            })
        );
        assert_eq!(
            SolanaAddress::parse(&USDC_MINT[..40]),
            Err(CryptoError::InvalidByteLength {
                chain: Chain::Solana,
                expected_bytes: 32,
                actual_bytes: 30
            })
        );
        // Each leading '1' is a zero byte: 34 of them decode to 34 bytes.
        assert_eq!(
            TronAddress::parse(&"1".repeat(34)),
            Err(CryptoError::InvalidByteLength {
                chain: Chain::Tron,
                expected_bytes: 25,
                actual_bytes: 34
            })
        );
        // A Tron address is not a Solana address and vice versa.
        assert!(SolanaAddress::parse(USDT_CONTRACT).is_err());
        assert!(TronAddress::parse(USDC_MINT).is_err());
    }

    #[test]
    fn fiat_converts_exactly_with_half_even_rounding() {
        // $29.00 at $150 per SOL = 0.19333... SOL = 193_333_333.33 lamports.
        assert_eq!(
            fiat_to_token_minor(2_900, 2, dec!(150), Token::Sol),
            Ok(193_333_333)
        );
        // $99.00 at $1.00 per USDT = 99_000_000 micro-USDT.
        assert_eq!(
            fiat_to_token_minor(9_900, 2, dec!(1.00), Token::UsdtTron),
            Ok(99_000_000)
        );
        // $0.01 at $0.08 per TRX = 0.125 TRX = 125_000 sun exactly.
        assert_eq!(
            fiat_to_token_minor(1, 2, dec!(0.08), Token::Trx),
            Ok(125_000)
        );
        // Halves: 1 / 4_000_000 USDC... $0.01 at $80_000 = 0.125 micro -> 0;
        // at $40_000 = 0.25 -> 0; at $20_000 = 0.5 -> 0 (even); at
        // $6_666.666... use $8_000 = 1.25 -> 1; $4_000 = 2.5 -> 2; 3.5 -> 4.
        assert_eq!(
            fiat_to_token_minor(1, 2, dec!(20000), Token::UsdcSolana),
            Ok(0)
        );
        assert_eq!(
            fiat_to_token_minor(1, 2, dec!(4000), Token::UsdcSolana),
            Ok(2)
        );
        assert_eq!(
            fiat_to_token_minor(7, 2, dec!(20000), Token::UsdcSolana),
            Ok(4)
        );
        assert_eq!(
            fiat_to_token_minor(0, 2, dec!(1), Token::Sol),
            Err(CryptoError::NonPositiveAmount { amount_minor: 0 })
        );
        assert_eq!(
            fiat_to_token_minor(1, 2, dec!(0), Token::Sol),
            Err(CryptoError::NonPositiveRate { rate: dec!(0) })
        );
        assert_eq!(
            fiat_to_token_minor(1, FIAT_DECIMALS_MAX + 1, dec!(1), Token::Sol),
            Err(CryptoError::FiatDecimalsOutOfRange {
                fiat_decimals: FIAT_DECIMALS_MAX + 1
            })
        );
        assert_eq!(
            fiat_to_token_minor(
                i64::MAX,
                0,
                dec!(0.0000000000000000000000000001),
                Token::Sol
            ),
            Err(CryptoError::AmountOverflow)
        );
    }

    #[derive(Default)]
    struct FakeRpc {
        transfers: Mutex<HashMap<String, ObservedTransfer>>,
        down: std::sync::atomic::AtomicBool,
    }

    impl ChainRpc for &FakeRpc {
        fn get_transaction(
            &self,
            _chain: Chain,
            tx_id: &str,
        ) -> Result<Option<ObservedTransfer>, RpcError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(RpcError::Unavailable {
                    detail: "connection refused".into(),
                });
            }
            Ok(self.transfers.lock().get(tx_id).cloned())
        }
    }

    fn provider(rpc: &FakeRpc) -> CryptoProvider<&FakeRpc> {
        CryptoProvider::new(
            rpc,
            CryptoConfig {
                tron_recipient: Some(TronAddress::parse(USDT_CONTRACT).expect("valid")),
                solana_recipient: Some(SolanaAddress::parse(USDC_MINT).expect("valid")),
                ..CryptoConfig::default()
            },
        )
    }

    fn pay(invoice: &str, key: &str, token: Token, tx: &str, quoted: u128) -> ChargeRequest {
        ChargeRequest {
            invoice_id: invoice.into(),
            amount_minor: 2_900,
            currency: "USD".into(),
            idempotency_key: key.into(),
            method: PaymentMethod::Crypto {
                token,
                tx_id: tx.into(),
                quoted_amount_minor: quoted,
            },
        }
    }

    fn transfer(to: &str, token: Token, amount: u128, confirmations: u64) -> ObservedTransfer {
        ObservedTransfer {
            to: to.into(),
            token,
            amount_minor: amount,
            confirmations,
        }
    }

    #[test]
    fn transfer_is_pending_until_confirmed_then_succeeds_without_recharging() {
        let rpc = FakeRpc::default();
        let payments = IdempotentPayments::new(provider(&rpc));
        let req = pay("inv_1", "k1", Token::UsdtTron, "abc123", 29_000_000);
        assert_eq!(
            payments.charge(&req),
            Ok(PaymentOutcome::Pending {
                reference: "abc123".into()
            })
        );
        rpc.transfers.lock().insert(
            "abc123".into(),
            transfer(USDT_CONTRACT, Token::UsdtTron, 29_000_000, 18),
        );
        assert!(matches!(
            payments.charge(&req),
            Ok(PaymentOutcome::Pending { .. })
        ));
        rpc.transfers.lock().insert(
            "abc123".into(),
            transfer(USDT_CONTRACT, Token::UsdtTron, 29_000_000, 19),
        );
        assert_eq!(
            payments.charge(&req),
            Ok(PaymentOutcome::Succeeded {
                reference: "abc123".into()
            })
        );
    }

    #[test]
    fn wrong_recipient_token_or_amount_is_declined() {
        let rpc = FakeRpc::default();
        let p = provider(&rpc);
        let other = corrupt(USDC_MINT, 0, 'F');
        rpc.transfers
            .lock()
            .insert("t1".into(), transfer(&other, Token::UsdcSolana, 10, 40));
        rpc.transfers
            .lock()
            .insert("t2".into(), transfer(USDC_MINT, Token::Sol, 10, 40));
        rpc.transfers
            .lock()
            .insert("t3".into(), transfer(USDC_MINT, Token::UsdcSolana, 9, 40));
        rpc.transfers
            .lock()
            .insert("t4".into(), transfer(USDC_MINT, Token::UsdcSolana, 11, 40));
        let declined = |reason| Ok(PaymentOutcome::Declined { reason });
        assert_eq!(
            p.charge(&pay("inv", "a", Token::UsdcSolana, "t1", 10)),
            declined(DeclineReason::WrongRecipient)
        );
        assert_eq!(
            p.charge(&pay("inv", "b", Token::UsdcSolana, "t2", 10)),
            declined(DeclineReason::WrongToken)
        );
        assert_eq!(
            p.charge(&pay("inv", "c", Token::UsdcSolana, "t3", 10)),
            declined(DeclineReason::Underpaid {
                expected_minor: 10,
                received_minor: 9
            })
        );
        // Overpaying is accepted.
        assert!(matches!(
            p.charge(&pay("inv", "d", Token::UsdcSolana, "t4", 10)),
            Ok(PaymentOutcome::Succeeded { .. })
        ));
    }

    #[test]
    fn one_transaction_cannot_pay_two_invoices() {
        let rpc = FakeRpc::default();
        let p = provider(&rpc);
        rpc.transfers
            .lock()
            .insert("t1".into(), transfer(USDT_CONTRACT, Token::Trx, 10, 19));
        assert!(matches!(
            p.charge(&pay("inv_1", "a", Token::Trx, "t1", 10)),
            Ok(PaymentOutcome::Succeeded { .. })
        ));
        assert_eq!(
            p.charge(&pay("inv_2", "b", Token::Trx, "t1", 10)),
            Ok(PaymentOutcome::Declined {
                reason: DeclineReason::TransactionAlreadyUsed {
                    invoice_id: "inv_1".into()
                }
            })
        );
    }

    #[test]
    fn node_outage_is_transient_and_bad_inputs_are_refused() {
        let rpc = FakeRpc::default();
        rpc.down.store(true, std::sync::atomic::Ordering::SeqCst);
        let p = provider(&rpc);
        let outcome = p.charge(&pay("inv", "a", Token::Sol, "t1", 10));
        assert!(outcome.is_err_and(|e| e.is_transient()));
        assert_eq!(
            p.charge(&pay("inv", "a", Token::Sol, "", 10)),
            Err(PaymentError::Crypto(CryptoError::InvalidTransactionId {
                chars: 0
            }))
        );
        assert_eq!(
            p.charge(&pay("inv", "a", Token::Sol, "t-1", 10)),
            Err(PaymentError::Crypto(CryptoError::InvalidTransactionId {
                chars: 3
            }))
        );
        let solana_only = CryptoProvider::new(
            &rpc,
            CryptoConfig {
                solana_recipient: Some(SolanaAddress::parse(USDC_MINT).expect("valid")),
                ..CryptoConfig::default()
            },
        );
        assert_eq!(
            solana_only.charge(&pay("inv", "a", Token::Trx, "t1", 10)),
            Err(PaymentError::Crypto(CryptoError::NoRecipient {
                chain: Chain::Tron
            }))
        );
        assert_eq!(
            p.status("never-seen"),
            Err(PaymentError::UnknownReference {
                reference: "never-seen".into()
            })
        );
    }
}
