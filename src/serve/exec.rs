//! `listen --exec CMD`: a request's reply computed by a program (SPEC §4 listen as a
//! responder). A small pool of worker threads (`--exec-jobs`) runs one `/bin/sh -c CMD`
//! per request, its stdin the payload and its stdout the reply; requests beyond wait in a
//! bounded queue (`--exec-queue`) and are dropped and counted past it. Finished jobs
//! wake the receive loop through a pipe it polls, so receiving never waits for a child;
//! the replies leave from the server's socket, through its admission and policy.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::net::sys::RecvMeta;

/// The largest reply: more stdout than this is not a datagram.
const LARGEST: usize = 65_535;

/// How the pool runs its children.
#[derive(Clone, Debug)]
pub struct ExecSettings {
    /// The command, run by `/bin/sh -c`.
    pub command: String,
    /// Children at once.
    pub jobs: usize,
    /// Requests waiting for a free worker, at most.
    pub queue: usize,
    /// A child running longer is killed with its process group.
    pub timeout: Duration,
}

/// One request for a child.
pub struct Job {
    pub meta: RecvMeta,
    pub payload: Vec<u8>,
    pub local: SocketAddr,
}

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its stdout: the reply.
    Reply(Vec<u8>),
    /// It exited 0 and printed nothing: no reply.
    Empty,
    /// It exited non-zero (or by a signal): no reply.
    Failed,
    /// It ran past the timeout and was killed: no reply.
    TimedOut,
    /// It printed more than a datagram holds: no reply.
    TooLarge,
    /// It could not be started.
    NoStart,
}

/// A finished job.
pub struct Done {
    pub meta: RecvMeta,
    pub outcome: Outcome,
}

/// What the pool counted, for `--stats`.
#[derive(Debug, Default, Serialize)]
pub struct ExecCounts {
    pub exec_started: u64,
    pub exec_failures: u64,
    pub exec_timeouts: u64,
    pub exec_too_large: u64,
    pub exec_queue_drops: u64,
}

/// The workers, their queue, and the pipe that says a job is done.
pub struct ExecPool {
    jobs: Option<Sender<Job>>,
    /// Jobs running or waiting at most: `--exec-jobs` + `--exec-queue`.
    capacity: usize,
    done: Receiver<Done>,
    wake: UnixStream,
    workers: Vec<JoinHandle<()>>,
    in_flight: usize,
    pub counts: ExecCounts,
}

impl ExecPool {
    /// Start `settings.jobs` workers.
    pub fn start(settings: &ExecSettings) -> io::Result<ExecPool> {
        // The channel is unbounded; `capacity` bounds it, counting what is in flight, so
        // the jobs a worker has not yet taken count against the queue exactly once.
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel();
        let (wake_read, wake_write) = UnixStream::pair()?;
        wake_read.set_nonblocking(true)?;
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let workers = (0..settings.jobs.max(1))
            .map(|i| {
                let jobs = Arc::clone(&jobs_rx);
                let done = done_tx.clone();
                let wake = wake_write.try_clone()?;
                let settings = settings.clone();
                std::thread::Builder::new()
                    .name(format!("exec-{i}"))
                    .spawn(move || worker(&settings, &jobs, &done, &wake))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(ExecPool {
            jobs: Some(jobs_tx),
            capacity: settings.jobs.max(1) + settings.queue,
            done: done_rx,
            wake: wake_read,
            workers,
            in_flight: 0,
            counts: ExecCounts::default(),
        })
    }

    /// Queue a request; `false` (counted) when the workers and the queue are full.
    pub fn submit(&mut self, job: Job) -> bool {
        let sent = self.in_flight < self.capacity
            && self
                .jobs
                .as_ref()
                .is_some_and(|jobs| jobs.send(job).is_ok());
        if sent {
            self.in_flight += 1;
        } else {
            self.counts.exec_queue_drops += 1;
        }
        sent
    }

    /// The descriptor that becomes readable when a job is done.
    pub fn fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Jobs queued or running.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Every job done since the last call, counted.
    pub fn take_done(&mut self) -> Vec<Done> {
        let mut sink = [0u8; 256];
        while matches!((&self.wake).read(&mut sink), Ok(n) if n > 0) {}
        let done: Vec<Done> = self.done.try_iter().collect();
        self.in_flight = self.in_flight.saturating_sub(done.len());
        for d in &done {
            match d.outcome {
                Outcome::Failed | Outcome::NoStart => self.counts.exec_failures += 1,
                Outcome::TimedOut => self.counts.exec_timeouts += 1,
                Outcome::TooLarge => self.counts.exec_too_large += 1,
                Outcome::Reply(_) | Outcome::Empty => {}
            }
        }
        self.counts.exec_started += done.len() as u64;
        done
    }
}

impl Drop for ExecPool {
    fn drop(&mut self) {
        // Closing the queue ends each worker after its current job (bounded by the timeout).
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(
    settings: &ExecSettings,
    jobs: &Mutex<Receiver<Job>>,
    done: &mpsc::Sender<Done>,
    mut wake: &UnixStream,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return; // the pool is gone
        };
        let outcome = run_child(settings, &job);
        if done
            .send(Done {
                meta: job.meta,
                outcome,
            })
            .is_err()
        {
            return;
        }
        let _ = wake.write(&[1]);
    }
}

/// Run the command for one request: stdin the payload, the `DGRAM_*` environment, stdout
/// the reply, stderr passed through; killed with its process group past the timeout.
fn run_child(settings: &ExecSettings, job: &Job) -> Outcome {
    let mut child = match spawn(&settings.command, job) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(
                "--exec: cannot start /bin/sh: {}",
                crate::base::error::describe_io(&e)
            );
            return Outcome::NoStart;
        }
    };
    let deadline = Instant::now() + settings.timeout;
    // A datagram fits an empty pipe (64 KiB), so this write never blocks; a child that
    // exits without reading makes it fail, which is fine.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&job.payload);
    }
    let Some(out) = child.stdout.take().and_then(|s| read_until(s, deadline)) else {
        crate::net::sys::kill_group(child.id());
        let _ = child.wait();
        return Outcome::TimedOut;
    };
    // Stdout is closed: the child is exiting; bound the wait all the same.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1)); // a child that closed stdout and lingers
            }
            Ok(None) => {
                crate::net::sys::kill_group(child.id());
                let _ = child.wait();
                return Outcome::TimedOut;
            }
            Err(_) => break None,
        }
    };
    match status {
        Some(s) if s.success() => {}
        _ => return Outcome::Failed,
    }
    if out.len() > LARGEST {
        Outcome::TooLarge
    } else if out.is_empty() {
        Outcome::Empty
    } else {
        Outcome::Reply(out)
    }
}

