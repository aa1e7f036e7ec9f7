//! The README's ssh recipes, end to end against an sshd of the test's own on loopback:
//! `ssh -L` with `--to tcp://` and `relay tcp://` at the far end, and `--to-exec 'ssh
//! host dgram relay - --to ...'` with connection sharing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{bin, peer, recv, released_port, root, skip, spawn_cmd, tool, Guard, Server};

/// An sshd on 127.0.0.1 that lets this user in with a key of the test's; the client's
/// options to reach it. Killed by PID when the guard drops.
struct Sshd {
    _guard: Guard,
    port: u16,
    dir: PathBuf,
}

impl Sshd {
    fn start(test: &str) -> Option<Sshd> {
        let sshd = "/usr/sbin/sshd";
        if !Path::new(sshd).exists() {
            // Under CI=true a missing tool fails (.ci/run installs openssh-server).
            skip(test, "sshd is not installed (openssh-server)");
            return None;
        }
        if !root(test, "an sshd that lets this user log in") || !tool(test, "ssh") {
            return None;
        }
        let dir =
            std::env::temp_dir().join(format!("dgram-ssh-{}-{}", std::process::id(), test.len()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for key in ["host", "id"] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key))
                .status()
                .unwrap()
                .success();
            assert!(ok, "ssh-keygen");
        }
        std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
        // Privilege separation wants its directory (a package's service makes it).
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = released_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
             StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\nPidFile none\n\
             AllowTcpForwarding yes\nLogLevel VERBOSE\n",
            dir.join("host").display(),
            dir.join("authorized_keys").display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let config = dir.join("sshd_config");
        let guard = spawn_cmd(sshd, &["-D", "-e", "-f", config.to_str().unwrap()], None);
        guard.wait_stderr("Server listening on");
        Some(Sshd {
            _guard: guard,
            port,
            dir,
        })
    }

    /// `ssh` with the options that reach this sshd without asking anything.
    fn ssh(&self) -> String {
        format!(
            "ssh -p {} -i {} -o BatchMode=yes -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            self.port,
            self.dir.join("id").display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn to_exec_ssh_runs_the_far_relay_over_ssh_sharing_one_connection() {
    let Some(sshd) = Sshd::start("ssh::to_exec_ssh") else {
        return;
    };
    let echo = Server::start(&["echo", "0"]);
    let control = sshd.dir.join("control-%C");
    let command = format!(
        "{} -o ControlMaster=auto -o ControlPath={} -o ControlPersist=no 127.0.0.1 {} relay - --to {}",
        sshd.ssh(),
        control.display(),
        bin(),
        echo.addr
    );
    let relay = Server::start(&["relay", "0", "--to-exec", &command]);
    // Two clients, two sessions, each its own ssh over the one shared connection.
    let (a, b) = (peer("127.0.0.1"), peer("127.0.0.1"));
    let big: Vec<u8> = (0..65_507).map(|i| (i % 251) as u8).collect();
    a.send_to(&big, relay.addr).unwrap();
    assert!(recv(&a).0 == big, "65,507 bytes through ssh, byte-exact");
    b.send_to(b"b", relay.addr).unwrap();
    assert_eq!(recv(&b).0, b"b");
    a.send_to(b"", relay.addr).unwrap();
    assert_eq!(recv(&a).0, b"");
}

#[test]
fn ssh_port_forwarding_carries_every_session_over_one_login() {
    let Some(sshd) = Sshd::start("ssh::ssh_port_forwarding") else {
        return;
    };
    let echo = Server::start(&["echo", "0"]);
    // The far end, as the README runs it on the host: relay tcp:// to the UDP service.
    let far = Server::start(&["relay", "tcp://0", "--to", &echo.addr.to_string()]);
    let local = released_port();
    let forward = format!("{local}:127.0.0.1:{}", far.addr.port());
    let ssh = sshd.ssh();
    let mut args: Vec<&str> = ssh.split_whitespace().skip(1).collect();
    args.extend([
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-L",
        &forward,
        "127.0.0.1",
    ]);
    let _tunnel = spawn_cmd("ssh", &args, None);
    let to = format!("tcp://127.0.0.1:{local}");
    let near = Server::start(&["relay", "0", "--to", &to, "--connect-timeout", "1s"]);
    // ssh listens on the forwarded port a moment after it starts: the first tries may be
    // refused (counted by the relay, never fatal), so ask until an answer comes.
    let c = peer("127.0.0.1");
    let answered = (0..50).any(|_| {
        c.send_to(b"through the tunnel", near.addr).unwrap();
        crate::harness::arrives_within(&c, std::time::Duration::from_millis(200))
    });
    assert!(
        answered,
        "no answer through ssh -L: {}",
        near.guard.stderr()
    );
    let d = peer("127.0.0.1");
    d.send_to(b"another session", near.addr).unwrap();
    assert_eq!(recv(&d).0, b"another session");
    let _: SocketAddr = far.addr;
}
