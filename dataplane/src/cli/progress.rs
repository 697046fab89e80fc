//! Progress of a command that waits: what it waits for and how long is left, redrawn on one
//! line of stderr while stdout is a terminal; nothing at all otherwise (scripts and pipes get
//! only the result). Any waiting command (detach with a grace; later node rm, key rotation)
//! wraps its blocking call in [`wait_with_progress`].

use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(200);
const SPINNER: &[char] = &['|', '/', '-', '\\'];

/// Runs `work` (which blocks for about `expected`), showing "WHAT: Ns left" meanwhile when
/// stdout is a terminal. Once `expected` has passed it says how long it has been over.
pub fn wait_with_progress<T>(what: &str, expected: Duration, work: impl FnOnce() -> T) -> T {
    if !std::io::stdout().is_terminal() || expected < Duration::from_secs(1) {
        return work();
    }
    let (done, done_rx) = mpsc::channel::<()>();
    let what = what.to_string();
    let painter = std::thread::spawn(move || {
        let start = Instant::now();
        let mut frame = 0;
        let mut stderr = std::io::stderr();
        loop {
            let line = status_line(&what, expected, start.elapsed(), SPINNER[frame % SPINNER.len()]);
            let _ = write!(stderr, "\r\x1b[2K{line}");
            let _ = stderr.flush();
            frame += 1;
            if done_rx.recv_timeout(TICK).is_ok() || frame > 1_000_000 {
                break;
            }
        }
        let _ = write!(stderr, "\r\x1b[2K");
        let _ = stderr.flush();
    });
    let result = work();
    let _ = done.send(());
    let _ = painter.join();
    result
}

/// `| waiting for X: 12s left` (or `2s over`, once the expected time has passed).
pub fn status_line(what: &str, expected: Duration, elapsed: Duration, spinner: char) -> String {
    match expected.checked_sub(elapsed) {
        Some(left) => format!("{spinner} {what}: {} left", human(left)),
        None => format!("{spinner} {what}: {} over, still waiting", human(elapsed - expected)),
    }
}

/// `1h02m`, `3m05s`, `12s`.
fn human(d: Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_millis() >= 500);
    match secs {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_and_how_long() {
        let line = status_line("detach x (grace)", Duration::from_secs(90), Duration::from_secs(5), '|');
        assert_eq!(line, "| detach x (grace): 1m25s left");
        let line = status_line("w", Duration::from_secs(3), Duration::from_secs(5), '-');
        assert_eq!(line, "- w: 2s over, still waiting");
        assert_eq!(human(Duration::from_secs(3725)), "1h02m");
    }

    #[test]
    fn not_a_terminal_just_runs() {
        // Under the test runner stdout is captured (not a terminal): no thread, no output.
        assert_eq!(wait_with_progress("x", Duration::from_secs(5), || 7), 7);
    }
}
