//! One load-generating connection: send (pipelined) requests, validate responses,
//! record latencies and errors, reconnect when the connection ends.
//!
//! Rules:
//! - Closed-loop mode (no `-R`): the pipeline is kept full (`pipeline` requests in
//!   flight); latency is measured from when the request was written, as the
//!   connection's clock last read it: the reading taken when the previous response
//!   arrived (or the connection opened) also starts the requests written after it. A
//!   latency therefore includes loadgen's own handling of that response, a fraction of
//!   a microsecond, and is never less than the server's time; one clock reading per
//!   response serves both ends.
//! - Constant-rate mode: a request is sent only when its [`RateSchedule`] time has
//!   come, and its latency is measured from that intended time.
//! - `max_requests` counts attempts: requests written, plus failed connection attempts
//!   (so that `-n` ends even against a server that is down).
//! - After a failed connection attempt the connection waits before the next one:
//!   [`CONNECT_BACKOFF_FIRST`] after the first failure, doubling with each consecutive
//!   failure up to [`CONNECT_BACKOFF`]; a successful connect starts over. When it
//!   stops, the connection records whether its last attempts were failing and since
//!   when ([`SlotEnd`]).
//! - Every byte read from the server is recorded as it arrives, whether or not its
//!   response completes. Body bytes the parser only counts (a Content-Length body, a
//!   chunk's data, a body that runs to the close) are consumed without being read out
//!   when at least 16 KiB of them are due and none are buffered
//!   ([`Transport::discard`]); they count the same.
//! - Errors are counted once per event: a failed connect, a failed write, a failed or
//!   early-closed read (with requests outstanding), a timeout (no complete response
//!   `timeout` after the oldest outstanding request was written), a malformed
//!   response. Each closes the connection and a new one is opened. Requests still in
//!   flight when the server closes after a `Connection: close` response are dropped
//!   without an error.
//! - At `end` the connection stops at once: requests in flight are abandoned and not
//!   counted as errors.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::request::RequestTemplate;
use crate::response::{ResponseMeta, ResponseParser};
use crate::schedule::RateSchedule;
use crate::stats::{ErrorKind, Recorder, SlotEnd};
use crate::transport::{Network, Transport, TransportError};

/// Size of each connection's read buffer (and so the largest response head).
pub const READ_BUFFER: usize = 64 * 1024;

/// Body bytes that are only counted are consumed without being read out
/// ([`Transport::discard`]) when at least this many are due and none are buffered:
/// smaller bodies arrive with their heads anyway.
const DISCARD_MIN: u64 = 16 * 1024;

/// Pause after the first failed connection attempt of a run of failures.
pub const CONNECT_BACKOFF_FIRST: Duration = Duration::from_millis(10);

/// Longest pause after a failed connection attempt: the pause starts at
/// [`CONNECT_BACKOFF_FIRST`] and doubles with each consecutive failure up to this.
pub const CONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// What one connection does.
#[derive(Debug, Clone)]
pub struct ConnectionPlan {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The requests, sent in rotation.
    pub requests: Arc<[RequestTemplate]>,
    /// Which request of the rotation this connection sends first.
    pub first_request: usize,
    /// Requests in flight at once (at least 1).
    pub pipeline: usize,
    /// Whether to reuse connections (else one request per connection).
    pub keep_alive: bool,
    /// Time allowed for each response (and each connect and write).
    pub timeout: Duration,
    /// When the run started (the times recorded count from here).
    pub start: Instant,
    /// When the run ends.
    pub end: Instant,
    /// Most attempts for this connection (`-n` share), if bounded.
    pub max_requests: Option<u64>,
    /// The constant-rate schedule (`-R`), if any.
    pub schedule: Option<RateSchedule>,
}

/// How a connection's session ended.
enum SessionEnd {
    /// Open a new connection and go on.
    Reconnect,
    /// The run (or this connection's share of it) is over.
    Done,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// Latency is measured from here.
    intended: Instant,
    /// The timeout runs from here.
    written: Instant,
    head: bool,
}

struct Runner<'a, N, R> {
    net: &'a N,
    plan: ConnectionPlan,
    stats: &'a mut R,
    progress: Option<&'a AtomicU64>,
    attempts: u64,
    /// The pause after the next failed connection attempt.
    backoff: Duration,
    /// When the current run of failed connection attempts began.
    failing_since: Option<Instant>,
    /// Whether a connection attempt was made at all.
    tried: bool,
    buf: Vec<u8>,
    out: Vec<u8>,
    in_flight: VecDeque<InFlight>,
}

/// Runs one connection slot until the plan's end or request budget: connects,
/// reconnects, sends and validates, recording into `stats`. `progress`, if given, is
/// increased by the number of responses after each read (for a live display).
pub async fn run_connection<N: Network, R: Recorder>(
    net: &N,
    plan: ConnectionPlan,
    stats: &mut R,
    progress: Option<&AtomicU64>,
) {
    if plan.requests.is_empty() {
        return;
    }
    let depth = plan.pipeline.max(1);
    let mut runner = Runner {
        net,
        plan,
        stats,
        progress,
        attempts: 0,
        backoff: CONNECT_BACKOFF_FIRST,
        failing_since: None,
        tried: false,
        buf: vec![0; READ_BUFFER],
        out: Vec::new(),
        in_flight: VecDeque::with_capacity(depth),
    };
    runner.run().await;
    runner.record_slot_end();
}

