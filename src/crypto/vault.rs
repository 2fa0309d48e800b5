//! The token vault: platform OAuth tokens encrypted at rest with AES-256-GCM.
//!
//! Envelope (stored as text): `snorq1.<key id>.<base64url(nonce || ciphertext || tag)>`.
//! - a fresh random 96-bit nonce per encryption;
//! - associated data binds the ciphertext to its table, row id and field, so a ciphertext copied
//!   into another row or column fails to decrypt;
//! - the key id (derived from the key itself) says which key of the keyring decrypts it, so keys
//!   can rotate: the first key of the keyring encrypts, every key decrypts.

use std::fmt;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

const ENVELOPE_VERSION: &str = "snorq1";
const NONCE_LEN: usize = 12;

/// Which encrypted column a ciphertext belongs to; part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretField {
    ConnectionAccessToken,
    ConnectionRefreshToken,
}

impl SecretField {
    fn aad(self, row: Uuid) -> Vec<u8> {
        let (table, column) = match self {
            SecretField::ConnectionAccessToken => ("platform_connections", "access_token"),
            SecretField::ConnectionRefreshToken => ("platform_connections", "refresh_token"),
        };
        format!("snorq:{table}:{row}:{column}").into_bytes()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("encryption key must be 32 bytes of standard base64 (generate one with `snorq keys generate`)")]
    BadKey,
    #[error("the encrypted value is not a snorq envelope")]
    Malformed,
    #[error("no configured key has id {0}; add the old key to the keyring to read this value")]
    UnknownKey(String),
    #[error("decryption failed: wrong key, or the value was altered or moved to another row or field")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

/// One AES-256 key and its id (the first 8 hex digits of a SHA-256 over the key), plus an
/// HMAC key derived from it, so that signing needs no second secret.
#[derive(Clone)]
pub struct EncryptionKey {
    id: String,
    cipher: Aes256Gcm,
    mac_key: [u8; 32],
}

impl EncryptionKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VaultError> {
        let cipher = Aes256Gcm::new_from_slice(bytes).map_err(|_| VaultError::BadKey)?;
        let digest = Sha256::new()
            .chain_update(b"snorq key id\0")
            .chain_update(bytes)
            .finalize();
        let mac_key = Sha256::new()
            .chain_update(b"snorq mac key\0")
            .chain_update(bytes)
            .finalize();
        Ok(EncryptionKey {
            id: hex::encode(&digest[..4]),
            cipher,
            mac_key: mac_key.into(),
        })
    }

    /// Parses the text form: 32 bytes in standard base64 (what `snorq keys generate` prints).
    pub fn from_base64(text: &str) -> Result<Self, VaultError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| VaultError::BadKey)?;
        Self::from_bytes(&bytes)
    }

    /// A new random key in its text form.
    pub fn generate_base64() -> String {
        let key = aes_gcm::Key::<Aes256Gcm>::generate();
        STANDARD.encode(key.as_slice())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        // The derived key is 32 bytes: HMAC accepts any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.mac_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey({})", self.id)
    }
}

/// Keys in order of preference: the first encrypts, all decrypt.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<EncryptionKey>,
}

impl Keyring {
    /// None when `keys` is empty: a vault without a key cannot exist.
    pub fn new(keys: Vec<EncryptionKey>) -> Option<Self> {
        (!keys.is_empty()).then_some(Keyring { keys })
    }

    pub fn primary(&self) -> &EncryptionKey {
        // `new` guarantees at least one key.
        &self.keys[0]
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id()).collect()
    }

    fn by_id(&self, id: &str) -> Option<&EncryptionKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

/// Encrypts and decrypts secrets bound to a row and field.
#[derive(Debug, Clone)]
pub struct Vault {
    keyring: Keyring,
}

