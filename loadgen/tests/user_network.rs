//! loadgen and the web server on the user-space stack, end to end, in a private
//! namespace with two TUN devices (the server's stack, loadgen's stack, the kernel
//! forwarding between them): loadgen `--net user` against a kernel server and against
//! `webserver --net user`, loadgen on kernel TCP against `webserver --net user`, two
//! cores on each side, and a SIGTERM under load. In every case the request and byte
//! counts loadgen reports equal the server's own totals exactly. Needs root (fails
//! under `CI=true` without).

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use support::{assert_served, Behaviour, Run, Server};
use testnet::{privileged, Options, TestNet, CLIENT_STACK_ADDR, KERNEL_ADDR, STACK_ADDR};

fn network(label: &str, cores: usize) -> Option<TestNet> {
    if !privileged(label) {
        return None;
    }
    let opts = Options {
        multi_queue: cores > 1,
        client: true,
        ..Options::default()
    };
    Some(TestNet::with(label, opts).expect("a namespace with two TUN devices"))
}

/// The webserver binary beside loadgen's, built once if this test run did not build
/// it (a `cargo test -p loadgen` alone).
fn webserver_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
        let bin = loadgen.with_file_name("webserver");
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let mut build = Command::new(cargo);
            build.args(["build", "-p", "webserver"]);
            if loadgen.parent().is_some_and(|d| d.ends_with("release")) {
                build.arg("--release");
            }
            assert!(
                build.status().expect("run cargo").success(),
                "building webserver"
            );
        }
        bin
    })
}

