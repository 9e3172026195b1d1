//! The oracles that judge a finished run from the ground truth the taps recorded:
//! every byte a connection delivered is a byte its peer sent, every response answers
//! its request with the file's bytes (or ends early for a cause the run can name), and
//! loadgen's and the server's counters agree with what crossed the connections.

use std::collections::BTreeMap;
use std::rc::Rc;

use loadgen::Stats;
use webserver::Totals;

use crate::files::{file_index, SimFiles};
use crate::http::{self, SentRequest, SentResponse};
use crate::tap::{ConnRecord, End};

/// One loadgen group's run.
#[derive(Debug, Clone)]
pub struct GroupRun {
    /// The label of its connections' records.
    pub label: Rc<str>,
    /// `-n`: attempts it must make.
    pub requests: u64,
    /// Requests in flight per connection.
    pub depth: usize,
    /// What loadgen counted.
    pub stats: Stats,
}

/// What a run leaves for the oracles.
pub struct Evidence<'a> {
    /// Every connection end's record.
    pub records: &'a [ConnRecord],
    /// The document root.
    pub files: &'a SimFiles,
    /// The server's counters, one per incarnation.
    pub server_totals: &'a [Totals],
    /// The loadgen groups (the probe among them).
    pub groups: &'a [GroupRun],
}

/// Interesting things the oracles saw happen (for coverage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// Responses by notable status.
    pub status_408: u64,
    /// 304 responses.
    pub status_304: u64,
    /// 206 responses.
    pub status_206: u64,
    /// Client connections reset with a response partly received.
    pub rst_mid_response: u64,
    /// Connections on which a response arrived while the next request was already
    /// sent (pipelining).
    pub pipelined: u64,
    /// Complete responses clients received.
    pub responses: u64,
}

/// Judges the run; every violation is one line.
pub fn check(e: &Evidence<'_>) -> (Vec<String>, Seen) {
    let mut v = Vec::new();
    let mut seen = Seen::default();
    streams_agree(e.records, &mut v);
    for r in e.records.iter().filter(|r| r.end == End::Server) {
        exchanges(r, e.files, &mut v, &mut seen);
    }
    for r in e.records.iter().filter(|r| r.end == End::Client) {
        client_view(r, &mut v, &mut seen);
    }
    for g in e.groups {
        loadgen_counts(g, e.records, &mut v);
    }
    server_counts(e.server_totals, e.records, &mut v);
    (v, seen)
}

fn conn_name(r: &ConnRecord) -> String {
    match r.end {
        End::Client => format!("{} connection {}->{}", r.label, r.local_port, r.peer_port),
        End::Server => format!("server connection {}->{}", r.peer_port, r.local_port),
    }
}

/// TCP delivered exactly what was sent: each end's received bytes are a prefix of
/// what the other end of the same connection sent.
fn streams_agree(records: &[ConnRecord], v: &mut Vec<String>) {
    let mut servers: BTreeMap<(u16, u16), Vec<&ConnRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.end == End::Server) {
        servers
            .entry((r.peer_port, r.local_port))
            .or_default()
            .push(r);
    }
    let mut clients: BTreeMap<(u16, u16), Vec<&ConnRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.end == End::Client) {
        clients
            .entry((r.local_port, r.peer_port))
            .or_default()
            .push(r);
    }
    let prefix_of_one =
        |got: &[u8], peers: Option<&Vec<&ConnRecord>>, sent: fn(&ConnRecord) -> &[u8]| {
            got.is_empty() || peers.is_some_and(|ps| ps.iter().any(|p| sent(p).starts_with(got)))
        };
    for r in records {
        let (key, peers) = match r.end {
            End::Client => ((r.local_port, r.peer_port), &servers),
            End::Server => ((r.peer_port, r.local_port), &clients),
        };
        if !prefix_of_one(&r.received, peers.get(&key), |p| &p.sent) {
            v.push(format!(
                "{} received {} bytes its peer never sent (stream corrupted or misdelivered)",
                conn_name(r),
                r.received.len()
            ));
        }
    }
}

