//! The web side of the dashboard tests: `flashline dashboard` as a child
//! (its address read from its first line), curl as the HTTP client (an
//! independent one), and a headless Chromium driven through chromedriver's
//! WebDriver API, all on 127.0.0.1 (or inside the test's namespaces).
//!
//! Chromium and chromedriver run in a network namespace of their own with
//! only `lo` up ([`LoopbackNetns`]), so whatever the browser tries (updates,
//! DNS prefetch, safe browsing) can reach nothing but that namespace's
//! 127.0.0.1; the dashboard under test listens there too. The flags that ask
//! Chromium to stay quiet remain, to keep it fast, not to keep it in. They
//! also run in a PID namespace of their own (`unshare --pid --kill-child`):
//! when the test ends the session, or cannot, killing that one process
//! kills chromedriver and every Chromium process with it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::child::{Bounded, LineChild, QUICK, die_with_test};
use super::netns::LoopbackNetns;
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
        && require(have_program("unshare"), "unshare (Debian package util-linux) is not installed")
        && super::netns::unavailable_reason().is_none_or(|reason| require(false, &reason))
}

/// chromedriver's port inside the browser's namespace: nothing else listens
/// there, so a fixed port cannot be taken by another test.
const DRIVER_PORT: u16 = 9515;

/// A headless Chromium session through chromedriver, in a namespace with
/// only `lo`; everything ends on drop.
pub struct Browser {
    /// `unshare`, whose child (chromedriver) is the PID namespace's init.
    driver: std::process::Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
    // Dropped after `driver` is killed (fields drop in order).
    netns: LoopbackNetns,
}

impl Browser {
    /// Starts chromedriver in a new namespace with only `lo` and opens a
    /// session; start the dashboard it visits with `Some(browser.namespace())`.
    pub fn start() -> Browser {
        let netns = LoopbackNetns::create().expect("browser_available() said namespaces can be made");
        let driver = die_with_test(
            netns
                .command("unshare")
                .args(["--pid", "--fork", "--kill-child", "chromedriver"])
                .arg(format!("--port={DRIVER_PORT}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .spawn()
        .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{DRIVER_PORT}");
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser { driver, base, session: String::new(), _profile: profile, netns };
        let ready = Instant::now() + Duration::from_secs(20);
        while browser.driver_call("GET", &format!("{}/status", browser.base), None).is_none() {
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
        let answer = browser
            .driver_call("POST", &format!("{}/session", browser.base), Some(&capabilities))
            .expect("chromedriver answers a new session");
        browser.session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session from chromedriver: {answer}"))
            .to_string();
        browser
    }

    /// The namespace the browser runs in (for `Dashboard::start`).
    pub fn namespace(&self) -> &str {
        &self.netns.name
    }

    /// Forgets the session id, as when chromedriver lost the session: the
    /// drop's DELETE then fails (for the test that Chromium is reaped anyway).
    pub fn lose_session(&mut self) {
        self.session = "no-such-session".into();
    }

    /// The pid of the process whose death ends chromedriver and Chromium.
    pub fn reaper_pid(&self) -> u32 {
        self.driver.id()
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let answer =
            self.driver_call(method, &url, body).unwrap_or_else(|| panic!("chromedriver: {method} {path} failed"));
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
            let _ = self.driver_call("DELETE", &format!("{}/session/{}", self.base, self.session), None);
        }
        // Whether or not the session ended: `unshare --kill-child` passes
        // the SIGKILL on to chromedriver, and with the PID namespace's init
        // gone the kernel kills every Chromium process in it.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// One WebDriver call with curl from inside the browser's namespace;
    /// None when chromedriver does not answer.
    fn driver_call(&self, method: &str, url: &str, body: Option<&Value>) -> Option<Value> {
        let mut command = self.netns.command("curl");
        command.args(["-sS", "--max-time", "60", "--noproxy", "*", "-X", method]);
        command.args(["-H", "Content-Type: application/json"]);
        if let Some(body) = body {
            command.args(["--data-binary", &body.to_string()]);
        }
        let output = command.arg(url).output_within(Duration::from_secs(90));
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }
}
