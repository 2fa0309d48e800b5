//! Proof that a token reaches the account a connection claims, asked of the platform before
//! any connection is created or re-credited with manual credentials, and again by a check.
//! Without it, an admin could claim someone else's Page or number with any token and receive
//! its customers' messages.
//!
//! - WhatsApp: the phone number id must be among the phone numbers of a WhatsApp Business
//!   Account the token manages (`GET /{waba_id}/phone_numbers`). The WABA is the one given,
//!   or those Graph's `debug_token` lists for the token (needs the WhatsApp app configured).
//! - Facebook: the token must be the Page's own token: `GET /me` with it answers the Page.
//! - TikTok: `token_info` must name the business account (needs the TikTok app configured).

use serde_json::{Value, json};
use snorq_connectors::{ApiError, ErrorClass, Platform, Secret};

use super::{App, AppError, AppResult};

/// What the proof learned, kept in the connection's settings (e.g. WhatsApp's `waba_id`).
#[derive(Debug, Default)]
pub struct Proven {
    pub settings: Value,
}

/// Most WABAs tried when `debug_token` lists several.
const MAX_WABAS: usize = 20;

fn not_reached(platform: Platform, what: &str) -> AppError {
    AppError::Unproven {
        code: "account_not_reached",
        message: format!("the {platform} token given does not reach {what}"),
        field: Some("access_token"),
    }
}

/// A platform's answer turned into ours: a rejected token is the caller's 422, an outage 502.
fn platform_error(platform: Platform, err: &ApiError) -> AppError {
    match err.class {
        ErrorClass::Auth => AppError::Unproven {
            code: "token_rejected",
            message: format!("{platform} rejected the token: {err}"),
            field: Some("access_token"),
        },
        class if class.is_outage() => {
            AppError::PlatformUnavailable(format!("could not ask {platform} about the token: {err}"))
        }
        // The object is not visible with this token (Graph's error 100), or not allowed.
        _ => AppError::Unproven {
            code: "account_not_reached",
            message: format!("the {platform} token given does not reach that account: {err}"),
            field: Some("access_token"),
        },
    }
}

/// Asks the platform whether `token` reaches `account_id`. `waba_id` is WhatsApp's optional
/// hint (the account the number belongs to).
pub async fn prove(
    app: &App,
    platform: Platform,
    account_id: &str,
    token: &Secret,
    waba_id: Option<&str>,
) -> AppResult<Proven> {
    let client = app.platform_client()?;
    match platform {
        Platform::WhatsApp => {
            let wabas = match waba_id {
                Some(waba) => vec![waba.to_owned()],
                None => {
                    let Some(meta) = app.meta_app(Platform::WhatsApp) else {
                        return Err(AppError::Unproven {
                            code: "waba_id_required",
                            message: "give the number's waba_id (WhatsApp Business Account id): this \
                                      server has no WhatsApp app configured to look it up"
                                .into(),
                            field: Some("waba_id"),
                        });
                    };
                    let info = client
                        .meta_debug_token(platform, &meta, token)
                        .await
                        .map_err(|e| platform_error(platform, &e))?;
                    if !info.is_valid {
                        return Err(AppError::Unproven {
                            code: "token_rejected",
                            message: info
                                .error_message
                                .unwrap_or_else(|| "Meta says the token is not valid".into()),
                            field: Some("access_token"),
                        });
                    }
                    info.whatsapp_waba_ids
                }
            };
            for waba in wabas.iter().take(MAX_WABAS) {
                let numbers = client
                    .whatsapp_phone_numbers(waba, token)
                    .await
                    .map_err(|e| platform_error(platform, &e))?;
                if numbers.iter().any(|n| n == account_id) {
                    return Ok(Proven {
                        settings: json!({ "waba_id": waba }),
                    });
                }
            }
            Err(not_reached(platform, &format!("the phone number {account_id}")))
        }
        Platform::Facebook => {
            let me = client
                .meta_me(platform, token)
                .await
                .map_err(|e| platform_error(platform, &e))?;
            if me.id == account_id {
                Ok(Proven::default())
            } else {
                Err(AppError::Unproven {
                    code: "account_not_reached",
                    message: format!(
                        "the token is not the Page token of Page {account_id} (give the Page's own \
                         access token, not a user token)"
                    ),
                    field: Some("access_token"),
                })
            }
        }
        Platform::TikTok => {
            let tiktok = app.tiktok_app().ok_or_else(|| {
                AppError::NotConfigured(
                    "verifying a TikTok account needs tiktok_app_id and tiktok_app_secret".into(),
                )
            })?;
            let info = client
                .tiktok_token_info(&tiktok, token)
                .await
                .map_err(|e| platform_error(platform, &e))?;
            if info.open_id.as_deref() == Some(account_id) {
                Ok(Proven::default())
            } else {
                Err(not_reached(
                    platform,
                    &format!("the business account {account_id}"),
                ))
            }
        }
    }
}
