//! Running the real `dgram` binary: one-shot runs with a time limit, servers that announce
//! their address, and plain UDP peers. Every read has a timeout; every child is killed and
//! reaped by its own PID when its guard drops.

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dgram")
}

/// How long any single wait in a test may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(10);

/// A finished run: what a user would see.
pub struct Run {
    pub cmd: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panic with everything a person needs to see why.
    pub fn fail(&self, why: &str) -> ! {
        panic!(
            "{why}\ncommand: {}\nstatus: {:?}\nstdout: {:?}\nstderr: {}",
            self.cmd,
            self.status,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        )
    }

    /// Assert the exit code.
    pub fn expect_code(&self, code: i32) -> &Self {
        if self.code() != code {
            self.fail(&format!("expected exit {code}, got {}", self.code()));
        }
        self
    }

    /// Assert stderr contains `text`.
    pub fn expect_stderr(&self, text: &str) -> &Self {
        if !self.stderr.contains(text) {
            self.fail(&format!("stderr lacks {text:?}"));
        }
        self
    }

    /// Assert stdout is exactly `bytes`.
    pub fn expect_stdout(&self, bytes: &[u8]) -> &Self {
        if self.stdout != bytes {
            self.fail(&format!(
                "stdout is not {:?}",
                String::from_utf8_lossy(bytes)
            ));
        }
        self
    }
}

/// A child process, killed and reaped by PID when dropped.
pub struct Guard {
    pub child: Child,
    pub cmd: String,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// Start `dgram ARGS` with `stdin` (None: a pipe the test can write to later).
pub fn spawn(args: &[&str], stdin: Option<&[u8]>) -> Guard {
    spawn_cmd(bin(), args, stdin)
}

/// Start `dgram ARGS` with its stdout left in `guard.child.stdout` for the test to read
/// (and close) itself.
pub fn spawn_own_stdout(args: &[&str]) -> Guard {
    spawn_opts(bin(), args, None, false)
}

/// Start `dgram ARGS` with extra environment variables.
pub fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Guard {
    spawn_opts_env(bin(), args, None, true, env)
}

/// Start any program, with its output collected in the background.
pub fn spawn_cmd(program: &str, args: &[&str], stdin: Option<&[u8]>) -> Guard {
    spawn_opts(program, args, stdin, true)
}

fn spawn_opts(program: &str, args: &[&str], stdin: Option<&[u8]>, drain_stdout: bool) -> Guard {
    spawn_opts_env(program, args, stdin, drain_stdout, &[])
}

fn spawn_opts_env(
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    drain_stdout: bool,
    env: &[(&str, &str)],
) -> Guard {
    let cmd = format!(
        "{program} {}",
        args.iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = Command::new(program)
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd}: {e}"));
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let mut readers = vec![drain(child.stderr.take().unwrap(), Arc::clone(&stderr))];
    if drain_stdout {
        readers.push(drain(child.stdout.take().unwrap(), Arc::clone(&stdout)));
    }
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        // A writer thread, so a large input cannot block the test on a full pipe.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    Guard {
        child,
        cmd,
        stdout,
        stderr,
        readers,
        started: Instant::now(),
    }
}

impl Guard {
    /// Guard a child the test started itself (its stdout, if piped, left to the test);
    /// its stderr, if piped, is collected.
    pub fn adopt(mut child: Child, cmd: String) -> Guard {
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = child
            .stderr
            .take()
            .map(|e| drain(e, Arc::clone(&stderr)))
            .into_iter()
            .collect();
        Guard {
            child,
            cmd,
            stdout: Arc::new(Mutex::new(Vec::new())),
            stderr,
            readers,
            started: Instant::now(),
        }
    }

