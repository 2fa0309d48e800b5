//! Cryptography in one place: the token vault (AES-256-GCM), bearer tokens and passwords.

pub mod password;
pub mod tokens;
pub mod vault;

pub use vault::{EncryptionKey, Keyring, SecretField, Vault, VaultError};
