//! A network that records every byte each connection sends and receives: the ground
//! truth the oracles compare both programs' counters, and each other, against.
//!
//! [`TapNet`] wraps any threadlib network; its streams append what they write and read
//! to their record, and hand the record to a shared [`Records`] when dropped.

use std::cell::RefCell;
use std::io::IoSlice;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use threadlib::net::{ListenOptions, Listener, Network, Stream};
use threadlib::Result;

/// Which program's end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client's (loadgen, or a raw test client).
    Client,
    /// The server's.
    Server,
}

/// Everything one end of one connection sent and received.
#[derive(Debug, Clone)]
pub struct ConnRecord {
    /// Whose end.
    pub end: End,
    /// Which client made it (a label), for the client's end.
    pub label: Rc<str>,
    /// The end's local port.
    pub local_port: u16,
    /// The peer's port.
    pub peer_port: u16,
    /// Virtual time the connection was established (connect returned, or accepted).
    pub opened: Duration,
    /// Bytes written, in order.
    pub sent: Vec<u8>,
    /// Bytes read, in order.
    pub received: Vec<u8>,
    /// The connection was reset (a read or write failed with a reset).
    pub reset: bool,
    /// A read returned end of stream.
    pub eof: bool,
    /// A read or write failed (the first failure).
    pub error: Option<String>,
    /// A read was abandoned before it finished (a timeout, or the thread was
    /// cancelled) and not simply retried: reading ended there, or a write came next.
    pub read_interrupted: bool,
    /// A write was abandoned before it finished and not simply retried.
    pub write_interrupted: bool,
    /// Which operations are under way (left set if a future is dropped).
    pending: Pending,
    /// Each read and write, in order: whether a read, and the stream's length after it.
    pub ops: Vec<(bool, usize)>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    read: bool,
    write: bool,
}

impl ConnRecord {
    /// Whether a write failed or was abandoned (so a response may be cut short).
    pub fn write_troubled(&self) -> bool {
        self.reset || self.error.is_some() || self.write_interrupted
    }

    /// Whether a read failed or was abandoned (so requests may go unanswered).
    pub fn read_troubled(&self) -> bool {
        self.reset || self.error.is_some() || self.read_interrupted
    }