    /// What the child wrote to stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    /// What the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Wait (bounded) until `cond` holds on stdout; panics with the output on timeout.
    pub fn wait_stdout(&self, what: &str, cond: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + LIMIT;
        loop {
            let out = self.stdout();
            if cond(&out) {
                return out;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what} on stdout of {}\nstdout: {:?}\nstderr: {}",
                    self.cmd,
                    String::from_utf8_lossy(&out),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(2)); // polling interval of a bounded wait
        }
    }

    /// Wait (bounded) until stderr contains `text`.
    pub fn wait_stderr(&self, text: &str) -> String {
        match self.stderr_within(text, LIMIT) {
            Some(err) => err,
            None => panic!(
                "timed out waiting for {text:?} on stderr of {}\nstderr: {}",
                self.cmd,
                self.stderr()
            ),
        }
    }

    /// Stderr once it contains `text`, or `None` if it does not within `wait`.
    pub fn stderr_within(&self, text: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let err = self.stderr();
            if err.contains(text) {
                return Some(err);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2)); // polling interval of a bounded wait
        }
    }

    /// The address from the `listening on ADDR` line, waiting (bounded) for it.
    pub fn announced(&self) -> SocketAddr {
        self.wait_stderr("listening on ");
        // The whole line, not a prefix of it.
        let err = self.wait_stderr("\n");
        let first = err.lines().next().unwrap_or_default();
        first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first stderr line is not the announcement: {err}"))
            .parse()
            .unwrap_or_else(|e| panic!("bad address in {first:?}: {e}"))
    }

    /// Send a signal to the child by its PID.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the PID of our own, not yet reaped, child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Close the child's stdin (end of input).
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Wait (bounded) for the child to exit and collect everything it printed.
    pub fn finish(mut self) -> Run {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {LIMIT:?}\nstdout: {:?}\nstderr: {}",
                    self.cmd,
                    String::from_utf8_lossy(&self.stdout()),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(1)); // polling interval of a bounded wait
        };
        let elapsed = self.started.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Run {
            cmd: self.cmd.clone(),
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
            elapsed,
        }
    }
}

/// Run `dgram ARGS` to completion with `stdin` (empty by default).
pub fn run(args: &[&str]) -> Run {
    run_with_stdin(args, b"")
}

/// Run `dgram ARGS` to completion, feeding `stdin`.
pub fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Run {
    let mut g = spawn(args, Some(stdin));
    g.close_stdin();
    g.finish()
}

/// A `dgram` server (listen, echo, ...) on port 0, with the address it announced.
pub struct Server {
    pub guard: Guard,
    pub addr: SocketAddr,
}

impl Server {
    /// Start `dgram ARGS` and wait for its `listening on ADDR` line.
    pub fn start(args: &[&str]) -> Server {
        let mut guard = spawn(args, None);
        guard.close_stdin();
        let addr = guard.announced();
        Server { guard, addr }
    }

    /// Wait for the server to exit.
    pub fn finish(self) -> Run {
        self.guard.finish()
    }
}

/// A plain UDP socket on `ip:0` with a read timeout: a peer the test controls.
pub fn peer(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s
}

/// Receive one datagram (bounded by the socket's timeout); panics on timeout.
pub fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 65536];
    let (n, from) = s
        .recv_from(&mut buf)
        .expect("a datagram before the timeout");
    buf.truncate(n);
    (buf, from)
}

/// True if a datagram arrives within `wait` (for asserting that none does).
pub fn arrives_within(s: &UdpSocket, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 65536];
    let got = s.recv_from(&mut buf).is_ok();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    got
}

/// A thread that answers up to `n` datagrams on `socket` with `reply(request)` (no answer
/// when it returns `None`), and returns the requests it saw with their senders.
pub fn responder(
    socket: UdpSocket,
    n: usize,
    reply: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static,
) -> JoinHandle<Vec<(Vec<u8>, SocketAddr)>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        for _ in 0..n {
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                break;
            };
            if let Some(answer) = reply(&buf[..len]) {
                let _ = socket.send_to(&answer, from);
            }
            seen.push((buf[..len].to_vec(), from));
        }
        seen
    })
}

