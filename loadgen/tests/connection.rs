//! `run_connection` against simulated servers on a virtual clock: correct answers,
//! pipelining, keep-alive and close, errors of every kind, stalls, constant rate.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loadgen::connection::{CONNECT_BACKOFF, CONNECT_BACKOFF_FIRST};
use loadgen::request::{render, RequestTemplate};
use loadgen::schedule::RateSchedule;
use loadgen::{run_connection, ConnectionPlan, Network, Stats, Transport, TransportError};

/// Builds the response to request number `i` on a connection from its bytes.
type Responder = Rc<dyn Fn(usize, &[u8]) -> Vec<u8>>;

/// How the simulated server behaves.
#[derive(Clone)]
struct Behaviour {
    /// The response to each request, by request number on the connection.
    respond: Responder,
    /// Time from a request to its response (by global request number).
    latency: Rc<dyn Fn(u64) -> Duration>,
    /// Close the connection after this many responses on it.
    close_after: Option<usize>,
    /// Never answer (but keep the connection open).
    stall: bool,
    /// Fail reads / writes with a reset.
    reset_reads: bool,
    fail_writes: bool,
    /// Refuse connections while the virtual clock is in this range.
    refuse: Option<Range<Duration>>,
}

fn ok_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl Behaviour {
    fn ok() -> Self {
        Behaviour {
            respond: Rc::new(|_, _| ok_response("hello")),
            latency: Rc::new(|_| Duration::from_micros(250)),
            close_after: None,
            stall: false,
            reset_reads: false,
            fail_writes: false,
            refuse: None,
        }
    }
}

/// Shared by the network and its connections.
struct World {
    base: Instant,
    clock: Cell<Duration>,
    behaviour: Behaviour,
    connects: Cell<u64>,
    /// When each connection attempt was made.
    connect_times: RefCell<Vec<Duration>>,
    /// Every request the server received, as text.
    requests: RefCell<Vec<String>>,
    /// The most requests the server ever had unanswered on one connection.
    max_outstanding: Cell<usize>,
    /// Global request counter.
    served: Cell<u64>,
}

impl World {
    fn now(&self) -> Instant {
        self.base + self.clock.get()
    }

    fn advance_to(&self, t: Instant) {
        if t > self.now() {
            self.clock.set(t - self.base);
        }
    }
}

struct MockNet(Rc<World>);

struct MockConn {
    world: Rc<World>,
    /// Request bytes not yet parsed into whole requests.
    pending: Vec<u8>,
    /// Responses and when they become readable.
    inbound: VecDeque<(Instant, Vec<u8>)>,
    answered: usize,
    closed: bool,
}

impl MockNet {
    fn new(behaviour: Behaviour) -> Self {
        MockNet(Rc::new(World {
            base: Instant::now(),
            clock: Cell::new(Duration::ZERO),
            behaviour,
            connects: Cell::new(0),
            connect_times: RefCell::new(Vec::new()),
            requests: RefCell::new(Vec::new()),
            max_outstanding: Cell::new(0),
            served: Cell::new(0),
        }))
    }
}

impl Network for MockNet {
    type Conn = MockConn;

    async fn connect(
        &self,
        _addr: SocketAddr,
        _deadline: Instant,
    ) -> Result<MockConn, TransportError> {
        self.0.connects.set(self.0.connects.get() + 1);
        let now = self.0.clock.get();
        self.0.connect_times.borrow_mut().push(now);
        if self
            .0
            .behaviour
            .refuse
            .as_ref()
            .is_some_and(|r| r.contains(&now))
        {
            return Err(io::Error::from(io::ErrorKind::ConnectionRefused).into());
        }
        Ok(MockConn {
            world: self.0.clone(),
            pending: Vec::new(),
            inbound: VecDeque::new(),
            answered: 0,
            closed: false,
        })
    }

    fn now(&self) -> Instant {
        self.0.now()
    }

    async fn sleep_until(&self, deadline: Instant) {
        self.0.advance_to(deadline);
    }
}

