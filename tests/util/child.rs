//! Child processes with a deadline: a test that runs a program never hangs on
//! it. A child still running at its deadline is killed, and the test fails
//! with the command and everything the child printed. Server children die with
//! the test process (`PR_SET_PDEATHSIG`), so a test killed by nextest's
//! terminate-after leaves no vsftpd or in.tftpd behind. Each child leads a
//! process group of its own, and a child killed at its deadline is killed
//! with its group: a grandchild (curl under `sh -c`) cannot keep the test
//! waiting on a pipe it inherited.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A limit for commands that finish at once (ip, nft, chown, pgrep, kill).
pub const QUICK: Duration = Duration::from_secs(30);
/// A limit for a flashline run: its own timeouts end it well before this,
/// also a 64 MiB upload on a loaded 2-core runner. Shorter than the time
/// nextest gives an ordinary test (`.config/nextest.toml`: 3 x 60 s), so a
/// hanging child is killed here, and the test fails with its output, before
/// nextest kills the test and the output is lost.
pub const FLASHLINE: Duration = Duration::from_secs(150);

/// `output()` and `status()` with a time limit.
pub trait Bounded {
    /// Like `output()` (stdin closed, stdout and stderr captured); kills the
    /// child and panics with its output if it still runs after `limit`.
    fn output_within(&mut self, limit: Duration) -> Output;
    /// Like `status()` with the standard streams as the caller set them;
    /// kills the child and panics if it still runs after `limit`.
    fn status_within(&mut self, limit: Duration) -> ExitStatus;
}

impl Bounded for Command {
    fn output_within(&mut self, limit: Duration) -> Output {
        let child = spawn(self.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()));
        LineChild::from_child(child, describe(self)).finish_within(limit)
    }

    fn status_within(&mut self, limit: Duration) -> ExitStatus {
        let mut child = spawn(self);
        match wait_until(&mut child, Instant::now() + limit) {
            Some(status) => status,
            None => {
                kill_group(&mut child);
                let _ = child.wait();
                panic!(
                    "`{}` still ran after {limit:?}: killed (its output went where the test sent it)",
                    describe(self)
                )
            }
        }
    }
}

/// Makes a child get SIGKILL when the thread that spawned it ends (for a
/// test, its process or its test thread): spawn servers from the test's own
/// thread, not from a helper thread that returns.
pub fn die_with_test(command: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)
        })
    }
}

fn spawn(command: &mut Command) -> Child {
    let what = describe(command);
    die_with_test(command).process_group(0).spawn().unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"))
}

/// SIGKILL to `child` (not reaped yet) and its process group: whatever it
/// started goes with it.
fn kill_group(child: &mut Child) {
    // Not reaped, so its pid (the group's id) is still its own.
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
    let _ = child.kill();
}

/// The pids of `root`'s descendants now, children before grandchildren
/// (from /proc; `root` itself not included).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let Some(ppid) = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)) else { continue };
        parents.push((pid, ppid.parse::<u32>().unwrap_or(0)));
    }
    let mut found = vec![root];
    let mut at = 0;
    while at < found.len() && found.len() < 10_000 {
        let parent = found[at];
        found.extend(parents.iter().filter(|(_, p)| *p == parent).map(|(pid, _)| *pid));
        at += 1;
    }
    found.remove(0);
    found
}

/// Kills `child` (not reaped yet) and every process below it, also those
/// that left its process group (vsftpd's sessions call setsid): each is
/// stopped first, so none can fork a new one past the walk, then all get
/// SIGKILL. Bounded: at most 10 walks.
pub fn kill_tree(child: &mut Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let signal = |pid: u32, signal: Signal| {
        let _ = kill(Pid::from_raw(pid as i32), signal);
    };
    signal(child.id(), Signal::SIGSTOP);
    let mut stopped = Vec::new();
    for _ in 0..10 {
        let new: Vec<u32> = descendants(child.id()).into_iter().filter(|pid| !stopped.contains(pid)).collect();
        if new.is_empty() {
            break;
        }
        for &pid in &new {
            signal(pid, Signal::SIGSTOP);
        }
        stopped.extend(new);
    }
    for pid in stopped {
        signal(pid, Signal::SIGKILL);
    }
    let _ = child.kill();
}

/// How long the output readers may still take after the child ended (a
/// grandchild holding the pipes is killed then).
const READERS_AFTER_EXIT: Duration = Duration::from_secs(5);

fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Waits for `child` until `deadline`; None if it still runs then.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A running child whose stderr the test reads line by line as it comes (to
/// act on a progress line) and whose stdout is collected. Killed on drop.
pub struct LineChild {
    child: Child,
    what: String,
    lines: mpsc::Receiver<String>,
    /// Every stderr line read so far (by `next_line_within` or at the end).
    seen: Vec<String>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<()>>,
}

impl LineChild {
    /// Starts `command` with stdin closed and stdout and stderr captured.
    pub fn spawn(command: &mut Command) -> LineChild {
        let child = spawn(command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()));
        LineChild::from_child(child, describe(command))
    }

    fn from_child(mut child: Child, what: String) -> LineChild {
        let mut out = child.stdout.take().expect("stdout is piped");
        let err = child.stderr.take().expect("stderr is piped");
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            bytes
        });
        let (sender, lines) = mpsc::channel();
        let stderr = std::thread::spawn(move || {
            let mut reader = BufReader::new(err);
            let mut line = Vec::new();
            // Bytes, not `lines()`: a line that is not UTF-8 must not stop the
            // reading (the child would then block on a full pipe).
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']).to_string();
                line.clear();
                if sender.send(text).is_err() {
                    return;
                }
            }
        });
        LineChild { child, what, lines, seen: Vec::new(), stdout: Some(stdout), stderr: Some(stderr) }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the child (SIGINT: Ctrl-C; SIGKILL: a crash).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal);
    }

    /// Sends SIGINT (Ctrl-C), e.g. to stop a relay that runs until interrupted.
    pub fn interrupt(&self) {
        self.signal(nix::sys::signal::Signal::SIGINT);
    }

    /// The next stderr line, or None when stderr closed or `deadline` passed.
    pub fn next_line_within(&mut self, deadline: Instant) -> Option<String> {
        let line = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Reads stderr lines until one satisfies `wanted` (returned) or stderr
    /// closes or `limit` passes; then the test fails with everything so far.
    pub fn line_matching(&mut self, limit: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        while let Some(line) = self.next_line_within(deadline) {
            if wanted(&line) {
                return line;
            }
        }
        let seen = self.seen.join("\n");
        panic!("`{}`: no such line on stderr within {limit:?}; it printed:\n{seen}", self.what)
    }

    /// Waits for the child to end within `limit` and returns its output
    /// (stderr: every line, also those already read). Kills it and fails
    /// with its output if it runs longer.
    pub fn finish_within(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        let status = wait_until(&mut self.child, deadline);
        if status.is_none() {
            kill_group(&mut self.child);
            let _ = self.child.wait();
        }
        // The readers end when every process holding the pipes has: the
        // child's group was killed above; one the child left behind when it
        // ended by itself is killed with the group once the deadline (or a
        // short grace) has passed. The group's id cannot be reused while
        // one of its members still holds a pipe.
        let finished = |s: &Self| {
            s.stdout.as_ref().is_none_or(|t| t.is_finished()) && s.stderr.as_ref().is_none_or(|t| t.is_finished())
        };
        let wait_for_readers = |s: &Self, until: Instant| {
            while !finished(s) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        wait_for_readers(&self, deadline.max(Instant::now() + READERS_AFTER_EXIT));
        let lingering = !finished(&self);
        if lingering {
            let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            wait_for_readers(&self, Instant::now() + READERS_AFTER_EXIT);
            assert!(
                finished(&self),
                "`{}`: a process outside its process group still holds its output pipes",
                self.what
            );
        }
        let stdout = self.stdout.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
        if let Some(reader) = self.stderr.take() {
            let _ = reader.join();
        }
        self.seen.extend(self.lines.try_iter());
        let mut stderr = self.seen.join("\n").into_bytes();
        if !stderr.is_empty() {
            stderr.push(b'\n');
        }
        let Some(status) = status else {
            panic!(
                "`{}` still ran after {limit:?}: killed\nstdout:\n{}\nstderr:\n{}",
                self.what,
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            )
        };
        assert!(
            !lingering,
            "`{}` ended, but a process it started still held its output after {limit:?}: killed\nstdout:\n{}\nstderr:\n{}",
            self.what,
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
        Output { status, stdout, stderr }
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        if self.stdout.is_some() {
            if matches!(self.child.try_wait(), Ok(None)) {
                kill_group(&mut self.child);
            }
            let _ = self.child.wait();
        }
    }
}

/// What one child used, read from `wait4` when it ended: its own peak RSS
/// and CPU time, not the largest of all children so far that
/// `getrusage(RUSAGE_CHILDREN)` gives.
pub struct Measured {
    pub status: ExitStatus,
    pub wall: Duration,
    /// User plus system CPU time.
    pub cpu: Duration,
    pub max_rss_kib: i64,
}

/// Runs `command` (standard streams as the caller set them) and measures it;
/// kills it and panics if it still runs after `limit`.
// The child is reaped by wait4 (which std cannot see), never by Child::wait.
#[allow(clippy::zombie_processes)]
pub fn measure_within(command: &mut Command, limit: Duration) -> Measured {
    use nix::libc;
    use std::os::unix::process::ExitStatusExt;
    let started = Instant::now();
    let mut child = spawn(command);
    let pid = child.id() as libc::pid_t;
    let mut killed = false;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain data; zero is a valid value for every field.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let options = if killed { 0 } else { libc::WNOHANG };
        // SAFETY: `pid` is our child, not reaped yet (std never waited for
        // it); `status` and `usage` are valid for writes.
        let reaped = unsafe { libc::wait4(pid, &mut status, options, &mut usage) };
        if reaped == pid {
            assert!(!killed, "`{}` still ran after {limit:?}: killed", describe(command));
            let time =
                |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
            return Measured {
                status: ExitStatus::from_raw(status),
                wall: started.elapsed(),
                cpu: time(usage.ru_utime) + time(usage.ru_stime),
                max_rss_kib: usage.ru_maxrss,
            };
        }
        if reaped == -1 {
            let error = std::io::Error::last_os_error();
            assert_eq!(error.kind(), std::io::ErrorKind::Interrupted, "wait4 for `{}`: {error}", describe(command));
            continue;
        }
        if started.elapsed() >= limit {
            // Not reaped yet, so the pid is still this child's.
            kill_group(&mut child);
            killed = true;
            continue;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
