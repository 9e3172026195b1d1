//! Optional tracing of thread spawn, run, suspend (with the system call), resume and
//! exit, and of events code adds with [`event`] (a simulated link's packets, say),
//! written in Chrome's trace-event JSON format, which Perfetto and chrome://tracing
//! open. Off by default; when off, each trace point is one branch. Under a mock clock
//! the timestamps are the mock clock's, so the trace of a deterministic run is the
//! same at every replay.

use std::fmt::Write as _;

use crate::core::ThreadId;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TraceKind {
    Spawn,
    RunBegin,
    RunEnd,
    Suspend,
    Resume,
    Exit,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    ns: u64,
    tid: u32,
    kind: TraceKind,
    name: &'static str,
}

/// An event added with [`event`]: on its own named track.
#[derive(Debug, Clone)]
struct Custom {
    ns: u64,
    track: &'static str,
    name: &'static str,
    detail: String,
}

/// The events recorded by one core.
#[derive(Debug)]
pub struct Tracer {
    core: usize,
    events: Vec<Event>,
    custom: Vec<Custom>,
}

/// Records an instant event named `name` on the track `track` of the current core's
/// trace, with `detail` (computed only when the core records a trace) as its argument.
/// Does nothing outside a runtime or when tracing is off.
pub fn event(track: &'static str, name: &'static str, detail: impl FnOnce() -> String) {
    let _ = crate::core::Core::with_current(|c| c.trace_event(track, name, detail));
}

/// Whether the current core records a trace (so a caller can skip preparing events).
pub fn enabled() -> bool {
    crate::core::Core::with_current(|c| c.tracing()).unwrap_or(false)
}

impl Tracer {
    pub(crate) fn new(core: usize) -> Tracer {
        Tracer {
            core,
            events: Vec::new(),
            custom: Vec::new(),
        }
    }

    pub(crate) fn record_event(
        &mut self,
        ns: u64,
        track: &'static str,
        name: &'static str,
        detail: String,
    ) {
        self.custom.push(Custom {
            ns,
            track,
            name,
            detail,
        });
    }

    pub(crate) fn record(&mut self, ns: u64, tid: ThreadId, kind: TraceKind, name: &'static str) {
        self.events.push(Event {
            ns,
            tid: tid.index(),
            kind,
            name,
        });
    }

    /// Number of recorded events.
    pub fn len(&self) -> usize {
        self.events.len() + self.custom.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.custom.is_empty()
    }
}

fn escape(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// `tid` of the first custom track (above any thread slot a test would reach).
const CUSTOM_TID: usize = 1 << 30;

/// Renders the traces of all cores as one Chrome trace-event JSON document
/// (`{"traceEvents": [...]}`): `pid` is the core, `tid` the thread slot; running
/// intervals are `B`/`E` pairs, the rest instant events whose `name` is the event (for
/// suspensions, the system call).
pub fn chrome_json(tracers: &[Tracer]) -> String {
    let mut out =
        String::with_capacity(64 + tracers.iter().map(|t| t.events.len() * 96).sum::<usize>());
    out.push_str("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[");
    let mut first = true;
    for t in tracers {
        let _ = write!(
            out,
            "{}{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{},\"tid\":0,\"args\":{{\"name\":\"core {}\"}}}}",
            if first { "" } else { "," },
            t.core,
            t.core
        );
        first = false;
        for e in &t.events {
            let (ph, cat) = match e.kind {
                TraceKind::RunBegin => ("B", "run"),
                TraceKind::RunEnd => ("E", "run"),
                TraceKind::Spawn => ("i", "spawn"),
                TraceKind::Suspend => ("i", "suspend"),
                TraceKind::Resume => ("i", "resume"),
                TraceKind::Exit => ("i", "exit"),
            };
            out.push_str(",{\"name\":\"");
            escape(e.name, &mut out);
            let _ = write!(
                out,
                "\",\"cat\":\"{cat}\",\"ph\":\"{ph}\",\"ts\":{}.{:03},\"pid\":{},\"tid\":{}{}}}",
                e.ns / 1000,
                e.ns % 1000,
                t.core,
                e.tid,
                if ph == "i" { ",\"s\":\"t\"" } else { "" }
            );
        }
        // Custom events: one track (a `tid` past every thread slot) per track name.
        let mut tracks: Vec<&'static str> = Vec::new();
        for e in &t.custom {
            let n = match tracks.iter().position(|&x| x == e.track) {
                Some(n) => n,
                None => {
                    tracks.push(e.track);
                    let n = tracks.len() - 1;
                    out.push_str(",{\"name\":\"thread_name\",\"ph\":\"M\"");
                    let _ = write!(out, ",\"pid\":{},\"tid\":{}", t.core, CUSTOM_TID + n);
                    out.push_str(",\"args\":{\"name\":\"");
                    escape(e.track, &mut out);
                    out.push_str("\"}}");
                    n
                }
            };
            out.push_str(",{\"name\":\"");
            escape(e.name, &mut out);
            let _ = write!(
                out,
                "\",\"cat\":\"event\",\"ph\":\"i\",\"s\":\"t\",\"ts\":{}.{:03},\"pid\":{},\"tid\":{},\"args\":{{\"detail\":\"",
                e.ns / 1000,
                e.ns % 1000,
                t.core,
                CUSTOM_TID + n
            );
            escape(&e.detail, &mut out);
            out.push_str("\"}}");
        }
    }
    out.push_str("]}\n");
    out
}
