//! A real moto server (the CloudWatch Logs emulator) on a free loopback port.
//!
//! moto comes from `.venv-moto` (installed by `scripts/moto-venv`, which this module runs
//! under `flock` when the venv is missing), or from `TASKSENTRY_MOTO_SERVER`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The moto_server executable, installing it (once, under a lock) when missing.
fn moto_server_path() -> PathBuf {
    if let Ok(path) = std::env::var("TASKSENTRY_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let root = crate::repo_root();
    let server = root.join(".venv-moto/bin/moto_server");
    let lock = std::env::temp_dir().join("tasksentry-moto-venv.lock");
    let status = Command::new("flock")
        .arg(&lock)
        .arg(root.join("scripts/moto-venv"))
        .stdout(Stdio::null())
        .status()
        .expect("run scripts/moto-venv");
    assert!(
        status.success(),
        "scripts/moto-venv failed: cannot install moto"
    );
    assert!(server.exists(), "{} missing", server.display());
    server
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A moto server child process, killed on drop.
pub struct Moto {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Moto {
    /// Starts moto_server on a free loopback port and waits until it answers.
    pub fn start() -> Moto {
        let server = moto_server_path();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&server)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(30) {
                if let Some(status) = child.try_wait().unwrap() {
                    eprintln!("moto_server exited early ({status}); retrying on another port");
                    break;
                }
                if moto_ready(addr) {
                    return Moto { child, addr };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto_server did not start");
    }

    /// The endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn moto_ready(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
