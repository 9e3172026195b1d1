//! Child processes of tests: bounded waits, so that a process that does not end fails
//! its test instead of hanging the suite.

use std::process::{Child, Output};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Waits up to `limit` for `child` to exit and collects its output: `Ok` if it exited
/// by itself, `Err` (after killing it) if it still ran at `limit`.
pub fn wait_within(mut child: Child, limit: Duration) -> Result<Output, Output> {
    let deadline = Instant::now() + limit;
    loop {
        let exited = child.try_wait().is_ok_and(|s| s.is_some());
        if exited || Instant::now() >= deadline {
            if !exited {
                let _ = child.kill();
            }
            let output = child.wait_with_output().unwrap_or_else(|e| Output {
                status: std::os::unix::process::ExitStatusExt::from_raw(-1),
                stdout: e.to_string().into_bytes(),
                stderr: Vec::new(),
            });
            return if exited { Ok(output) } else { Err(output) };
        }
        sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn a_process_that_ends_is_collected_and_one_that_does_not_is_killed() {
        let quick = Command::new("sh")
            .args(["-c", "echo hi; exit 3"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_within(quick, Duration::from_secs(10)).unwrap();
        assert_eq!(
            (out.status.code(), &out.stdout[..]),
            (Some(3), &b"hi\n"[..])
        );
        let started = Instant::now();
        let stuck = Command::new("sleep").arg("30").spawn().unwrap();
        let out = wait_within(stuck, Duration::from_millis(100)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(out.status.code(), None, "killed by a signal");
    }
}