impl<N: Network, R: Recorder> Runner<'_, N, R> {
    fn budget_left(&self) -> bool {
        self.plan.max_requests.is_none_or(|max| self.attempts < max)
    }

    /// `t` as time since the start of the run.
    fn since_start(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.plan.start)
    }

    /// Records whether the last connection attempts failed, and since when (nothing if
    /// none was made).
    fn record_slot_end(&mut self) {
        let end = match self.failing_since {
            Some(since) => SlotEnd::Unreachable {
                since: self.since_start(since),
            },
            None if self.tried => SlotEnd::Reached {
                at: self.since_start(self.net.now()),
            },
            None => return,
        };
        self.stats.record_slot_end(end);
    }

    /// Whether the run is over at `now`: its end has come, or it was stopped. A call
    /// that fails then records no error (the run cut it short, not the server).
    fn over(&self, now: Instant) -> bool {
        now >= self.plan.end || self.net.stopped()
    }

    /// Records an error that happened now.
    fn error(&mut self, kind: ErrorKind) {
        let at = self.since_start(self.net.now());
        self.stats.record_error(at, kind);
    }

    fn depth(&self) -> usize {
        if self.plan.keep_alive {
            self.plan.pipeline.max(1)
        } else {
            1
        }
    }

    async fn run(&mut self) {
        loop {
            let now = self.net.now();
            if self.over(now) || !self.budget_left() {
                return;
            }
            let deadline = (now + self.plan.timeout).min(self.plan.end);
            self.tried = true;
            let mut conn = match self.net.connect(self.plan.addr, deadline).await {
                Ok(conn) => {
                    self.backoff = CONNECT_BACKOFF_FIRST;
                    self.failing_since = None;
                    if let Some(s) = &mut self.plan.schedule {
                        s.open_at(self.net.now());
                    }
                    conn
                }
                Err(_) if self.over(self.net.now()) => return,
                Err(_) => {
                    self.error(ErrorKind::Connect);
                    self.attempts += 1;
                    self.failing_since.get_or_insert(now);
                    let retry = (self.net.now() + self.backoff).min(self.plan.end);
                    self.backoff = (self.backoff * 2).min(CONNECT_BACKOFF);
                    self.net.sleep_until(retry).await;
                    continue;
                }
            };
            match self.session(&mut conn).await {
                SessionEnd::Reconnect => continue,
                SessionEnd::Done => return,
            }
        }
    }

    /// Drives one open connection.
    async fn session(&mut self, conn: &mut N::Conn) -> SessionEnd {
        self.in_flight.clear();
        let mut parser = ResponseParser::new(self.buf.len());
        let (mut start, mut end) = (0usize, 0usize);
        let mut sent_here = 0u64;
        let mut now = self.net.now();
        loop {
            // Not `over`: a stop is seen where a call fails or a paced wait ends,
            // which keeps the check off the per-request path.
            if now >= self.plan.end {
                return SessionEnd::Done;
            }
            // Fill the pipeline with the requests that are due.
            self.out.clear();
            while self.in_flight.len() < self.depth()
                && self.budget_left()
                && (self.plan.keep_alive || sent_here == 0)
            {
                let intended = match &mut self.plan.schedule {
                    Some(s) if s.next_due() > now => break,
                    Some(s) => s.take(),
                    None => now,
                };
                let index = (self.plan.first_request as u64 + self.attempts)
                    % self.plan.requests.len() as u64;
                let template = &self.plan.requests[index as usize];
                self.out.extend_from_slice(&template.bytes);
                self.in_flight.push_back(InFlight {
                    intended,
                    written: now,
                    head: template.head,
                });
                self.attempts += 1;
                sent_here += 1;
            }
            if !self.out.is_empty() {
                let deadline = (now + self.plan.timeout).min(self.plan.end);
                if let Err(e) = conn.write_all(&self.out, deadline).await {
                    return self.failed(e, ErrorKind::Write);
                }
            }
            let Some(oldest) = self.in_flight.front().copied() else {
                // Nothing in flight: wait for the next scheduled request, or stop.
                if !self.budget_left() || (!self.plan.keep_alive && sent_here > 0) {
                    return SessionEnd::Done;
                }
                match &self.plan.schedule {
                    Some(s) => {
                        let due = s.next_due().min(self.plan.end);
                        self.net.sleep_until(due).await;
                        now = self.net.now();
                        if self.net.stopped() {
                            return SessionEnd::Done;
                        }
                        continue;
                    }
                    None => return SessionEnd::Done,
                }
            };
            // Read until a response is due, the next scheduled send, or the end.
            let response_deadline = oldest.written + self.plan.timeout;
            let mut deadline = response_deadline.min(self.plan.end);
            if let Some(s) = &self.plan.schedule {
                if self.in_flight.len() < self.depth() && self.budget_left() {
                    deadline = deadline.min(s.next_due());
                }
            }
            if end == self.buf.len() {
                // Unconsumed bytes are an incomplete head; the parser fails on a head
                // that fills the whole buffer, so there is room after compaction.
                self.buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            // Many body bytes due and none buffered: they are only counted, so they
            // are consumed where they arrived instead of being read out.
            let skip = (start == end)
                .then(|| parser.body_left())
                .flatten()
                .filter(|&left| left >= DISCARD_MIN);
            let got = match skip {
                Some(left) => {
                    let max = usize::try_from(left).unwrap_or(usize::MAX);
                    conn.discard(max, deadline).await
                }
                None => conn.read(&mut self.buf[end..], deadline).await,
            };
            let n = match got {
                Ok(n) => n,
                Err(TransportError::TimedOut) => {
                    now = self.net.now();
                    if self.over(now) {
                        return SessionEnd::Done;
                    }
                    if now >= response_deadline {
                        self.error(ErrorKind::Timeout);
                        return SessionEnd::Reconnect;
                    }
                    continue;
                }
                Err(e) => return self.failed(e, ErrorKind::Read),
            };
            self.stats.record_bytes(n as u64);
            now = self.net.now();
            let at = self.since_start(now);
            if n == 0 {
                let closing = match parser.eof(end - start) {
                    Ok(Some(meta)) => {
                        let mut completed = 0;
                        let closing = self.response_done(meta, at, now, &mut completed);
                        self.report_progress(completed);
                        closing
                    }
                    Ok(None) => false,
                    Err(_) => {
                        self.stats.record_error(at, ErrorKind::Read);
                        return SessionEnd::Reconnect;
                    }
                };
                // Requests still in flight behind a response that closes the
                // connection (by `Connection: close`, or an end of the body that is
                // the end of the stream) are dropped without an error, as when
                // the close comes after a response of known length.
                if !self.in_flight.is_empty() && !closing {
                    self.stats.record_error(at, ErrorKind::Read);
                }
                return SessionEnd::Reconnect;
            }
            let mut completed = 0;
            if skip.is_some() {
                let close = parser
                    .skip(n as u64)
                    .is_some_and(|meta| self.response_done(meta, at, now, &mut completed));
                self.report_progress(completed);
                if close || self.overdue(completed, now, response_deadline, at) {
                    return SessionEnd::Reconnect;
                }
                continue;
            }
            end += n;
            let mut close = false;
            while start < end && !close {
                if !parser.in_progress() {
                    match self.in_flight.front() {
                        Some(req) => parser.expect(req.head),
                        None => {
                            // Bytes nobody asked for.
                            self.stats.record_error(at, ErrorKind::Malformed);
                            self.report_progress(completed);
                            return SessionEnd::Reconnect;
                        }
                    }
                }
                let progress = match parser.feed(&self.buf[start..end]) {
                    Ok(p) => p,
                    Err(_) => {
                        self.stats.record_error(at, ErrorKind::Malformed);
                        self.report_progress(completed);
                        return SessionEnd::Reconnect;
                    }
                };
                start += progress.consumed;
                let Some(meta) = progress.complete else {
                    break;
                };
                close = self.response_done(meta, at, now, &mut completed);
            }
            if start == end {
                (start, end) = (0, 0);
            }
            self.report_progress(completed);
            if close || self.overdue(completed, now, response_deadline, at) {
                return SessionEnd::Reconnect;
            }
        }
    }

    /// After a read that completed no response, at `now`: whether the oldest request
    /// in flight, due by `response_deadline`, has waited too long, which is then
    /// recorded as a timeout. A read that finds bytes waiting never times out itself,
    /// so a server that keeps sending without completing a response is caught here.
    fn overdue(
        &mut self,
        completed: u64,
        now: Instant,
        response_deadline: Instant,
        at: Duration,
    ) -> bool {
        if completed > 0 || now < response_deadline || now >= self.plan.end {
            return false;
        }
        self.stats.record_error(at, ErrorKind::Timeout);
        true
    }

    /// A response completed `at` (read `now`): records its latency against the oldest
    /// request in flight, counting it in `completed`. Returns whether the connection
    /// closes after it.
    fn response_done(
        &mut self,
        meta: ResponseMeta,
        at: Duration,
        now: Instant,
        completed: &mut u64,
    ) -> bool {
        if let Some(req) = self.in_flight.pop_front() {
            self.stats.record_response(
                at,
                now.saturating_duration_since(req.intended),
                meta.status,
            );
            *completed += 1;
        }
        !meta.keep_alive || !self.plan.keep_alive
    }

    /// Counts a failed read or write (a timeout as such) unless the run is over.
    fn failed(&mut self, e: TransportError, kind: ErrorKind) -> SessionEnd {
        if self.over(self.net.now()) {
            return SessionEnd::Done;
        }
        self.error(match e {
            TransportError::TimedOut => ErrorKind::Timeout,
            TransportError::Io(_) => kind,
        });
        SessionEnd::Reconnect
    }

    fn report_progress(&self, completed: u64) {
        if let (Some(p), true) = (self.progress, completed > 0) {
            p.fetch_add(completed, Ordering::Relaxed);
        }
    }
}