/// `webserver --net user` on the namespace's server device, killed when dropped.
struct WebServer {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl WebServer {
    fn start(net: &TestNet, cores: usize) -> WebServer {
        let mut child = Command::new(webserver_bin())
            .args(["--net", "user", "--netns", net.ns(), "--tun", net.dev()])
            .args(["--stack-addr", &STACK_ADDR.to_string()])
            .args(["--cores", &cores.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start webserver");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(line.contains("http://10.77.0.2:8080/"), "{line}");
        WebServer { child, stdout }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{STACK_ADDR}:8080{path}")
    }

    /// Stops it with `signal` and returns its totals: (requests, bytes out), and
    /// everything it printed.
    fn stop(mut self, signal: i32) -> (u64, u64, String) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let mut out = String::new();
        self.stdout.read_to_string(&mut out).unwrap();
        assert!(self.child.wait().unwrap().success(), "{out}");
        let requests = number_after(&out, "requests: ");
        let bytes = number_after(&out, " in, ");
        (requests, bytes, out)
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number that follows the first `marker` in `text`.
fn number_after(text: &str, marker: &str) -> u64 {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in:\n{text}"))
        + marker.len();
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {marker:?} in:\n{text}"))
}

/// loadgen on its own user-space stack (the namespace's client device).
fn loadgen_user(net: &TestNet, args: &[&str], name: &str) -> Run {
    let mut all = vec!["--net", "user", "--netns", net.ns()];
    all.extend(["--tun", net.client_dev().unwrap()]);
    let addr = CLIENT_STACK_ADDR.to_string();
    all.extend(["--stack-addr", &addr]);
    all.extend_from_slice(args);
    support::loadgen(&all, Some(name))
}

/// loadgen on kernel TCP, inside the namespace.
fn loadgen_kernel_inside(net: &TestNet, args: &[&str], name: &str) -> Run {
    support::loadgen_with(net.command(env!("CARGO_BIN_EXE_loadgen")), args, Some(name))
}

/// The number of misdirected packets in each "User-space network" report printed.
fn misdirected(text: &str) -> Vec<u64> {
    text.match_indices("loop: ")
        .map(|(at, _)| {
            let line = text[at..].lines().next().unwrap();
            number_after(line, "polls, ")
        })
        .collect()
}

#[test]
fn loadgen_on_the_user_stack_against_a_kernel_server() {
    let Some(net) = network("lgk", 1) else { return };
    let listener = net
        .run(|| TcpListener::bind((KERNEL_ADDR, 0)))
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let ns = net.ns().to_owned();
    let server = Server::on(listener, Behaviour::Correct, move || {
        let _ = iolib::netns::run_in(&ns, move || std::net::TcpStream::connect(addr));
    });
    let run = loadgen_user(
        &net,
        &["-c", "8", "-t", "1", "-n", "2000", &server.url("/a")],
        "lgk",
    );
    run.assert_success();
    assert_served(&run, &server.seen(), 2000);
    assert_eq!(server.seen().connections, 8);
    assert!(
        run.stdout().contains("User-space network:"),
        "{}",
        run.stdout()
    );
}

#[test]
fn loadgen_on_the_user_stack_against_webserver_on_the_user_stack() {
    let Some(net) = network("lgu", 1) else { return };
    let web = WebServer::start(&net, 1);
    let run = loadgen_user(
        &net,
        &[
            "-c",
            "16",
            "-t",
            "1",
            "-n",
            "5000",
            "--pipeline",
            "2",
            &web.url("/files/1k.txt"),
        ],
        "lgu",
    );
    run.assert_success();
    // SIGUSR1 prints the stack's counters and the server goes on.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(web.child.id() as i32, libc::SIGUSR1) };
    std::thread::sleep(Duration::from_millis(200));
    let (requests, bytes, out) = web.stop(libc::SIGTERM);
    assert_eq!((run.requests(), requests), (5000, 5000));
    assert_eq!(run.bytes(), bytes);
    assert_eq!(
        out.matches("User-space network:").count(),
        2,
        "on SIGUSR1 and at exit:\n{out}"
    );
    assert!(out.contains("passive_opens=16"), "{out}");
}

/// 1 MiB bodies, which loadgen only counts, are consumed where they arrive (on its own
/// stack, or with `MSG_TRUNC` on kernel TCP) rather than read out: every response and
/// byte is counted as the server counts them, pipelined and not.
#[test]
fn bodies_consumed_unread_count_as_the_server_counts_them() {
    let Some(net) = network("lgd", 1) else { return };
    let web = WebServer::start(&net, 1);
    let url = web.url("/files/1m.txt");
    let args = ["-c", "4", "-t", "1", "-n", "120", "--pipeline", "2", &url];
    let on_user = loadgen_user(&net, &args, "lgd-user");
    on_user.assert_success();
    let one_at_a_time = ["-c", "4", "-t", "1", "-n", "120", &url];
    let on_kernel = loadgen_kernel_inside(&net, &one_at_a_time, "lgd-kernel");
    on_kernel.assert_success();
    let (requests, bytes, _) = web.stop(libc::SIGTERM);
    assert_eq!(
        (on_user.requests(), on_kernel.requests(), requests),
        (120, 120, 240)
    );
    assert_eq!(on_user.bytes() + on_kernel.bytes(), bytes);
    assert!(on_user.bytes() > 120 << 20, "{}", on_user.bytes());
}

#[test]
fn loadgen_on_kernel_tcp_against_webserver_on_the_user_stack() {
    let Some(net) = network("lgkw", 1) else {
        return;
    };
    let web = WebServer::start(&net, 1);
    let run = loadgen_kernel_inside(
        &net,
        &[
            "-c",
            "16",
            "-t",
            "1",
            "-n",
            "3000",
            "--no-keepalive",
            &web.url("/files/64k.txt"),
        ],
        "lgkw",
    );
    run.assert_success();
    let (requests, bytes, out) = web.stop(libc::SIGINT);
    assert_eq!((run.requests(), requests), (3000, 3000));
    assert_eq!(run.bytes(), bytes);
    assert_eq!(number_after(&out, "connections: "), 3000, "{out}");
}

#[test]
fn two_cores_on_each_side_agree_and_no_packet_is_misdirected() {
    let Some(net) = network("lg2", 2) else { return };
    let web = WebServer::start(&net, 2);
    let run = loadgen_user(
        &net,
        &[
            "-c",
            "32",
            "-t",
            "2",
            "-n",
            "8000",
            &web.url("/files/1k.txt"),
        ],
        "lg2",
    );
    run.assert_success();
    let (requests, bytes, out) = web.stop(libc::SIGTERM);
    assert_eq!((run.requests(), requests), (8000, 8000));
    assert_eq!(run.bytes(), bytes);
    let mut reports = misdirected(&run.stdout());
    reports.extend(misdirected(&out));
    assert!(
        !reports.is_empty() && reports.iter().all(|&m| m == 0),
        "{reports:?}"
    );
}

/// A SIGTERM while loadgen runs: every response the server completed reached loadgen
/// (the counts agree exactly), and the server exits cleanly.
#[test]
fn sigterm_under_load_loses_no_completed_response() {
    let Some(net) = network("lgterm", 1) else {
        return;
    };
    let web = WebServer::start(&net, 1);
    let url = web.url("/files/64k.txt");
    let run = std::thread::scope(|s| {
        let loader = s.spawn(|| {
            loadgen_user(
                &net,
                &[
                    "-c",
                    "16",
                    "-t",
                    "1",
                    "-d",
                    "3s",
                    "--timeout",
                    "500ms",
                    &url,
                ],
                "lgterm",
            )
        });
        std::thread::sleep(Duration::from_millis(1500));
        let stopped = web.stop(libc::SIGTERM);
        (loader.join().unwrap(), stopped)
    });
    let (run, (requests, bytes, out)) = run;
    assert!(requests > 0, "{out}");
    assert_eq!(run.requests(), requests, "{}\n{out}", run.stdout());
    assert_eq!(run.bytes(), bytes);
}