impl Vault {
    pub fn new(keyring: Keyring) -> Self {
        Vault { keyring }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// A signature of `data` for `purpose` (`<key id>.<base64url HMAC-SHA256>`), made with the
    /// primary key; [`Vault::verify_signature`] accepts it while that key is in the keyring.
    pub fn sign(&self, purpose: &str, data: &[u8]) -> String {
        let key = self.keyring.primary();
        format!("{}.{}", key.id, URL_SAFE_NO_PAD.encode(key.mac(purpose, data)))
    }

    /// Whether `signature` is [`Vault::sign`]'s for this purpose and data (constant time).
    pub fn verify_signature(&self, purpose: &str, data: &[u8], signature: &str) -> bool {
        let Some((key_id, tag)) = signature.split_once('.') else {
            return false;
        };
        let (Some(key), Ok(tag)) = (self.keyring.by_id(key_id), URL_SAFE_NO_PAD.decode(tag)) else {
            return false;
        };
        key.mac(purpose, data).ct_eq(tag.as_slice()).into()
    }

    pub fn encrypt(&self, field: SecretField, row: Uuid, plaintext: &str) -> Result<String, VaultError> {
        let key = self.keyring.primary();
        let nonce = Nonce::generate();
        let aad = field.aad(row);
        let sealed = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Encrypt)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(nonce.as_slice());
        blob.extend_from_slice(&sealed);
        Ok(format!(
            "{ENVELOPE_VERSION}.{}.{}",
            key.id,
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    pub fn decrypt(&self, field: SecretField, row: Uuid, envelope: &str) -> Result<String, VaultError> {
        let (key_id, blob) = parse_envelope(envelope)?;
        let key = self
            .keyring
            .by_id(key_id)
            .ok_or_else(|| VaultError::UnknownKey(key_id.to_owned()))?;
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| VaultError::Malformed)?;
        let aad = field.aad(row);
        let plain = key
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| VaultError::Decrypt)
    }

    /// True when the envelope is already under the primary key (rotation skips it).
    pub fn is_current(&self, envelope: &str) -> bool {
        parse_envelope(envelope).is_ok_and(|(id, _)| id == self.keyring.primary().id)
    }

    /// Decrypts with whichever key wrote it and encrypts again under the primary key.
    pub fn reencrypt(&self, field: SecretField, row: Uuid, envelope: &str) -> Result<String, VaultError> {
        let plain = self.decrypt(field, row, envelope)?;
        self.encrypt(field, row, &plain)
    }
}

fn parse_envelope(envelope: &str) -> Result<(&str, Vec<u8>), VaultError> {
    let mut parts = envelope.splitn(3, '.');
    let (Some(ENVELOPE_VERSION), Some(key_id), Some(data)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(VaultError::Malformed);
    };
    let blob = URL_SAFE_NO_PAD.decode(data).map_err(|_| VaultError::Malformed)?;
    // A nonce and a 16-byte tag at the least.
    if blob.len() < NONCE_LEN + 16 {
        return Err(VaultError::Malformed);
    }
    Ok((key_id, blob))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault_with(keys: &[&str]) -> Vault {
        let keys = keys
            .iter()
            .map(|k| EncryptionKey::from_base64(k).unwrap())
            .collect();
        Vault::new(Keyring::new(keys).unwrap())
    }

    fn fresh_key() -> String {
        EncryptionKey::generate_base64()
    }

    const TOKEN: &str = "EAAGm0PX4ZCpsBAKZCZBsecret-token";

    #[test]
    fn signatures_verify_for_their_purpose_data_and_keyring() {
        let (old, new) = (fresh_key(), fresh_key());
        let vault = vault_with(&[&old]);
        let signature = vault.sign("oauth-state", b"payload");
        assert!(vault.verify_signature("oauth-state", b"payload", &signature));
        assert!(!vault.verify_signature("oauth-state", b"payloaD", &signature));
        assert!(!vault.verify_signature("other", b"payload", &signature));
        let mut tampered = signature.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(!vault.verify_signature("oauth-state", b"payload", &tampered));
        for garbage in ["", ".", "nokey", "deadbeef.", "deadbeef.!!"] {
            assert!(!vault.verify_signature("oauth-state", b"payload", garbage));
        }
        // Rotation: still valid while the old key is in the ring, not after it is removed.
        assert!(vault_with(&[&new, &old]).verify_signature("oauth-state", b"payload", &signature));
        assert!(!vault_with(&[&new]).verify_signature("oauth-state", b"payload", &signature));
    }

    #[test]
    fn round_trip() {
        let vault = vault_with(&[&fresh_key()]);
        let row = Uuid::now_v7();
        let sealed = vault
            .encrypt(SecretField::ConnectionAccessToken, row, TOKEN)
            .unwrap();
        assert!(!sealed.contains(TOKEN));
        assert!(sealed.starts_with("snorq1."));
        assert_eq!(
            vault
                .decrypt(SecretField::ConnectionAccessToken, row, &sealed)
                .unwrap(),
            TOKEN
        );
    }

    #[test]
    fn every_encryption_uses_a_fresh_nonce() {
        let vault = vault_with(&[&fresh_key()]);
        let row = Uuid::now_v7();
        let a = vault
            .encrypt(SecretField::ConnectionAccessToken, row, TOKEN)
            .unwrap();
        let b = vault
            .encrypt(SecretField::ConnectionAccessToken, row, TOKEN)
            .unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_flipped_byte_fails() {
        let vault = vault_with(&[&fresh_key()]);
        let row = Uuid::now_v7();
        let sealed = vault
            .encrypt(SecretField::ConnectionAccessToken, row, TOKEN)
            .unwrap();
        let (head, data) = sealed.rsplit_once('.').unwrap();
        let mut blob = URL_SAFE_NO_PAD.decode(data).unwrap();
        for i in [0, NONCE_LEN, blob.len() - 1] {
            blob[i] ^= 0x01;
            let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&blob));
            assert_eq!(
                vault.decrypt(SecretField::ConnectionAccessToken, row, &tampered),
                Err(VaultError::Decrypt),
                "byte {i}"
            );
            blob[i] ^= 0x01;
        }
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_or_field_fails() {
        let vault = vault_with(&[&fresh_key()]);
        let row = Uuid::now_v7();
        let sealed = vault
            .encrypt(SecretField::ConnectionAccessToken, row, TOKEN)
            .unwrap();
        assert_eq!(
            vault.decrypt(SecretField::ConnectionAccessToken, Uuid::now_v7(), &sealed),
            Err(VaultError::Decrypt)
        );
        assert_eq!(
            vault.decrypt(SecretField::ConnectionRefreshToken, row, &sealed),
            Err(VaultError::Decrypt)
        );
    }

    #[test]
    fn a_wrong_key_fails() {
        let row = Uuid::now_v7();
        let sealed = vault_with(&[&fresh_key()])
            .encrypt(SecretField::ConnectionAccessToken, row, TOKEN)
            .unwrap();
        let other = vault_with(&[&fresh_key()]);
        assert!(matches!(
            other.decrypt(SecretField::ConnectionAccessToken, row, &sealed),
            Err(VaultError::UnknownKey(_))
        ));
        // Even a key that claims the right id cannot open it.
        let (_, rest) = sealed.split_once('.').unwrap();
        let (_, data) = rest.split_once('.').unwrap();
        let forged = format!("snorq1.{}.{data}", other.keyring().primary().id());
        assert_eq!(
            other.decrypt(SecretField::ConnectionAccessToken, row, &forged),
            Err(VaultError::Decrypt)
        );
    }

    #[test]
    fn rotation_keeps_every_token_readable() {
        let old = fresh_key();
        let new = fresh_key();
        let row = Uuid::now_v7();
        let sealed_old = vault_with(&[&old])
            .encrypt(SecretField::ConnectionRefreshToken, row, TOKEN)
            .unwrap();
        let rotated_vault = vault_with(&[&new, &old]);
        assert!(!rotated_vault.is_current(&sealed_old));
        let sealed_new = rotated_vault
            .reencrypt(SecretField::ConnectionRefreshToken, row, &sealed_old)
            .unwrap();
        assert!(rotated_vault.is_current(&sealed_new));
        // Readable with only the new key once rotated.
        assert_eq!(
            vault_with(&[&new])
                .decrypt(SecretField::ConnectionRefreshToken, row, &sealed_new)
                .unwrap(),
            TOKEN
        );
    }

    #[test]
    fn malformed_envelopes_and_keys_are_rejected() {
        let vault = vault_with(&[&fresh_key()]);
        let row = Uuid::now_v7();
        for bad in [
            "",
            "snorq1",
            "snorq1.abc",
            "snorq2.abc.AAAA",
            "snorq1.abc.!!!",
            "snorq1.abc.AAAA",
        ] {
            assert_eq!(
                vault.decrypt(SecretField::ConnectionAccessToken, row, bad),
                Err(VaultError::Malformed),
                "{bad:?}"
            );
        }
        assert!(EncryptionKey::from_base64("too-short").is_err());
        assert!(EncryptionKey::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(Keyring::new(vec![]).is_none());
    }

    #[test]
    fn debug_output_shows_only_key_ids() {
        let text = fresh_key();
        let key = EncryptionKey::from_base64(&text).unwrap();
        let debug = format!("{:?}", vault_with(&[&text]));
        assert!(debug.contains(key.id()));
        assert!(!debug.contains(&text));
    }
}
