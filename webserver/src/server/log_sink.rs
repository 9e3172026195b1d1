//! The access-log writer: records are formatted into a per-core buffer and written in
//! batches (when the buffer fills, every [`FLUSH_EVERY`], and at shutdown).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::rc::Rc;
use std::time::Duration;

use webserver::{AccessLog, LogEntry};

/// The buffer is written once it holds this many bytes.
const FLUSH_AT: usize = 32 * 1024;
/// A partly filled buffer is written at least this often.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Where one core's records go.
#[derive(Debug)]
pub enum Sink {
    /// Standard output.
    Stdout,
    /// A file opened for appending (each core holds its own descriptor).
    File(File),
}

/// One core's access log.
#[derive(Debug)]
pub struct LogWriter {
    sink: Sink,
    buf: RefCell<Vec<u8>>,
}

impl LogWriter {
    /// A writer to `sink`.
    pub fn new(sink: Sink) -> Rc<Self> {
        Rc::new(LogWriter {
            sink,
            buf: RefCell::new(Vec::with_capacity(FLUSH_AT + 512)),
        })
    }

    /// Writes the buffered records. A failing log must not stop the server: the error
    /// is reported and the records dropped.
    pub fn flush(&self) {
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            return;
        }
        let r = match &self.sink {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&buf).and_then(|()| out.flush())
            }
            Sink::File(f) => (&*f).write_all(&buf),
        };
        if let Err(e) = r {
            eprintln!("webserver: writing the access log: {e}");
        }
        buf.clear();
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The [`AccessLog`] handed to the core's `ServerContext`.
pub struct SharedLog(pub Rc<LogWriter>);

impl AccessLog for SharedLog {
    fn record(&self, entry: &LogEntry<'_>) {
        let full = {
            let mut buf = self.0.buf.borrow_mut();
            entry.write_clf(&mut buf);
            buf.len() >= FLUSH_AT
        };
        if full {
            self.0.flush();
        }
    }
}