impl Transport for MockConn {
    async fn read(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, TransportError> {
        let w = &self.world;
        if w.behaviour.reset_reads {
            return Err(io::Error::from(io::ErrorKind::ConnectionReset).into());
        }
        match self.inbound.front_mut() {
            Some((at, data)) if *at <= deadline => {
                w.advance_to(*at);
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                data.drain(..n);
                if data.is_empty() {
                    self.inbound.pop_front();
                }
                Ok(n)
            }
            None if self.closed => Ok(0),
            _ => {
                w.advance_to(deadline);
                Err(TransportError::TimedOut)
            }
        }
    }

    async fn write_all(&mut self, buf: &[u8], _deadline: Instant) -> Result<(), TransportError> {
        let w = self.world.clone();
        if w.behaviour.fail_writes {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe).into());
        }
        self.pending.extend_from_slice(buf);
        let mut outstanding = 0;
        while let Some(end) = self.pending.windows(4).position(|x| x == b"\r\n\r\n") {
            let request: Vec<u8> = self.pending.drain(..end + 4).collect();
            w.requests
                .borrow_mut()
                .push(String::from_utf8(request.clone()).unwrap());
            outstanding += 1;
            if self.closed || w.behaviour.stall {
                continue;
            }
            let n = w.served.get();
            w.served.set(n + 1);
            let at = w.now() + (w.behaviour.latency)(n);
            let response = (w.behaviour.respond)(self.answered, &request);
            self.inbound.push_back((at, response));
            self.answered += 1;
            if w.behaviour.close_after == Some(self.answered) {
                self.closed = true;
            }
        }
        w.max_outstanding
            .set(w.max_outstanding.get().max(outstanding));
        Ok(())
    }
}

fn templates(paths: &[&str], method: &str, keep_alive: bool) -> Arc<[RequestTemplate]> {
    paths
        .iter()
        .map(|p| {
            let target = format!("http://127.0.0.1:8080{p}").parse().unwrap();
            render(&target, method, &[], keep_alive).unwrap()
        })
        .collect::<Vec<_>>()
        .into()
}

fn plan(net: &MockNet, duration: Duration, max_requests: Option<u64>) -> ConnectionPlan {
    ConnectionPlan {
        addr: "127.0.0.1:8080".parse().unwrap(),
        requests: templates(&["/"], "GET", true),
        first_request: 0,
        pipeline: 1,
        keep_alive: true,
        timeout: Duration::from_secs(2),
        start: net.now(),
        end: net.now() + duration,
        max_requests,
        schedule: None,
    }
}

fn run(net: &MockNet, plan: ConnectionPlan) -> Stats {
    let mut stats = Stats::new();
    futures::executor::block_on(run_connection(net, plan, &mut stats, None));
    stats
}

const RESPONSE_LEN: u64 = 43; // "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

#[test]
fn keep_alive_closed_loop() {
    let net = MockNet::new(Behaviour::ok());
    let progress = AtomicU64::new(0);
    let mut stats = Stats::new();
    let p = plan(&net, Duration::from_secs(60), Some(100));
    futures::executor::block_on(run_connection(&net, p, &mut stats, Some(&progress)));
    assert_eq!(stats.requests, 100);
    assert_eq!(stats.bytes, 100 * RESPONSE_LEN);
    assert_eq!(stats.errors, Default::default());
    assert_eq!(net.0.connects.get(), 1);
    assert_eq!(progress.load(Ordering::Relaxed), 100);
    // Latency is the server's 250 us (3 significant digits).
    let p50 = stats.latency.value_at_quantile(0.5);
    assert!((249..=251).contains(&p50), "{p50}");
    assert_eq!(
        net.0.requests.borrow()[0],
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
    );
}

#[test]
fn duration_bound_run_stops_at_the_end() {
    let net = MockNet::new(Behaviour::ok());
    let start = net.now();
    let stats = run(&net, plan(&net, Duration::from_millis(100), None));
    // 100 ms / 250 us per round trip.
    assert_eq!(stats.requests, 400);
    assert_eq!(stats.errors, Default::default());
    assert!(net.now() - start <= Duration::from_millis(100));
}

