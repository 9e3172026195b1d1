//! The server's life on one core over any threadlib network: accept connections while
//! fewer than a limit are open, serve each in its own thread, and shut down gracefully.
//! The `webserver` binary runs one per core; the whole-system simulation runs it on
//! the user-space stack with simulated files.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use threadlib::net::{Listener, Stream as _};
use threadlib::sync::Semaphore;
use threadlib::{scope, Error, Scope};

use crate::connection::{serve_connection, ConnectionEnd, ServerContext};
use crate::files::FileSource;
use crate::net_transport::NetTransport;

/// Pause after an accept failure such as `EMFILE`, before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Accept failures are reported at most this often.
const ACCEPT_REPORT_EVERY: Duration = Duration::from_secs(1);

/// How one core serves its listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Most connections open at once; beyond it the accept loop waits (clients queue
    /// in the listener's backlog) rather than failing.
    pub max_connections: usize,
    /// On shutdown, time allowed for in-flight requests before they are cancelled.
    pub shutdown_timeout: Duration,
}

/// Serves every connection `listener` accepts, one thread each, until `stop`
/// completes; then shuts down: stop accepting (the listener is dropped), answer
/// in-flight requests with `Connection: close`, close idle connections, and cancel
/// whatever still runs after the shutdown timeout. Returns how many connections were
/// cancelled that way.
pub async fn serve_listener<L, F>(
    listener: L,
    files: Rc<F>,
    ctx: Rc<ServerContext>,
    limits: ServeLimits,
    stop: impl Future<Output = ()> + 'static,
) -> threadlib::Result<u64>
where
    L: Listener + 'static,
    L::Stream: 'static,
    F: FileSource + 'static,
{
    let permits = Rc::new(Semaphore::new(limits.max_connections));
    let cancelled = Rc::new(Cell::new(0u64));
    let served = scope(|conns| {
        let (ctx, permits, cancelled) = (ctx.clone(), permits.clone(), cancelled.clone());
        async move {
            let accept = accept_loop(listener, conns.clone(), ctx.clone(), files, permits.clone());
            let stopped = async move {
                stop.await;
                Ok(())
            };
            // The accept loop only ends by failing; the stop signal cancels it, which
            // drops the listener.
            threadlib::race(accept, stopped).await?;
            ctx.begin_shutdown();
            let all = permits.acquire(limits.max_connections);
            match threadlib::with_timeout(limits.shutdown_timeout, all).await {
                Ok(all) => drop(all),
                Err(Error::TimedOut) => {
                    cancelled.set(ctx.counters.active_connections());
                    conns.cancel();
                }
                Err(e) => return Err(e),
            }
            Ok(())
        }
    })
    .await;
    match served {
        Ok(()) => Ok(cancelled.get()),
        Err(Error::Cancelled) if cancelled.get() > 0 => Ok(cancelled.get()),
        Err(e) => Err(e),
    }
}

/// Gives a connection's permit back when the connection ends, however it ends.
struct Permit(Rc<Semaphore>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.release(1);
    }
}

/// Accepts connections while fewer than the limit are open (waiting for a permit
/// otherwise, so that the listener's backlog queues new clients instead of the server
/// failing), serving each in its own thread of `conns`.
async fn accept_loop<L, F>(
    listener: L,
    conns: Scope,
    ctx: Rc<ServerContext>,
    files: Rc<F>,
    permits: Rc<Semaphore>,
) -> threadlib::Result<()>
where
    L: Listener,
    L::Stream: 'static,
    F: FileSource + 'static,
{
    let mut last_report: Option<Instant> = None;
    loop {
        permits.acquire(1).await?.forget();
        let permit = Permit(permits.clone());
        let (stream, peer) = loop {
            match listener.accept().await {
                Ok(accepted) => break accepted,
                Err(e) if e.is_cancelled() => return Err(e),
                // The listener itself is gone (its network was torn down): no retry
                // can succeed.
                Err(threadlib::Error::Io(io)) if io.kind() == std::io::ErrorKind::InvalidInput => {
                    return Err(threadlib::Error::Io(io))
                }
                Err(e) => {
                    // EMFILE, ENOBUFS, ...: the server keeps running; clients wait in
                    // the listener's queue meanwhile.
                    let now = threadlib::time::now();
                    if last_report.is_none_or(|t| now - t >= ACCEPT_REPORT_EVERY) {
                        eprintln!("webserver: accept: {e}");
                        last_report = Some(now);
                    }
                    threadlib::sleep(ACCEPT_BACKOFF).await?;
                }
            }
        };
        // Responses are written whole; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        let (ctx, files) = (ctx.clone(), files.clone());
        conns.try_spawn(async move {
            let _permit = permit;
            let mut io = NetTransport::new(stream, ctx.clone());
            let end = serve_connection(&mut io, &*files, &ctx, Some(peer)).await;
            if matches!(end, ConnectionEnd::Closed | ConnectionEnd::HeaderTimeout) {
                io.linger().await;
            }
            Ok(())
        })?;
    }
}
