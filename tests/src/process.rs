//! A child process under test: its output is captured line by line (so
//! tests can wait for a log line and pipes never fill), and it is killed
//! when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Captured output lines, shared with the reader threads.
#[derive(Default)]
struct Output {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

/// A running child process.
pub struct ChildProcess {
    name: String,
    child: Child,
    output: Arc<Output>,
}

impl ChildProcess {
    /// Starts `command` with stdout and stderr captured.
    pub fn spawn(name: &str, mut command: Command) -> Self {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("failed to start {name}: {e}"));
        let output = Arc::new(Output::default());
        let stdout = child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        let stderr = child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("KASSA_TEST_ECHO").is_some() {
                        eprintln!("{line}");
                    }
                    let mut lines = output.lines.lock().unwrap_or_else(|e| e.into_inner());
                    lines.push(line);
                    output.changed.notify_all();
                }
            });
        }
        Self { name: name.to_owned(), child, output }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.output.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until a printed line contains `needle` and returns the rest of
    /// that line after it. Panics with the captured output after `timeout`
    /// or if the process exits first.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(rest) = lines.iter().find_map(|l| l.split_once(needle).map(|(_, rest)| rest.to_owned())) {
                return rest;
            }
            let now = Instant::now();
            let exited = self.child.try_wait().ok().flatten();
            if now >= deadline || exited.is_some() {
                panic!("{} never printed {needle:?} (exit: {exited:?}); output:\n{}", self.name, lines.join("\n"));
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            lines = self.output.changed.wait_timeout(lines, wait).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Sends a signal (`"TERM"`, `"KILL"`, `"STOP"`, `"CONT"`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill can be run");
        assert!(status.success(), "kill -{signal} {} failed", self.child.id());
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