#[test]
fn pipelining_keeps_the_pipeline_full() {
    let net = MockNet::new(Behaviour::ok());
    let mut p = plan(&net, Duration::from_secs(60), Some(103));
    p.pipeline = 4;
    let stats = run(&net, p);
    assert_eq!(stats.requests, 103);
    assert_eq!(stats.bytes, 103 * RESPONSE_LEN);
    assert_eq!(net.0.max_outstanding.get(), 4);
    assert_eq!(net.0.requests.borrow().len(), 103);
}

#[test]
fn urls_are_requested_in_rotation() {
    let net = MockNet::new(Behaviour::ok());
    let mut p = plan(&net, Duration::from_secs(60), Some(5));
    p.requests = templates(&["/a", "/b", "/c"], "GET", true);
    p.first_request = 1;
    run(&net, p);
    let paths: Vec<String> = net
        .0
        .requests
        .borrow()
        .iter()
        .map(|r| r.split(' ').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(paths, ["/b", "/c", "/a", "/b", "/c"]);
}

#[test]
fn no_keepalive_opens_a_connection_per_request() {
    let mut behaviour = Behaviour::ok();
    behaviour.close_after = Some(1);
    behaviour.respond = Rc::new(|_, _| {
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec()
    });
    let net = MockNet::new(behaviour);
    let mut p = plan(&net, Duration::from_secs(60), Some(5));
    p.keep_alive = false;
    p.pipeline = 8;
    p.requests = templates(&["/"], "GET", false);
    let stats = run(&net, p);
    assert_eq!(stats.requests, 5);
    assert_eq!(stats.errors, Default::default());
    assert_eq!(net.0.connects.get(), 5);
    assert_eq!(net.0.max_outstanding.get(), 1);
    assert!(net.0.requests.borrow()[0].contains("Connection: close\r\n"));
}

#[test]
fn server_closing_after_connection_close_is_not_an_error() {
    let mut behaviour = Behaviour::ok();
    behaviour.close_after = Some(3);
    behaviour.respond = Rc::new(|i, _| {
        if i == 2 {
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_vec()
        } else {
            ok_response("hello")
        }
    });
    let net = MockNet::new(behaviour);
    let stats = run(&net, plan(&net, Duration::from_secs(60), Some(9)));
    assert_eq!(stats.requests, 9);
    assert_eq!(stats.errors, Default::default());
    assert_eq!(net.0.connects.get(), 3);
}

#[test]
fn chunked_and_head_responses_are_validated() {
    let mut behaviour = Behaviour::ok();
    behaviour.respond = Rc::new(|_, req| {
        if req.starts_with(b"HEAD") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec()
        } else {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n"
                .to_vec()
        }
    });
    let net = MockNet::new(behaviour.clone());
    let mut p = plan(&net, Duration::from_secs(60), Some(10));
    p.pipeline = 3;
    let stats = run(&net, p);
    assert_eq!((stats.requests, stats.errors), (10, Default::default()));
    let net = MockNet::new(behaviour);
    let mut p = plan(&net, Duration::from_secs(60), Some(10));
    p.requests = templates(&["/"], "HEAD", true);
    p.pipeline = 3;
    let stats = run(&net, p);
    assert_eq!((stats.requests, stats.errors), (10, Default::default()));
}

#[test]
fn error_statuses_are_counted_and_still_requests() {
    let mut behaviour = Behaviour::ok();
    behaviour.respond = Rc::new(|i, _| {
        let status = if i % 2 == 0 {
            "503 Unavailable"
        } else {
            "304 Not Modified"
        };
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").into_bytes()
    });
    let net = MockNet::new(behaviour);
    let stats = run(&net, plan(&net, Duration::from_secs(60), Some(10)));
    assert_eq!(stats.requests, 10);
    assert_eq!(stats.errors.status, 5);
    assert_eq!(stats.errors.socket(), 0);
}

