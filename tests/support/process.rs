//! The real binary as a child process: [`Spawned`] (its output piped, read once it has
//! exited) and [`Process`] (its output collected while it runs). Each is ended by its own
//! PID, never by name, and killed by its handle if a test fails before stopping it.

use super::{get_request, http1_client, send, within, STEP};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Waits until the admin port at `admin` answers `/readyz` with 200; panics if `child` exits
/// first.
async fn ready(child: &mut std::process::Child, admin: &str) {
    let readyz = format!("http://{admin}/readyz");
    within("the binary to become ready", async {
        loop {
            if let Ok(reply) = send(&http1_client(), get_request(&readyz)).await {
                if reply.status == 200 {
                    break;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("shadowtap exited early: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// A child process a test started (the real binary); killed by its own handle if the test
/// fails before stopping it, so no process outlives its test.
pub struct Spawned(pub std::process::Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Spawned {
    /// Starts the real binary with `args` (`RUST_LOG=warn`, stdout and stderr piped).
    pub fn start(args: &[&str]) -> Spawned {
        let child = std::process::Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn shadowtap");
        Spawned(child)
    }

    /// Starts the real binary as `run --primary P --listen L --admin A`, then `extra`.
    pub fn run(primary: &str, listen: &str, admin: &str, extra: &[&str]) -> Spawned {
        let mut args = vec![
            "run",
            "--primary",
            primary,
            "--listen",
            listen,
            "--admin",
            admin,
        ];
        args.extend_from_slice(extra);
        Spawned::start(&args)
    }

    /// Waits for exit at most `limit`; panics if the process is still running.
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "shadowtap still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything left on its stderr pipe (read to the end: call once it has exited).
    pub fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.0.stderr.take() {
            std::io::Read::read_to_string(&mut stderr, &mut text).expect("read stderr");
        }
        text
    }

    /// Sends SIGTERM to this process (by its PID), waits at most [`STEP`] for it to exit
    /// and returns its exit status and stderr.
    pub async fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.0.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(killed.success(), "kill -TERM {pid}");
        tokio::task::spawn_blocking(move || {
            let status = self.wait(STEP);
            (status, self.stderr())
        })
        .await
        .expect("the waiting thread")
    }

    /// Waits until the admin port at `admin` answers `/readyz` with 200; panics if the
    /// process exits first.
    pub async fn ready(&mut self, admin: &str) {
        ready(&mut self.0, admin).await;
    }
}

/// The real binary, for tests that need its logging or its command line.
pub const BIN: &str = env!("CARGO_BIN_EXE_shadowtap");

/// A `shadowtap` child process this test started, its stdout and stderr collected by reader
/// threads. Ended by its own PID (SIGTERM via `kill`, or its handle when dropped early).
pub struct Process {
    child: std::process::Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(
    stream: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stream);
        let mut line = String::new();
        while matches!(std::io::BufRead::read_line(&mut reader, &mut line), Ok(n) if n > 0) {
            into.lock().expect("output lock").push_str(&line);
            line.clear();
        }
    })
}

impl Process {
    /// Starts `shadowtap args...` with extra environment variables.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = std::process::Command::new(BIN);
        command
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn shadowtap");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), stdout.clone()),
            collect(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Process {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Waits until the admin port at `admin` answers `/readyz` with 200; panics if the
    /// process exits first.
    pub async fn ready(&mut self, admin: &str) {
        ready(&mut self.child, admin).await;
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("output lock").clone()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("output lock").clone()
    }

    /// Polls stderr until `found` returns something; panics after `limit`.
    pub async fn wait_stderr<T>(&self, limit: Duration, found: impl Fn(&str) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let text = self.stderr();
            if let Some(value) = found(&text) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not found in stderr after {limit:?}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The address the JSON log line `message` announces (`listening`, `admin listening`),
    /// waited for at most `limit`; start the binary with `--log-format json` and RUST_LOG
    /// at `info` or finer.
    pub async fn announced(&self, message: &str, limit: Duration) -> std::net::SocketAddr {
        self.wait_stderr(limit, |text| announced(text, message))
            .await
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) to this process, by its PID.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid}");
    }

    /// Waits for the process to exit on its own, at most `limit`; then its output is complete.
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "shadowtap still running after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM to this process (by its PID) and waits for it to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        self.wait_exit(STEP).await
    }
}

/// The address the first JSON log line with `message` announces in its `address` field.
pub fn announced(stderr: &str, message: &str) -> Option<std::net::SocketAddr> {
    stderr.lines().find_map(|line| {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        (event["message"] == message).then(|| event["address"].as_str()?.parse().ok())?
    })
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
