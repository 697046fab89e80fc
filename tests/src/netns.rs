//! Network namespaces owned by a guard.

use std::ffi::OsStr;
use std::fs::File;
use std::process::Output;

use nix::sched::{setns, CloneFlags};

use crate::command::{run, try_run};

/// A named network namespace (`/run/netns/NAME`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings its loopback up.
    pub fn new(name: &str) -> Netns {
        run("ip", ["netns", "add", name]);
        let ns = Netns { name: name.to_string() };
        ns.ip(["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -n NAME ARGS...`, panicking on failure.
    pub fn ip<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> = vec!["-n".into(), self.name.clone().into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        run("ip", all)
    }

    /// Runs a command inside the namespace (`ip netns exec`), whatever its exit status.
    pub fn exec<I, S>(&self, program: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> =
            vec!["netns".into(), "exec".into(), self.name.clone().into(), program.into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        try_run("ip", all)
    }

    /// The addresses `name` resolves to at meshd's DNS (127.0.0.11) from inside, sorted; none
    /// when it does not resolve.
    pub fn resolve(&self, name: &str) -> Vec<String> {
        let out = self.exec("dig", ["+short", "+time=2", "+tries=2", "@127.0.0.11", name]);
        let mut addresses: Vec<String> =
            String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
        addresses.sort();
        addresses
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result. The
    /// calling thread never changes namespace, so parallel tests cannot disturb each other.
    pub fn run_inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        let handle = std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            setns(&file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        });
        match handle.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // meshd writes /etc/netns/NAME/resolv.conf when it attaches a named namespace; a test
        // that tears down without detaching leaves it behind otherwise.
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
        let out = try_run("ip", ["netns", "del", &self.name]);
        if !out.status.success() {
            eprintln!(
                "warning: could not delete netns {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
