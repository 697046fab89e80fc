//! Long-running processes owned by a guard: SIGTERM on drop, SIGKILL if they do not stop.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[derive(Debug)]
pub struct Process {
    child: Option<Child>,
    what: String,
}

impl Process {
    /// Spawns `command` with stdout and stderr appended to `log`.
    pub fn spawn(mut command: Command, log: &Path, what: &str) -> Process {
        let out = File::options().create(true).append(true).open(log).expect("open log");
        let err = out.try_clone().expect("clone log");
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Process { child: Some(child), what: what.to_string() }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Returns the exit status if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Sends `signal` and waits up to `timeout` for the process to end; SIGKILL after that.
    pub fn stop_with(&mut self, signal: Signal, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = kill(Pid::from_raw(child.id() as i32), signal);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: {} did not stop on {signal:?}; killing it", self.what);
        let _ = child.kill();
        child.wait().ok()
    }

    /// SIGTERM, the way an operator or systemd stops meshd.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.stop_with(Signal::SIGTERM, Duration::from_secs(5))
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.stop_with(Signal::SIGKILL, Duration::from_secs(5))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}
