//! The dashboard in a real browser (headless Chromium through chromedriver), on both backends:
//! sign in, see the failed send, click Retry, see it sent. Screenshots are saved under
//! `target/screenshots/` (`dashboard-failed-<backend>.png`, `dashboard-retried-<backend>.png`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test says so and passes, unless `SNORQ_TEST_REQUIRE_BROWSER` is set (as in CI), where it fails.

use crate::common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::outbound::{graph_error, platform_answers, setup};
use common::{Backend, project_root};
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts chromedriver on a free port; `None` when the browser is not installed.
async fn chromedriver() -> Option<(Driver, String)> {
    if !PathBuf::from(CHROMIUM).exists() || !PathBuf::from(CHROMEDRIVER).exists() {
        assert!(
            std::env::var_os("SNORQ_TEST_REQUIRE_BROWSER").is_none(),
            "chromium and chromedriver are required here (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipping: chromium / chromedriver are not installed");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((driver, format!("http://127.0.0.1:{port}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

fn screenshot_path(name: &str) -> PathBuf {
    let dir = project_root().join("target").join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

backend_tests!(log_in_see_a_failed_send_retry_it_see_it_sent);

async fn log_in_see_a_failed_send_retry_it_see_it_sent(backend: Backend) {
    let Some((_driver, webdriver)) = chromedriver().await else {
        return;
    };
    let s = setup(backend).await;
    platform_answers(
        &s.platform,
        graph_error(400, 131026, "Message undeliverable"),
        Some(1),
    )
    .await;
    let id = s.queued("Your order has shipped").await;
    s.wait_status(&id, "failed").await;

    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--window-size=1400,900"]}),
    );
    snorq::server::install_crypto_provider();
    let browser = ClientBuilder::rustls()
        .expect("tls")
        .capabilities(capabilities)
        .connect(&webdriver)
        .await
        .expect("a browser session");

    browser.goto(&s.app.url("/dashboard")).await.unwrap();
    // Not signed in: the login page.
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/dashboard/login")
    );
    browser
        .find(Locator::Css("input[name=email]"))
        .await
        .unwrap()
        .send_keys("agent@example.com")
        .await
        .unwrap();
    browser
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("correct horse battery")
        .await
        .unwrap();
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("section.tiles"))
        .await
        .unwrap();

    browser
        .goto(&s.app.url("/dashboard/sends?status=failed"))
        .await
        .unwrap();
    let row = browser
        .find(Locator::Id(&format!("send-{id}")))
        .await
        .expect("the failed send's row");
    let text = row.text().await.unwrap();
    assert!(
        text.contains("131026") && text.contains("Message undeliverable"),
        "{text}"
    );
    let png = browser.screenshot().await.unwrap();
    std::fs::write(
        screenshot_path(&format!("dashboard-failed-{backend:?}.png").to_lowercase()),
        png,
    )
    .unwrap();

    row.find(Locator::Css("form[action$='/retry'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let notice = browser
        .wait()
        .for_element(Locator::Css("p.notice"))
        .await
        .unwrap();
    assert!(notice.text().await.unwrap().contains("Retry queued"));

    // The worker sends it; the list of all sends shows it sent.
    let mut status = String::new();
    for _ in 0..100 {
        browser
            .goto(&s.app.url("/dashboard/sends?status=all"))
            .await
            .unwrap();
        let row = browser.find(Locator::Id(&format!("send-{id}"))).await.unwrap();
        status = row.attr("data-status").await.unwrap().unwrap_or_default();
        if status == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, "sent");
    let png = browser.screenshot().await.unwrap();
    std::fs::write(
        screenshot_path(&format!("dashboard-retried-{backend:?}.png").to_lowercase()),
        png,
    )
    .unwrap();
    browser.close().await.unwrap();
    assert_eq!(s.platform_calls().await.len(), 2);
}
