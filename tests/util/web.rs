//! The web side of the dashboard tests: `flashline dashboard` as a child
//! (its address read from its first line), curl as the HTTP client (an
//! independent one), and a headless Chromium driven through chromedriver's
//! WebDriver API, all on 127.0.0.1 (or inside the test's namespaces).
//!
//! Chromium gets the flags that keep it off the network (no sync, no
//! component updates, no background requests) and a fresh profile folder.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::child::{Bounded, LineChild, QUICK, die_with_test};
use super::{flashline, have_program, require};

/// A running `flashline dashboard`, killed on drop.
pub struct Dashboard {
    pub child: LineChild,
    /// `http://ADDR:PORT`
    pub base: String,
}

impl Dashboard {
    /// Starts the dashboard on `db` with `args`, optionally inside a
    /// namespace (`ip netns exec NS`), and waits for its "on http://" line.
    pub fn start(db: &str, args: &[&str], namespace: Option<&str>) -> Dashboard {
        let mut command = match namespace {
            Some(ns) => {
                let mut command = super::netns::in_namespace(ns, super::flashline_bin());
                command.env_remove("NO_COLOR");
                command
            }
            None => flashline(),
        };
        command.args(["dashboard", "--db", db]).args(args);
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = LineChild::spawn(&mut command);
        let line = child.line_matching(Duration::from_secs(30), |line| line.contains(" on http://"));
        let base =
            line.split(" on ").nth(1).and_then(|rest| rest.split('/').nth(2)).map(|host| format!("http://{host}"));
        Dashboard { child, base: base.unwrap_or_else(|| panic!("no address in `{line}`")) }
    }
}

/// An HTTP answer as curl saw it.
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// GETs `url` with curl (extra curl arguments in `extra`), optionally from
/// inside a namespace.
pub fn get(url: &str, extra: &[&str], namespace: Option<&str>) -> Answer {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let mut command = match namespace {
        Some(ns) => super::netns::in_namespace(ns, "curl"),
        None => Command::new("curl"),
    };
    command.args(["-sS", "--max-time", "10", "--noproxy", "*", "-D", headers.to_str().unwrap(), "-o", "-"]);
    command.args(["-w", "\n%{http_code}"]).args(extra).arg(url);
    let output = command.output_within(QUICK);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Answer {
        status: status.trim().parse().unwrap_or_else(|_| {
            panic!("curl {url}: no status in `{text}`: {}", String::from_utf8_lossy(&output.stderr))
        }),
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        body: body.to_string(),
    }
}

/// Whether the browser tests can run here (under CI: must).
pub fn browser_available() -> bool {
    require(have_program("chromium"), "chromium (Debian package chromium) is not installed")
        && require(have_program("chromedriver"), "chromedriver (Debian package chromium-driver) is not installed")
}

/// A headless Chromium session through chromedriver; both end on drop.
pub struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session.
    pub fn start() -> Browser {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let driver = die_with_test(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .spawn()
        .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser { driver, base, session: String::new(), _profile: profile };
        let ready = Instant::now() + Duration::from_secs(20);
        while driver_call("GET", &format!("{}/status", browser.base), None).is_none() {
            assert!(Instant::now() < ready, "chromedriver did not answer within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--window-size=1280,1100",
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        }}});
        let answer = driver_call("POST", &format!("{}/session", browser.base), Some(&capabilities))
            .expect("chromedriver answers a new session");
        browser.session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session from chromedriver: {answer}"))
            .to_string();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let answer = driver_call(method, &url, body).unwrap_or_else(|| panic!("chromedriver: {method} {path} failed"));
        if answer["value"].get("error").is_some() {
            panic!("chromedriver: {method} {path}: {answer}");
        }
        answer["value"].clone()
    }

    /// Loads `url` (and waits for the page's load event).
    pub fn open(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub fn run(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(&json!({ "script": script, "args": [] })))
    }

    /// The page's visible text.
    pub fn text(&self) -> String {
        self.run("return document.body ? document.body.innerText : '';").as_str().unwrap_or_default().to_string()
    }

    /// The visible text of the element `selector` names ("" when absent).
    pub fn text_of(&self, selector: &str) -> String {
        let script = format!("var e = document.querySelector({}); return e ? e.innerText : '';", json!(selector));
        self.run(&script).as_str().unwrap_or_default().to_string()
    }

    /// Polls the text of `selector` until `wanted` holds or `limit` passes; the
    /// time it took, or None with the last text.
    pub fn wait_for_text(
        &self,
        selector: &str,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            let text = self.text_of(selector);
            if wanted(&text) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                return Err(text);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Saves a PNG screenshot of the window.
    pub fn screenshot(&self, path: &Path) {
        let encoded = self.call("GET", "/screenshot", None);
        let dir = tempfile::tempdir().unwrap();
        let b64 = dir.path().join("shot.b64");
        std::fs::write(&b64, encoded.as_str().expect("base64 PNG")).unwrap();
        let output = Command::new("base64").arg("-d").arg(&b64).output_within(QUICK);
        assert!(output.status.success(), "base64 -d failed");
        std::fs::write(path, output.stdout).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = driver_call("DELETE", &format!("{}/session/{}", self.base, self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One WebDriver call with curl; None when chromedriver does not answer.
fn driver_call(method: &str, url: &str, body: Option<&Value>) -> Option<Value> {
    let mut command = Command::new("curl");
    command.args(["-sS", "--max-time", "60", "--noproxy", "*", "-X", method, "-H", "Content-Type: application/json"]);
    if let Some(body) = body {
        command.args(["--data-binary", &body.to_string()]);
    }
    let output = command.arg(url).output_within(Duration::from_secs(90));
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}