    /// Whether received byte `offset` had arrived before sent byte `sent` was written.
    pub fn arrived_before(&self, offset: usize, sent: usize) -> bool {
        let read = self.ops.iter().position(|&(r, len)| r && len > offset);
        let write = self.ops.iter().position(|&(r, len)| !r && len > sent);
        match (read, write) {
            (Some(r), Some(w)) => r < w,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    fn close_pending(&mut self) {
        self.read_interrupted |= self.pending.read;
        self.write_interrupted |= self.pending.write;
        self.pending = Pending::default();
    }
}

/// The finished connections' records.
pub type Records = Rc<RefCell<Vec<ConnRecord>>>;

/// A threadlib network whose streams record their bytes into `records`.
#[derive(Debug, Clone)]
pub struct TapNet<N> {
    net: N,
    label: Rc<str>,
    records: Records,
}

impl<N> TapNet<N> {
    /// `net`, recording into `records` under `label`.
    pub fn new(net: N, label: impl Into<Rc<str>>, records: Records) -> Self {
        TapNet {
            net,
            label: label.into(),
            records,
        }
    }
}

/// A recording listener.
#[derive(Debug)]
pub struct TapListener<L> {
    inner: L,
    records: Records,
}

/// A recording stream.
#[derive(Debug)]
pub struct TapStream<S> {
    inner: S,
    record: Option<ConnRecord>,
    records: Records,
}

fn record(
    end: End,
    label: Rc<str>,
    local: Result<SocketAddr>,
    peer: Result<SocketAddr>,
) -> ConnRecord {
    ConnRecord {
        end,
        label,
        local_port: local.map_or(0, |a| a.port()),
        peer_port: peer.map_or(0, |a| a.port()),
        opened: threadlib::time::elapsed(),
        sent: Vec::new(),
        received: Vec::new(),
        reset: false,
        eof: false,
        error: None,
        read_interrupted: false,
        write_interrupted: false,
        pending: Pending::default(),
        ops: Vec::new(),
    }
}

impl<N: Network> Network for TapNet<N> {
    type Listener = TapListener<N::Listener>;
    type Stream = TapStream<N::Stream>;

    async fn listen(&self, addr: SocketAddr, opts: ListenOptions) -> Result<Self::Listener> {
        Ok(TapListener {
            inner: self.net.listen(addr, opts).await?,
            records: self.records.clone(),
        })
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Self::Stream> {
        let inner = self.net.connect(addr).await?;
        let r = record(
            End::Client,
            self.label.clone(),
            inner.local_addr(),
            inner.peer_addr(),
        );
        Ok(TapStream {
            inner,
            record: Some(r),
            records: self.records.clone(),
        })
    }

    async fn drain(&self) -> Result<()> {
        self.net.drain().await
    }
}

impl<L: Listener> Listener for TapListener<L> {
    type Stream = TapStream<L::Stream>;

    async fn accept(&self) -> Result<(Self::Stream, SocketAddr)> {
        let (inner, peer) = self.inner.accept().await?;
        let r = record(End::Server, "server".into(), inner.local_addr(), Ok(peer));
        Ok((
            TapStream {
                inner,
                record: Some(r),
                records: self.records.clone(),
            },
            peer,
        ))
    }

    fn local_addr(&self) -> Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl<S> TapStream<S> {
    fn rec(&mut self) -> &mut ConnRecord {
        self.record.as_mut().expect("present until drop")
    }

    /// Marks an operation as started; one left pending was abandoned.
    fn begin(&mut self, read: bool) {
        let r = self.rec();
        // An abandoned operation retried at once (a read polled in slices) did not
        // end anything; one followed by the other kind did.
        if read {
            r.pending.read = false;
        } else {
            r.pending.write = false;
        }
        r.close_pending();
        if read {
            r.pending.read = true;
        } else {
            r.pending.write = true;
        }
    }

    /// Records what a write of `buf` took, and its outcome.
    fn note_written(&mut self, buf: &[u8], res: &Result<usize>) {
        if let Ok(n) = *res {
            let rec = self.rec();
            rec.sent.extend_from_slice(&buf[..n]);
            let len = rec.sent.len();
            rec.ops.push((false, len));
        }
        self.note(res);
    }

    fn note<T>(&mut self, res: &Result<T>) {
        let r = self.rec();
        r.pending = Pending::default();
        if let Err(e) = res {
            if let threadlib::Error::Io(io) = e {
                r.reset |= io.kind() == std::io::ErrorKind::ConnectionReset;
            }
            if r.error.is_none() {
                r.error = Some(e.to_string());
            }
        }
    }
}

impl<S: Stream> Stream for TapStream<S> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.begin(true);
        let r = self.inner.read(buf).await;
        if let Ok(n) = r {
            let rec = self.rec();
            rec.received.extend_from_slice(&buf[..n]);
            rec.eof |= n == 0 && !buf.is_empty();
            let len = rec.received.len();
            rec.ops.push((true, len));
        }
        self.note(&r);
        r
    }

    async fn write(&mut self, buf: &[u8]) -> Result<usize> {
        self.begin(false);
        let r = self.inner.write(buf).await;
        self.note_written(buf, &r);
        r
    }

    fn try_write(&mut self, buf: &[u8]) -> Option<Result<usize>> {
        let r = self.inner.try_write(buf);
        // It never suspends: one that did nothing is no operation to record.
        if let Some(res) = &r {
            self.begin(false);
            self.note_written(buf, res);
        }
        r
    }

    async fn write_more(&mut self, buf: &[u8]) -> Result<usize> {
        self.begin(false);
        let r = self.inner.write_more(buf).await;
        self.note_written(buf, &r);
        r
    }

    async fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        self.begin(false);
        let r = self.inner.write_vectored(bufs).await;
        if let Ok(mut n) = r {
            let rec = self.rec();
            for b in bufs {
                let k = n.min(b.len());
                rec.sent.extend_from_slice(&b[..k]);
                n -= k;
            }
            let len = rec.sent.len();
            rec.ops.push((false, len));
        }
        self.note(&r);
        r
    }

    async fn shutdown(&mut self, how: Shutdown) -> Result<()> {
        self.inner.shutdown(how).await
    }

    fn local_addr(&self) -> Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn peer_addr(&self) -> Result<SocketAddr> {
        self.inner.peer_addr()
    }

    fn set_nodelay(&self, on: bool) -> Result<()> {
        self.inner.set_nodelay(on)
    }
}

impl<S> Drop for TapStream<S> {
    fn drop(&mut self) {
        if let Some(mut r) = self.record.take() {
            r.close_pending();
            self.records.borrow_mut().push(r);
        }
    }
}