#[test]
fn refused_connections_are_connect_errors_and_the_run_ends_on_time() {
    let mut behaviour = Behaviour::ok();
    behaviour.refuse = Some(Duration::ZERO..Duration::MAX);
    let net = MockNet::new(behaviour.clone());
    let start = net.now();
    let stats = run(&net, plan(&net, Duration::from_secs(1), None));
    assert_eq!(stats.requests, 0);
    // The pause doubles from 10 ms: attempts at 0, 10, 30, 70, 150, 310 and 630 ms.
    assert_eq!(stats.errors.connect, 7);
    let ms = |t: &Duration| t.as_millis();
    let times: Vec<u128> = net.0.connect_times.borrow().iter().map(ms).collect();
    assert_eq!(times, [0, 10, 30, 70, 150, 310, 630]);
    assert_eq!(net.now() - start, Duration::from_secs(1));
    assert_eq!(stats.reach.unreachable_since(), Some(Duration::ZERO));
    // With -n, each failed attempt uses up the budget, so the run ends.
    let net = MockNet::new(behaviour);
    let stats = run(&net, plan(&net, Duration::from_secs(3600), Some(7)));
    assert_eq!(stats.errors.connect, 7);
}

#[test]
fn the_connect_backoff_is_capped_and_restarts_after_a_connect() {
    // Down for the first 100 ms, up until 300 ms, then down for good; each response
    // closes its connection, so the connection reconnects all the time.
    let mut behaviour = Behaviour::ok();
    behaviour.close_after = Some(1);
    behaviour.respond = Rc::new(|_, _| {
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec()
    });
    let ms = Duration::from_millis;
    let net = MockNet::new(Behaviour {
        refuse: Some(ms(300)..Duration::MAX),
        ..behaviour.clone()
    });
    let stats = run(&net, plan(&net, Duration::from_secs(30), None));
    let times = net.0.connect_times.borrow();
    let failed: Vec<Duration> = times.iter().copied().filter(|t| *t >= ms(300)).collect();
    let pauses: Vec<Duration> = failed.windows(2).map(|w| w[1] - w[0]).collect();
    let mut expected = vec![CONNECT_BACKOFF_FIRST];
    while expected.len() < pauses.len() {
        let next = (*expected.last().unwrap() * 2).min(CONNECT_BACKOFF);
        expected.push(next);
    }
    assert_eq!(pauses, expected);
    assert_eq!(pauses.last(), Some(&CONNECT_BACKOFF), "capped");
    // From 300 ms, pauses doubling from 10 ms: attempts at 300, 310, 330, 370, 450,
    // 610, 930 and 1570 ms; then one a second from 2.57 s to 29.57 s.
    assert_eq!(stats.errors.connect, 8 + 28);
    let since = stats.reach.unreachable_since().unwrap();
    assert!(since >= ms(300) && since < ms(301), "{since:?}");
    assert_eq!(stats.requests, times.len() as u64 - stats.errors.connect);

    // A success restarts the schedule at 10 ms.
    let net = MockNet::new(Behaviour {
        refuse: Some(Duration::ZERO..ms(100)),
        ..behaviour.clone()
    });
    let mut p = plan(&net, Duration::from_secs(1), None);
    p.timeout = ms(50);
    let stats = {
        let mut stats = Stats::new();
        futures::executor::block_on(run_connection(&net, p, &mut stats, None));
        stats
    };
    let times: Vec<u128> = net.0.connect_times.borrow()[..6]
        .iter()
        .map(Duration::as_millis)
        .collect();
    assert_eq!(times, [0, 10, 30, 70, 150, 150]);
    assert_eq!(stats.errors.connect, 4);
    assert_eq!(
        stats.reach.unreachable_since(),
        None,
        "reachable at the end"
    );
}

#[test]
fn bytes_count_as_they_arrive() {
    // A head and part of a body, then nothing: the response never completes.
    let partial = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789";
    let net = MockNet::new(Behaviour {
        respond: Rc::new(|_, _| partial.to_vec()),
        ..Behaviour::ok()
    });
    let mut p = plan(&net, Duration::from_secs(60), Some(3));
    p.timeout = Duration::from_millis(100);
    let stats = run(&net, p);
    assert_eq!(stats.requests, 0);
    assert_eq!(stats.errors.timeout, 3);
    assert_eq!(stats.bytes, 3 * partial.len() as u64);
}