/// The server's side of one connection: each request answered in order, correctly.
fn exchanges(r: &ConnRecord, files: &SimFiles, v: &mut Vec<String>, seen: &mut Seen) {
    let name = conn_name(r);
    let reqs = http::requests(&r.received);
    let resps = match http::responses(&r.sent, head_answers(r, &reqs)) {
        Ok(x) => x,
        Err(e) => {
            v.push(format!("{name}: the server sent {e}"));
            return;
        }
    };
    let n = reqs.complete.len();
    if resps.len() > n + 1 {
        v.push(format!("{name}: {} responses to {n} requests", resps.len()));
        return;
    }
    for (i, resp) in resps.iter().enumerate() {
        let body = &r.sent[resp.body.clone()];
        if !resp.complete {
            let excused = r.write_troubled()
                || reqs
                    .complete
                    .get(i)
                    .and_then(file_of)
                    .is_some_and(|f| files.faulted(f));
            if !excused {
                v.push(format!(
                    "{name}: response {i} ({}) ends after {} body bytes of {:?} without cause (no fault, no error)",
                    resp.status,
                    body.len(),
                    resp.content_length
                ));
            }
            if resp.head_len == 0 {
                continue;
            }
        }
        match resp.status {
            408 => seen.status_408 += 1,
            304 => seen.status_304 += 1,
            206 => seen.status_206 += 1,
            _ => {}
        }
        let start = resp.body.start - resp.head_len;
        match reqs.complete.get(i) {
            // Sent before the request had arrived: an answer to what had (a head that
            // timed out, bytes already malformed, or more header lines than the server
            // takes, counted before the head ended).
            Some(req) if !r.arrived_before(req.end.saturating_sub(1), start) => {
                if !(resp.status == 408
                    || (resp.status == 400 && req.malformed)
                    || (resp.status == 431 && req.oversized))
                {
                    v.push(format!(
                        "{name}: response {i} ({}) was sent before request {i} had arrived",
                        resp.status
                    ));
                }
            }
            Some(req) => {
                if let Err(e) = judge(req, resp, body, files) {
                    v.push(format!(
                        "{name}: {} {} answered {}: {e}",
                        req.method, req.path, resp.status
                    ));
                }
            }
            // An answer to no complete request: the head timed out or was too large.
            None if matches!(resp.status, 408 | 431) => {}
            None => v.push(format!(
                "{name}: response {i} ({}) answers no complete request",
                resp.status
            )),
        }
    }
    let answered = resps.iter().filter(|x| x.head_len > 0).count();
    if answered < n {
        let closed = resps
            .iter()
            .any(|x| x.close || !x.complete || matches!(x.status, 400 | 408 | 431));
        let stopped = reqs
            .complete
            .get(answered)
            .is_some_and(|q| q.malformed || q.oversized);
        if !(closed || stopped || r.read_troubled() || r.write_troubled()) {
            v.push(format!(
                "{name}: {} of {n} requests unanswered, yet the connection closed cleanly",
                n - answered
            ));
        }
    }
}

/// On the server's side: whether response `i`, starting at sent byte `at`, answers a
/// HEAD request (the request had arrived when the response began).
fn head_answers<'a>(
    r: &'a ConnRecord,
    reqs: &'a http::Requests,
) -> impl Fn(usize, usize) -> bool + 'a {
    move |i, at| {
        reqs.complete
            .get(i)
            .is_some_and(|q| q.is_head() && r.arrived_before(q.end.saturating_sub(1), at))
    }
}

/// The index of the file a request names, if it names one of ours.
fn file_of(req: &SentRequest) -> Option<usize> {
    file_index(req.path.strip_prefix('/')?.as_bytes())
}

/// Whether `resp` (with `body`, complete or not) is a right answer to `req`.
fn judge(
    req: &SentRequest,
    resp: &SentResponse,
    body: &[u8],
    files: &SimFiles,
) -> Result<(), String> {
    if req.oversized {
        return match resp.status {
            431 => Ok(()),
            s => Err(format!("a head of too many lines needs 431, not {s}")),
        };
    }
    if req.malformed {
        return match resp.status {
            400 => Ok(()),
            s => Err(format!("a malformed request needs 400, not {s}")),
        };
    }
    let states = file_of(req)
        .map(|i| (i, files.states(i)))
        .filter(|(_, s)| !s.is_empty());
    let Some((index, states)) = states else {
        return match resp.status {
            404 => Ok(()),
            s => Err(format!("no such file: 404, not {s}")),
        };
    };
    let faulted = files.faulted(index);
    let head = req.is_head();
    // Some content the path showed at some time explains the response.
    let explains = |s: &[u8]| -> bool {
        let len = s.len() as u64;
        match resp.status {
            200 => {
                !req.if_modified_since
                    && req
                        .range
                        .as_deref()
                        .is_none_or(|r| http::range_span(r, len).is_none())
                    && resp.content_length == Some(len)
                    && (head || s.starts_with(body))
            }
            206 => {
                let Some(Some((a, b))) =
                    req.range.as_deref().and_then(|r| http::range_span(r, len))
                else {
                    return false;
                };
                !req.if_modified_since
                    && resp.content_range == Some((a, b, len))
                    && resp.content_length == Some(b - a + 1)
                    && (head || s[a as usize..=b as usize].starts_with(body))
            }
            416 => req
                .range
                .as_deref()
                .is_some_and(|r| http::range_span(r, len) == Some(None)),
            304 => req.if_modified_since && body.is_empty(),
            _ => false,
        }
    };
    match resp.status {
        500 if faulted => Ok(()),
        200 | 206 | 304 | 416 if states.iter().any(|s| explains(s)) => Ok(()),
        _ => Err(format!(
            "no content of /f{index} explains it (sizes {:?}, faulted {faulted}, body {} bytes, Content-Length {:?}, Content-Range {:?})",
            states.iter().map(|s| s.len()).collect::<Vec<_>>(),
            body.len(),
            resp.content_length,
            resp.content_range
        )),
    }
}