/// Whether `program` is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A pseudo-terminal: (master, slave) as files. The slave is what dgram gets as stdin.
pub fn pty() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain libc calls on a descriptor we own; ptsname's buffer is copied at once.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(master)).to_owned();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap();
        (std::fs::File::from_raw_fd(master), slave)
    }
}

/// Everything readable on a pty master until `done` holds on it (bounded), with the
/// terminal's `\r\n` turned back into `\n`.
pub fn read_pty_until(master: &std::fs::File, done: impl Fn(&str) -> bool) -> String {
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + LIMIT;
    let mut seen = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&seen).replace("\r\n", "\n");
        if done(&text) {
            return text;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out reading the terminal; saw {text:?}"
        );
        let mut p = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd; the timeout is bounded.
        unsafe { libc::poll(&mut p, 1, left.as_millis().min(1000) as i32) };
        if p.revents & libc::POLLIN != 0 {
            let mut buf = [0u8; 4096];
            match (&*master).read(&mut buf) {
                Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                _ => {}
            }
        }
    }
}

/// Under `CI=true`, `.ci/run` has installed every tool and runs as root: nothing skips.
fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

static SKIPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One line on the terminal for a skipped test, numbered so the last says how many
/// skipped in this run. Written to stderr itself: libtest hides what a passing test
/// prints with `eprintln!`.
fn skip_line(test: &str, reason: &str) {
    let n = SKIPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("skipped {test}: {reason} [{n} skipped so far]\n").as_bytes(),
    );
}

/// `test` cannot run here for want of a tool or a privilege: say so in one visible
/// line, or, under `CI=true`, fail.
pub fn skip(test: &str, reason: &str) {
    assert!(
        !in_ci(),
        "{test}: {reason}, and under CI=true nothing may skip (.ci/run installs every tool and runs as root)"
    );
    skip_line(test, reason);
}

/// `test` cannot run on this kernel or host (a feature it lacks, a limit it sets):
/// allowed even in CI, and named in the line.
pub fn skip_for_host(test: &str, reason: &str) {
    skip_line(test, reason);
}

/// Whether this runs as root; when not, `test` is skipped (see [`skip`]) for `why`.
pub fn root(test: &str, why: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip(test, &format!("needs root for {why}"));
    false
}

/// Whether `program` is here for `test`; when it is not, `test` is skipped (see [`skip`]).
pub fn tool(test: &str, program: &str) -> bool {
    if have(program) {
        return true;
    }
    skip(test, &format!("{program} is not installed"));
    false
}

/// A socket on a free privileged port of 127.0.0.1 (needs root), or `None`. Port 0
/// cannot ask for a port below 1024, so this scans down from 1023 for a free one.
pub fn privileged_peer() -> Option<UdpSocket> {
    (600..1024)
        .rev()
        .find_map(|p| UdpSocket::bind(("127.0.0.1", p)).ok())
        .inspect(|s| {
            let _ = s.set_read_timeout(Some(LIMIT));
        })
}

/// A free UDP port on 127.0.0.1 for a program that cannot bind port 0 and say which it
/// got (dnsmasq): bound, then released. The caller retries if another process took it.
pub fn released_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Hex text as bytes: tshark's `udp.payload` (`:`-separated or not), `listen -f hex`
/// lines. Anything but hex digits is skipped.
pub fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// The last JSON object on stderr (a `--stats --format json` summary).
/// The `text` field of every JSON line on stdout (`-f json`), in order.
pub fn json_texts(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["text"]
                .as_str()
                .unwrap_or_else(|| panic!("no text: {l}"))
                .to_string()
        })
        .collect()
}

pub fn json_last_line(stderr: &str) -> serde_json::Value {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON on stderr: {stderr}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// tshark's reading of a capture (a decoder nobody here wrote): a row per packet, a
/// column per field, a field's several occurrences joined by `~`. `options`: more
/// tshark flags (`-d udp.port==P,dns`, `-o ...`). The caller checks for the tool.
pub fn tshark_fields(
    path: &std::path::Path,
    options: &[&str],
    fields: &[&str],
) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(path).args(options);
    cmd.args(["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=~"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}
