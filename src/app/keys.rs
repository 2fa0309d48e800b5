//! Key rotation: re-encrypts every stored token under the keyring's first key.
//!
//! Safe to interrupt and rerun: rows are handled one at a time, rows already under the current
//! key are skipped, and each write is a compare-and-swap, so a token changed meanwhile (by a
//! reconnect or a refresh, which always encrypt with the current key) is left as it is.

use uuid::Uuid;

use crate::crypto::{SecretField, Vault};
use crate::store::ConnectionSecrets;

use super::{App, AppError, AppResult};

const PAGE: i64 = 100;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// Connections looked at.
    pub examined: u64,
    /// Connections whose tokens were re-encrypted.
    pub rotated: u64,
    /// Connections already entirely under the current key (or without tokens).
    pub already_current: u64,
    /// Connections changed by someone else during the run (left as they are).
    pub changed_meanwhile: u64,
    /// Connections whose tokens could not be decrypted with any configured key.
    pub failed: Vec<(Uuid, String)>,
}

pub async fn rotate(app: &App, mut progress: impl FnMut(&RotationReport)) -> AppResult<RotationReport> {
    let mut report = RotationReport::default();
    let mut after = None;
    loop {
        let page = app.store.connection_secrets_page(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for row in &page {
            report.examined += 1;
            match reencrypt_row(&app.vault, row) {
                Ok(None) => report.already_current += 1,
                Ok(Some(new)) => {
                    if app.store.replace_connection_secrets(row, &new).await? {
                        report.rotated += 1;
                    } else {
                        report.changed_meanwhile += 1;
                    }
                }
                Err(err) => report.failed.push((row.id, err.to_string())),
            }
        }
        progress(&report);
    }
    Ok(report)
}

/// The row re-encrypted under the current key, or None when nothing needs to change.
fn reencrypt_row(vault: &Vault, row: &ConnectionSecrets) -> Result<Option<ConnectionSecrets>, AppError> {
    let rotate = |field, value: &Option<String>| -> Result<Option<String>, AppError> {
        match value {
            Some(envelope) if !vault.is_current(envelope) => vault
                .reencrypt(field, row.id, envelope)
                .map(Some)
                .map_err(AppError::internal),
            other => Ok(other.clone()),
        }
    };
    let new = ConnectionSecrets {
        id: row.id,
        access_token_enc: rotate(SecretField::ConnectionAccessToken, &row.access_token_enc)?,
        refresh_token_enc: rotate(SecretField::ConnectionRefreshToken, &row.refresh_token_enc)?,
    };
    Ok((new != *row).then_some(new))
}