/// The client's side: what coverage needs (the content is judged on the server's side,
/// of which the client's received bytes are a prefix).
fn client_view(r: &ConnRecord, v: &mut Vec<String>, seen: &mut Seen) {
    let reqs = http::requests(&r.sent);
    let resps = match http::responses(&r.received, |i, _| {
        reqs.complete.get(i).is_some_and(SentRequest::is_head)
    }) {
        Ok(x) => x,
        Err(e) => {
            v.push(format!("{}: received {e}", conn_name(r)));
            return;
        }
    };
    let complete = resps.iter().filter(|x| x.complete).count() as u64;
    seen.responses += complete;
    if r.reset && resps.last().is_some_and(|x| !x.complete && x.head_len > 0) {
        seen.rst_mid_response += 1;
    }
    if complete >= 2 && reqs.complete.len() as u64 > complete && r.label.starts_with("loadgen") {
        seen.pipelined += 1;
    }
}

/// loadgen's counters against the records of its connections: its bytes are every
/// byte they received (complete responses or not), its responses and error statuses
/// those of the complete responses among them.
fn loadgen_counts(g: &GroupRun, records: &[ConnRecord], v: &mut Vec<String>) {
    let mut started = 0u64;
    let (mut responses, mut bytes, mut bad_status) = (0u64, 0u64, 0u64);
    let (mut conns, mut unfinished) = (0u64, 0u64);
    for r in records
        .iter()
        .filter(|r| r.end == End::Client && *r.label == *g.label)
    {
        conns += 1;
        bytes += r.received.len() as u64;
        let reqs = http::requests(&r.sent);
        let n = reqs.complete.len() as u64 + u64::from(reqs.partial);
        started += n;
        let Ok(resps) = http::responses(&r.received, |i, _| {
            reqs.complete.get(i).is_some_and(SentRequest::is_head)
        }) else {
            continue;
        };
        let done: Vec<&SentResponse> = resps.iter().filter(|x| x.complete).collect();
        responses += done.len() as u64;
        bad_status += done
            .iter()
            .filter(|x| !(200..400).contains(&x.status))
            .count() as u64;
        if (done.len() as u64) < n && !done.iter().any(|x| x.close) {
            unfinished += 1;
            if !(r.read_troubled() || r.write_troubled() || r.eof) {
                v.push(format!(
                    "{}: {} requests unanswered and no error, timeout or close to explain it",
                    conn_name(r),
                    n - done.len() as u64
                ));
            }
        }
    }
    let s = &g.stats;
    let name = &g.label;
    if s.requests != responses || s.bytes != bytes {
        v.push(format!(
            "{name}: loadgen counted {} responses, {} bytes; its connections received {responses} complete responses in {bytes} bytes",
            s.requests, s.bytes
        ));
    }
    if s.errors.status != bad_status {
        v.push(format!(
            "{name}: loadgen counted {} error statuses, its connections received {bad_status}",
            s.errors.status
        ));
    }
    if s.errors.malformed != 0 {
        v.push(format!(
            "{name}: loadgen saw {} malformed responses",
            s.errors.malformed
        ));
    }
    let (lo, hi) = (
        started + s.errors.connect,
        started + s.errors.connect + s.errors.write * g.depth as u64,
    );
    if !(lo <= g.requests && g.requests <= hi) {
        v.push(format!(
            "{name}: asked for {} requests; {started} were sent and {} connects failed ({} write errors)",
            g.requests, s.errors.connect, s.errors.write
        ));
    }
    let ended_in_error = s.errors.read + s.errors.write + s.errors.timeout;
    if ended_in_error < unfinished || ended_in_error > conns {
        v.push(format!(
            "{name}: {unfinished} of {conns} connections ended with requests unanswered, but loadgen counted {ended_in_error} read, write and timeout errors"
        ));
    }
}

/// The server's counters against the records of its connections.
fn server_counts(totals: &[Totals], records: &[ConnRecord], v: &mut Vec<String>) {
    let (mut conns, mut bytes_in, mut bytes_out, mut requests) = (0, 0, 0, 0);
    for t in totals {
        conns += t.connections;
        bytes_in += t.bytes_in;
        bytes_out += t.bytes_out;
        requests += t.status.iter().sum::<u64>();
    }
    let mine: Vec<&ConnRecord> = records.iter().filter(|r| r.end == End::Server).collect();
    let recv: u64 = mine.iter().map(|r| r.received.len() as u64).sum();
    let sent: u64 = mine.iter().map(|r| r.sent.len() as u64).sum();
    let heads: u64 = mine
        .iter()
        .map(|r| {
            let reqs = http::requests(&r.received);
            http::responses(&r.sent, head_answers(r, &reqs))
                .map_or(0, |x| x.iter().filter(|x| x.head_len > 0).count() as u64)
        })
        .sum();
    if conns != mine.len() as u64 || bytes_in != recv || bytes_out != sent {
        v.push(format!(
            "server counted {conns} connections, {bytes_in} bytes in, {bytes_out} out; its connections carried {}, {recv}, {sent}",
            mine.len()
        ));
    }
    if requests < heads {
        v.push(format!(
            "server counted {requests} responses but sent {heads} response heads"
        ));
    }
}
