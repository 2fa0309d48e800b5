//! Load generators behind `snorq-tools bench-ingest`, `snorq-tools bench-send` and `snorq-tools bench-inbox`
//! (figures in docs/benchmarks.md).

pub mod inbox;
pub mod ingest;
pub mod live;
pub mod send;
pub mod signup;

pub use ingest::{IngestBenchArgs, run};

/// Signs up (signup answers the same for new and taken emails) and signs in: the session
/// token and the user's id.
pub async fn signup_and_login(
    client: &reqwest::Client,
    api_base: &str,
    email: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<(String, uuid::Uuid)> {
    use anyhow::Context;
    let body = serde_json::json!({"email": email, "name": name, "password": password});
    client
        .post(format!("{api_base}/auth/signup"))
        .json(&body)
        .send()
        .await?
        .error_for_status()
        .context("signup (is signup enabled?)")?;
    let session: serde_json::Value = client
        .post(format!("{api_base}/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await?
        .error_for_status()
        .context("login after signup")?
        .json()
        .await?;
    let token = session["token"].as_str().context("no token")?.to_owned();
    let user_id = session["user"]["id"]
        .as_str()
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .context("no user id")?;
    Ok((token, user_id))
}
