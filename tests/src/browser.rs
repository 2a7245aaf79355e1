//! A headless Chromium driven over WebDriver, for end-to-end tests of the
//! dashboard.
//!
//! [`Browser::start`] finds `chromium` and `chromedriver` (the environment
//! variables `TASKTRAIL_CHROMIUM` / `TASKTRAIL_CHROMEDRIVER` first, then
//! `PATH`, then Debian's paths), installs Debian's `chromium` and
//! `chromium-driver` with apt-get when they are missing and the process is
//! root, starts chromedriver on a free loopback port in a process group of
//! its own (killed on drop, and by a watchdog if the test process dies) and
//! opens a session with a fresh profile directory.
//!
//! The browser's console is recorded (`goog:loggingPrefs`) and read through
//! chromedriver's log endpoint; [`Browser::assert_no_console_errors`] fails
//! on any `SEVERE` entry: a script error, a failed request, a CSP
//! violation, a `console.error`. Starting a browser proves once that the
//! log works by logging an error on `about:blank` and reading it back.
//!
//! Screenshots go to `target/e2e-artifacts/` as PNG.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How often the `wait_*` helpers look again.
pub const POLL: Duration = Duration::from_millis(100);
/// How long they look before failing: generous for a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(10);

/// The flags Chromium runs with.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1280,900",
];

/// One entry of the browser's console log.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub timestamp: i64,
}

impl LogEntry {
    pub fn is_error(&self) -> bool {
        self.level == "SEVERE"
    }
}

impl std::fmt::Display for LogEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} {}] {}", self.level, self.source, self.message)
    }
}

/// A WebDriver session on a headless Chromium. Deref to
/// [`fantoccini::Client`] for everything WebDriver does.
pub struct Browser {
    client: Client,
    /// Every console entry read so far (reading the log drains it).
    log: Mutex<Vec<LogEntry>>,
    artifacts: PathBuf,
    // Dropped after the client: the driver (and its browser), then the
    // profile directory they used.
    driver: Driver,
    _profile: tempfile::TempDir,
}

impl std::ops::Deref for Browser {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Browser {
    /// Starts chromedriver and opens a session; panics with what to install
    /// or what went wrong when it cannot.
    pub async fn start() -> Browser {
        let (chromium, chromedriver) = match find_or_install() {
            Ok(found) => found,
            Err(why) => panic!("cannot run the browser tests: {why}"),
        };
        let profile = tempfile::Builder::new()
            .prefix("tasktrail-chromium-")
            .tempdir()
            .expect("a temp dir for the browser profile");
        let driver = Driver::launch(&chromedriver, profile.path())
            .unwrap_or_else(|why| panic!("cannot start {}: {why}", chromedriver.display()));

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!(
            "--user-data-dir={}",
            profile.path().join("data").display()
        ));
        let capabilities: Capabilities = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        }))
        .expect("capabilities are a JSON object");
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot open a WebDriver session on {} with {}: {e}\nchromedriver's log:\n{}",
                    driver.url(),
                    chromium.display(),
                    driver.log_tail()
                )
            });

        let artifacts = artifacts_dir();
        std::fs::create_dir_all(&artifacts)
            .unwrap_or_else(|e| panic!("create {}: {e}", artifacts.display()));
        let browser = Browser {
            client,
            log: Mutex::new(Vec::new()),
            artifacts,
            driver,
            _profile: profile,
        };
        browser.prove_console_log_works().await;
        browser
    }

    /// Logs an error on `about:blank` and reads it back, so that a clean
    /// console later means something; then forgets it.
    async fn prove_console_log_works(&self) {
        const PROBE: &str = "tasktrail-e2e-console-probe";
        self.client
            .goto("about:blank")
            .await
            .expect("open about:blank");
        self.client
            .execute(&format!("console.error('{PROBE}')"), vec![])
            .await
            .expect("run a script");
        let seen = self
            .wait_until("the probe error in the console log", || async {
                let entries = self.read_log().await;
                Some(entries)
                    .filter(|e| e.iter().any(|e| e.is_error() && e.message.contains(PROBE)))
            })
            .await;
        assert!(!seen.is_empty());
        self.log.lock().unwrap().clear();
    }

    /// The browser log entries since the last read (chromedriver drains
    /// them); also kept for [`Browser::console_log`].
    async fn read_log(&self) -> Vec<LogEntry> {
        let value = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("read the browser log through chromedriver");
        let entries: Vec<LogEntry> = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("unexpected browser log {value}: {e}"));
        self.log.lock().unwrap().extend(entries.iter().cloned());
        entries
    }

    /// Every console entry since the browser started (after the probe).
    pub async fn console_log(&self) -> Vec<LogEntry> {
        self.read_log().await;
        self.log.lock().unwrap().clone()
    }

    /// The `SEVERE` console entries since the browser started.
    pub async fn console_errors(&self) -> Vec<LogEntry> {
        self.console_log()
            .await
            .into_iter()
            .filter(LogEntry::is_error)
            .collect()
    }

    /// Panics listing every console error (level `SEVERE`), if any.
    pub async fn assert_no_console_errors(&self) {
        let errors = self.console_errors().await;
        if !errors.is_empty() {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!(
                "{} console error(s) in the browser:\n  {}",
                errors.len(),
                list.join("\n  ")
            );
        }
    }

    /// Where screenshots go: `target/e2e-artifacts/`.
    pub fn artifacts(&self) -> &Path {
        &self.artifacts
    }

    /// Saves a PNG of the viewport as `target/e2e-artifacts/{name}`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("take a screenshot");
        let path = self.artifacts.join(name);
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Polls `check` every [`POLL`] until it gives `Some`, for at most
    /// [`WAIT`]; on timeout saves `timeout.png` and panics naming `what`.
    pub async fn wait_until<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        self.wait_until_for(what, WAIT, check).await
    }

    /// [`Browser::wait_until`] with its own time limit.
    pub async fn wait_until_for<T, F, Fut>(&self, what: &str, limit: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = check().await {
                return found;
            }
            if Instant::now() >= deadline {
                let url = self
                    .client
                    .current_url()
                    .await
                    .map_or_else(|e| format!("(unknown: {e})"), |u| u.to_string());
                let shot = self.screenshot("timeout.png").await;
                panic!(
                    "timed out after {limit:?} waiting for {what} (at {url}; screenshot {})",
                    shot.display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until an element matches the CSS `selector`.
    pub async fn wait_for_css(&self, selector: &str) -> fantoccini::elements::Element {
        self.wait_until(&format!("an element `{selector}`"), || async {
            self.client.find(Locator::Css(selector)).await.ok()
        })
        .await
    }

    /// Runs `script` (a function body: `return …`) and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script `{script}` failed: {e}"))
    }

    /// Ends the WebDriver session (the browser quits), then stops
    /// chromedriver. Dropping a `Browser` also stops both, less politely.
    pub async fn close(self) {
        let Browser { client, driver, .. } = self;
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        drop(driver);
    }
}

/// `POST /session/{id}/se/log {"type": "browser"}`: chromedriver's
/// (non-W3C) log endpoint. It returns the entries since the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

/// `target/e2e-artifacts/` of the workspace (or of `CARGO_TARGET_DIR`).
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
            tests.parent().unwrap_or(tests).join("target")
        });
    target.join("e2e-artifacts")
}

