//! The `webserver` binary as a test peer: started on kernel TCP (a free loopback port)
//! or on the user-space stack (a TUN device in a private namespace, clients inside it),
//! killed by pid when dropped.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use testnet::{TestNet, STACK_ADDR};
use webserver::NetBackend;

/// A running server, killed when dropped (then its namespace is removed).
pub struct Server {
    pub child: Child,
    /// The first address served.
    pub addr: SocketAddr,
    /// Every address served, in the order of the `--listen` flags.
    pub addrs: Vec<SocketAddr>,
    pub stdout: BufReader<ChildStdout>,
    /// The namespace of a server on the user-space stack: its clients run inside.
    pub net: Option<TestNet>,
}

impl Server {
    pub fn start(on: NetBackend, root: Option<&Path>, extra: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_webserver"));
        if !extra.contains(&"--cores") {
            cmd.args(["--cores", "1"]);
        }
        let net = match on {
            NetBackend::Kernel => {
                cmd.args(["--listen", "127.0.0.1:0"]);
                None
            }
            NetBackend::User => {
                let net = TestNet::create("ws", 1500).expect("a namespace with a TUN device");
                cmd.args(["--net", "user", "--netns", net.ns(), "--tun", net.dev()])
                    .arg("--stack-addr")
                    .arg(STACK_ADDR.to_string());
                Some(net)
            }
        };
        if let Some(root) = root {
            cmd.arg("--root").arg(root);
        }
        cmd.args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start webserver");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        // "Serving DIR at http://A/, http://B/"
        let addrs: Vec<SocketAddr> = line
            .trim()
            .rsplit_once(" at ")
            .map(|(_, urls)| {
                urls.split(", ")
                    .map(|u| {
                        let a = u.strip_prefix("http://").and_then(|u| u.strip_suffix('/'));
                        a.and_then(|a| a.parse().ok())
                            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
                    })
                    .collect()
            })
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Server {
            child,
            addr: addrs[0],
            addrs,
            stdout,
            net,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A client connection (from inside the namespace for the user-space stack).
    pub fn connect(&self) -> TcpStream {
        let addr = self.addr;
        let s = match &self.net {
            None => TcpStream::connect(addr),
            Some(net) => net.run(move || TcpStream::connect(addr)).unwrap(),
        }
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends `request` on a new connection and reads until the server closes.
    pub fn raw(&self, request: &[u8]) -> Vec<u8> {
        let mut s = self.connect();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    /// Runs curl (inside the namespace for the user-space stack); returns (status line
    /// + headers, body).
    pub fn curl(&self, args: &[&str]) -> (String, Vec<u8>) {
        let mut cmd = match &self.net {
            None => Command::new("curl"),
            Some(net) => net.command("curl"),
        };
        let out = cmd
            .args(["-s", "-S", "-D", "-", "--max-time", "30"])
            .args(args)
            .output()
            .expect("curl is installed");
        assert!(out.status.success(), "curl {args:?}: {out:?}");
        let split = out
            .stdout
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&out.stdout[..split]).into_owned();
        (head, out.stdout[split + 4..].to_vec())
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the process to exit; returns its status and the rest of stdout.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        (status, rest)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `request` on a new kernel TCP connection to `addr` and reads until the server
/// closes (each read may wait 10 s).
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    out
}
