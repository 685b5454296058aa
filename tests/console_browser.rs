//! The console's page in a real browser: headless Chromium (Debian's `chromium`, driven
//! through `chromedriver` over WebDriver) against a running e-commerce job. The page shows
//! every operator of the job, the rates it shows change between two reads, a click on an
//! operator shows its details. The screenshot it takes is `docs/console.png`.
//!
//! Needs `chromedriver` and `chromium` (scripts/test.sh installs both); `SLUICE_CHROMEDRIVER`
//! names another chromedriver.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use sluice_cli::shop::{Shop, ShopSettings};

/// A chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let program = std::env::var("SLUICE_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} ({e}): scripts/test.sh installs chromium and chromium-driver")
            });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(format!("{url}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "{program} did not answer on {url}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": std::env::var("SLUICE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1500,1900"]
        }),
    );
    ClientBuilder::native()
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// The operators the page draws, with the rate each shows.
async fn drawn(client: &Client) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for node in client
        .find_all(Locator::Css("#graph [data-operator]"))
        .await
        .unwrap_or_default()
    {
        let Ok(Some(name)) = node.attr("data-operator").await else {
            continue;
        };
        let rate = match node.find(Locator::Css(".rate")).await {
            Ok(r) => r.attr("data-rate").await.ok().flatten(),
            Err(_) => None,
        };
        out.push((name, rate.and_then(|r| r.parse().ok()).unwrap_or(0.0)));
    }
    out
}

async fn check_page(console: SocketAddr, operators: &[String]) {
    let driver = Driver::start();
    let client = browser(&driver).await;
    client
        .goto(&format!("http://{console}/"))
        .await
        .expect("page loads");

    // Every operator of the job is drawn.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let seen = drawn(&client).await;
        let mut names: Vec<String> = seen.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        let mut expected = operators.to_vec();
        expected.sort();
        if names == expected && seen.iter().any(|(_, r)| *r > 0.0) {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "the page draws {names:?}, the job has {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    // The rates shown change between two reads.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let again = drawn(&client).await;
        if again.len() == first.len() && again.iter().zip(&first).any(|(a, b)| a.1 != b.1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rates did not change: {first:?} then {again:?}"
        );
    }

    // A click on an operator shows its details (the graph is redrawn every second, so a
    // node found may be replaced before the click lands: try again).
    let target = "product_revenue_1m";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let clicked = match client
            .find(Locator::Css(&format!("#graph [data-operator='{target}'] rect")))
            .await
        {
            Ok(node) => node.click().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let shown = match client.find(Locator::Css("#details-name")).await {
            Ok(name) => name.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if clicked.is_ok() && shown == target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no details for {target} after clicking it (click: {clicked:?}, shown: {shown:?})"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let details = client
        .find(Locator::Css("#details"))
        .await
        .expect("details")
        .text()
        .await
        .expect("text");
    assert!(
        details.contains("window") && details.contains("Worker"),
        "{details}"
    );

    // Let the charts fill a little, then keep what the page looks like.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let png = client.screenshot().await.expect("screenshot");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/console.png");
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    let _ = client.close().await;
}

#[test]
fn the_page_shows_every_operator_live_rates_and_details_of_a_running_ecommerce_job() {
    let state = tempfile::tempdir().expect("tempdir");
    let settings = ShopSettings {
        events: 1_000_000,
        workers: Some(2),
        state_dir: Some(state.path().to_path_buf()),
        checkpoint_interval: Duration::from_secs(1),
        console_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..ShopSettings::default()
    };
    let shop = Shop::start(settings).expect("services and tables");
    let handle = shop.job().expect("valid job").start().expect("job starts");
    let console = handle.console_addr().expect("the console serves");
    let job: Value = ureq::get(format!("http://{console}/api/job"))
        .call()
        .expect("api")
        .body_mut()
        .read_json()
        .expect("JSON");
    let operators: Vec<String> = job["graph"]["operators"]
        .as_array()
        .expect("operators")
        .iter()
        .filter_map(|o| o["name"].as_str().map(String::from))
        .collect();
    assert!(operators.len() > 10, "{operators:?}");
    // Orders flow while the browser looks; once it is done, the job is stopped (the rest of
    // the orders then go into the embedded broker without waiting for the job).
    let browser = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(check_page(console, &operators));
    });
    shop.produce_alongside(&handle, |_| {
        if browser.is_finished() {
            handle.stop();
        }
    })
    .expect("produced");
    handle.stop();
    let report = handle.join().expect("the job stops cleanly");
    assert!(report.stopped, "the input ran out before the browser was done");
    browser.join().expect("the browser's checks hold");
}