/// A chromedriver process in its own process group (Chromium joins it).
struct Driver {
    child: Child,
    watchdog: Option<Child>,
    port: u16,
    log_path: PathBuf,
}

impl Driver {
    fn launch(chromedriver: &Path, dir: &Path) -> Result<Driver, String> {
        let log_path = dir.join("chromedriver.log");
        let mut last = String::new();
        // A free port can be taken between finding it and binding it: try
        // a few.
        for _ in 0..3 {
            let port = tasktrail_harness::sys::free_port()?;
            let child = {
                use std::os::unix::process::CommandExt;
                Command::new(chromedriver)
                    .arg(format!("--port={port}"))
                    .arg(format!("--log-path={}", log_path.display()))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .map_err(|e| e.to_string())?
            };
            let mut driver = Driver {
                child,
                watchdog: None,
                port,
                log_path: log_path.clone(),
            };
            driver.watchdog = Some(driver.watchdog()?);
            match driver.wait_ready() {
                Ok(()) => return Ok(driver),
                Err(why) => last = why,
            }
        }
        Err(last)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A shell that kills the process group once this test process is
    /// gone, however it ended (dropping the driver kills the shell).
    fn watchdog(&self) -> Result<Child, String> {
        let script = format!(
            "while [ -d /proc/{parent} ]; do sleep 0.5; done; kill -KILL -{group} 2>/dev/null",
            parent = std::process::id(),
            group = self.child.id(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start the watchdog: {e}"))
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "chromedriver exited ({status}):\n{}",
                    self.log_tail()
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        Err(format!(
            "chromedriver did not listen on {addr} within 20 s:\n{}",
            self.log_tail()
        ))
    }

    /// The last lines of chromedriver's log.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browser it started.
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!("kill -KILL -{} 2>/dev/null", self.child.id()),
            ])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// An executable named by the environment variable `var`, else the first of
/// `names` on `PATH`, else the first of `paths` that exists.
fn find(var: &str, names: &[&str], paths: &[&str]) -> Result<Option<PathBuf>, String> {
    if let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(&value);
        return if is_executable(&path) {
            Ok(Some(path))
        } else {
            Err(format!(
                "{var}={} is not an executable file",
                path.display()
            ))
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path_var) {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Ok(Some(candidate));
            }
        }
    }
    Ok(paths.iter().map(PathBuf::from).find(|p| is_executable(p)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn find_both() -> Result<(Option<PathBuf>, Option<PathBuf>), String> {
    Ok((
        find(
            "TASKTRAIL_CHROMIUM",
            &[
                "chromium",
                "chromium-browser",
                "google-chrome-stable",
                "google-chrome",
            ],
            &["/usr/bin/chromium", "/usr/lib/chromium/chromium"],
        )?,
        find(
            "TASKTRAIL_CHROMEDRIVER",
            &["chromedriver"],
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        )?,
    ))
}

/// Chromium and chromedriver, installed with apt-get when missing (as root).
fn find_or_install() -> Result<(PathBuf, PathBuf), String> {
    if let (Some(chromium), Some(driver)) = find_both()? {
        return Ok((chromium, driver));
    }
    const WHAT: &str = "Debian's `chromium` and `chromium-driver` packages \
                        (or set TASKTRAIL_CHROMIUM and TASKTRAIL_CHROMEDRIVER)";
    tasktrail_harness::sys::apt_install(&["chromium", "chromium-driver"], WHAT)?;
    match find_both()? {
        (Some(chromium), Some(driver)) => Ok((chromium, driver)),
        _ => Err(format!("installed {WHAT} but still cannot find them")),
    }
}
