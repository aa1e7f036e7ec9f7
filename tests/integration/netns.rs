//! Network namespaces a test builds and removes: named after the test's process and a
//! counter (tests run at once), made by a shell script of `ip` commands, each deleted by
//! name when the value drops; dgram runs inside one of them, so nothing leaves the host.

use crate::harness::{spawn_cmd, tool, Run};

pub struct Namespaces {
    tag: &'static str,
    id: String,
    names: Vec<&'static str>,
}

impl Namespaces {
    /// Namespaces `names`, then `script`'s commands (joined with `&&`, run by sh);
    /// `None` (a visible skip) without root, `ip` or one of `tools`.
    pub fn create(
        test: &str,
        tag: &'static str,
        names: &[&'static str],
        tools: &[&str],
        script: impl FnOnce(&Namespaces) -> Vec<String>,
    ) -> Option<Namespaces> {
        if !crate::harness::root(test, "network namespaces")
            || !std::iter::once(&"ip").chain(tools).all(|t| tool(test, t))
        {
            return None;
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let made = Namespaces {
            tag,
            id: format!("{}-{n}", std::process::id()),
            names: names.to_vec(),
        };
        let mut lines: Vec<String> = names
            .iter()
            .map(|w| format!("ip netns add {}", made.ns(w)))
            .collect();
        lines.extend(script(&made));
        let ok = std::process::Command::new("sh")
            .args(["-c", &lines.join(" && ")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{test}: could not build the namespaces");
        Some(made)
    }

    /// The full name of namespace `which`.
    pub fn ns(&self, which: &str) -> String {
        format!("dgram-{}{which}-{}", self.tag, self.id)
    }

    /// `dgram ARGS` inside namespace `which`, to completion.
    pub fn dgram(&self, which: &str, args: &[&str]) -> Run {
        let ns = self.ns(which);
        let mut full = vec!["netns", "exec", ns.as_str(), crate::harness::bin()];
        full.extend_from_slice(args);
        let mut g = spawn_cmd("ip", &full, None);
        g.close_stdin();
        g.finish()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for w in &self.names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.ns(w)])
                .status();
        }
    }
}