#[test]
fn early_close_is_a_read_error() {
    // Accepts the request and closes without answering (an empty response reads as
    // end of stream).
    let net = MockNet::new(Behaviour {
        respond: Rc::new(|_, _| Vec::new()),
        ..Behaviour::ok()
    });
    let stats = run(&net, plan(&net, Duration::from_secs(60), Some(3)));
    assert_eq!(stats.requests, 0);
    assert_eq!(stats.errors.read, 3);
    // Closes in the middle of a body.
    let net = MockNet::new(Behaviour {
        respond: Rc::new(|_, _| b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec()),
        close_after: Some(1),
        ..Behaviour::ok()
    });
    let stats = run(&net, plan(&net, Duration::from_secs(60), Some(2)));
    assert_eq!(stats.errors.read, 2);
    assert_eq!(stats.requests, 0);
}

#[test]
fn stalls_are_timeouts_and_the_run_ends_on_time() {
    let mut behaviour = Behaviour::ok();
    behaviour.stall = true;
    let net = MockNet::new(behaviour);
    let start = net.now();
    let mut p = plan(&net, Duration::from_secs(1), None);
    p.timeout = Duration::from_millis(100);
    let stats = run(&net, p);
    assert_eq!(stats.requests, 0);
    // Ten timeouts of 100 ms fit in the second; the last wait ends with the run.
    assert_eq!(stats.errors.timeout, 9);
    assert_eq!(net.now() - start, Duration::from_secs(1));
    assert_eq!(net.0.connects.get(), 10);
}

#[test]
fn malformed_responses_and_io_failures() {
    let net = MockNet::new(Behaviour {
        respond: Rc::new(|_, _| b"HTTP/1.1 2OO OK\r\n\r\n".to_vec()),
        ..Behaviour::ok()
    });
    let stats = run(&net, plan(&net, Duration::from_secs(60), Some(4)));
    assert_eq!((stats.errors.malformed, stats.requests), (4, 0));

    let net = MockNet::new(Behaviour {
        respond: Rc::new(|_, _| {
            let mut r = ok_response("x");
            r.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            r
        }),
        ..Behaviour::ok()
    });
    let stats = run(&net, plan(&net, Duration::from_secs(60), Some(2)));
    assert_eq!(stats.errors.malformed, 2, "unsolicited responses");

    let net = MockNet::new(Behaviour {
        reset_reads: true,
        ..Behaviour::ok()
    });
    let stats = run(&net, plan(&net, Duration::from_secs(60), Some(3)));
    assert_eq!(stats.errors.read, 3);

    let net = MockNet::new(Behaviour {
        fail_writes: true,
        ..Behaviour::ok()
    });
    let stats = run(&net, plan(&net, Duration::from_secs(60), Some(3)));
    assert_eq!(stats.errors.write, 3);
}

#[test]
fn constant_rate_paces_requests() {
    let net = MockNet::new(Behaviour {
        latency: Rc::new(|_| Duration::from_millis(1)),
        ..Behaviour::ok()
    });
    let mut p = plan(&net, Duration::from_secs(1), None);
    p.schedule = Some(RateSchedule::new(net.now(), 100.0, 1, 0));
    let stats = run(&net, p);
    assert_eq!(stats.requests, 100);
    assert_eq!(stats.latency.max(), 1000);
}

#[test]
fn constant_rate_corrects_coordinated_omission() {
    // Request 10 takes 500 ms; the others 1 ms. At 100 requests/s the 49 requests
    // that were due during the stall wait for it, and their latency counts from when
    // they were due.
    let behaviour = Behaviour {
        latency: Rc::new(|n| {
            if n == 10 {
                Duration::from_millis(500)
            } else {
                Duration::from_millis(1)
            }
        }),
        ..Behaviour::ok()
    };
    let net = MockNet::new(behaviour.clone());
    let mut p = plan(&net, Duration::from_secs(2), None);
    p.schedule = Some(RateSchedule::new(net.now(), 100.0, 1, 0));
    let stats = run(&net, p);
    assert_eq!(stats.requests, 200);
    let slow = stats.latency.count_between(100_000, u64::MAX);
    assert!(slow >= 45, "{slow} requests saw the stall");
    assert!(stats.latency.max() >= 500_000);
    // Closed loop records the stall once: only the request that was slow.
    let net = MockNet::new(behaviour);
    let stats = run(&net, plan(&net, Duration::from_secs(2), None));
    assert_eq!(stats.latency.count_between(100_000, u64::MAX), 1);
}