/// `/bin/sh -c COMMAND` in its own process group (so a timeout kills what it started
/// too), with the request's `DGRAM_*` environment and piped stdin and stdout.
fn spawn(command: &str, job: &Job) -> io::Result<std::process::Child> {
    let peer = crate::net::addr::normalize(job.meta.peer);
    Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env("DGRAM_PEER", peer.to_string())
        .env("DGRAM_PEER_ADDR", peer.ip().to_string())
        .env("DGRAM_PEER_PORT", peer.port().to_string())
        .env(
            "DGRAM_LOCAL",
            crate::net::addr::normalize(job.local).to_string(),
        )
        .env("DGRAM_LEN", job.meta.len.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
}

/// Everything the child writes until it closes stdout, keeping at most one byte past a
/// datagram (enough to know it is too large); `None` when `deadline` passes first.
fn read_until(mut stdout: std::process::ChildStdout, deadline: Instant) -> Option<Vec<u8>> {
    let fd = stdout.as_raw_fd();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        match crate::net::sys::wait_readable(fd, Some(left)) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Some(out),
        }
        match stdout.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => {
                let room = (LARGEST + 1).saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Some(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RecvMeta {
        RecvMeta {
            len: 5,
            captured: 5,
            peer: "127.0.0.1:40000".parse().unwrap(),
            dst: None,
            received_ns: None,
        }
    }

    fn run(command: &str, payload: &[u8], timeout: Duration) -> Outcome {
        let settings = ExecSettings {
            command: command.to_string(),
            jobs: 1,
            queue: 1,
            timeout,
        };
        let job = Job {
            meta: meta(),
            payload: payload.to_vec(),
            local: "127.0.0.1:9000".parse().unwrap(),
        };
        run_child(&settings, &job)
    }

    #[test]
    fn stdout_is_the_reply_and_the_environment_names_the_peer() {
        let s = Duration::from_secs(5);
        assert_eq!(
            run("tr a-z A-Z", b"hello", s),
            Outcome::Reply(b"HELLO".to_vec())
        );
        assert_eq!(
            run("printf '%s %s %s %s %s' \"$DGRAM_PEER\" \"$DGRAM_PEER_ADDR\" \"$DGRAM_PEER_PORT\" \"$DGRAM_LOCAL\" \"$DGRAM_LEN\"", b"", s),
            Outcome::Reply(b"127.0.0.1:40000 127.0.0.1 40000 127.0.0.1:9000 5".to_vec())
        );
        assert_eq!(run("true", b"x", s), Outcome::Empty);
        assert_eq!(run("echo no; exit 1", b"x", s), Outcome::Failed);
        assert_eq!(run("head -c 70000 /dev/zero", b"", s), Outcome::TooLarge);
    }

    #[test]
    fn a_child_past_its_timeout_is_killed_with_its_group() {
        let started = Instant::now();
        assert_eq!(
            run("sleep 10; echo late", b"", Duration::from_millis(200)),
            Outcome::TimedOut
        );
        // Bounded by the timeout, not by the sleep: a generous bound that catches a hang.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
