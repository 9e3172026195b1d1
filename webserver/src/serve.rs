//! The server's life on one core over any threadlib network: accept connections on
//! one or several listeners while fewer than a limit are open, serve each in its own
//! thread, and shut down gracefully. The `webserver` binary runs one per core; the
//! whole-system simulation runs it on the user-space stack with simulated files.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use threadlib::net::{Listener, Stream as _};
use threadlib::sync::Semaphore;
use threadlib::{scope, Error, Scope};

use crate::connection::{serve_connection, ConnectionEnd, ServerContext};
use crate::files::{is_out_of_descriptors, FileSource};
use crate::net_transport::NetTransport;
use crate::throttle::{self, Throttle};

/// Pause after an accept failure such as `EMFILE`, before trying again: the pending
/// connection stays in the queue, so retrying at once would spin.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Other accept failures are reported at most this often (per accept loop).
const ACCEPT_REPORT_EVERY: Duration = Duration::from_secs(1);

/// How one core serves its listeners.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Most connections open at once, over all listeners; beyond it the accept loops
    /// wait (clients queue in the listeners' backlogs) rather than failing. With
    /// several listeners, each may hold one accepted connection waiting for a place.
    pub max_connections: usize,
    /// On shutdown, time allowed for in-flight requests before they are cancelled.
    pub shutdown_timeout: Duration,
}

/// [`serve_listeners`] of one listener.
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
    serve_listeners(vec![listener], files, ctx, limits, stop).await
}

/// Serves every connection the `listeners` accept, one thread each, until `stop`
/// completes; then shuts down: stop accepting (the listeners are dropped), answer
/// in-flight requests with `Connection: close`, close idle connections, and cancel
/// whatever still runs after the shutdown timeout. Returns how many connections were
/// cancelled that way. The connection limit covers all listeners together.
pub async fn serve_listeners<L, F>(
    listeners: Vec<L>,
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
    if listeners.is_empty() {
        return Err(Error::other("no listener to serve"));
    }
    let permits = Rc::new(Semaphore::new(limits.max_connections));
    let cancelled = Rc::new(Cell::new(0u64));
    let served = scope(|conns| {
        let (ctx, permits, cancelled) = (ctx.clone(), permits.clone(), cancelled.clone());
        async move {
            let accept = accept_all(
                listeners,
                conns.clone(),
                ctx.clone(),
                files,
                permits.clone(),
            );
            let stopped = async move {
                stop.await;
                Ok(())
            };
            // The accept loops only end by failing; the stop signal cancels them,
            // which drops the listeners.
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

/// Runs one [`accept_loop`] per listener, until one fails.
async fn accept_all<L, F>(
    listeners: Vec<L>,
    conns: Scope,
    ctx: Rc<ServerContext>,
    files: Rc<F>,
    permits: Rc<Semaphore>,
) -> threadlib::Result<()>
where
    L: Listener + 'static,
    L::Stream: 'static,
    F: FileSource + 'static,
{
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            accept_loop(
                listener,
                conns.clone(),
                ctx.clone(),
                files.clone(),
                permits.clone(),
            )
        })
        .collect();
    match <[_; 1]>::try_from(loops) {
        // The common case needs no thread of its own.
        Ok([one]) => one.await,
        Err(loops) => threadlib::first(loops).await,
    }
}

/// Accepts connections while fewer than the limit are open (waiting for room
/// otherwise, so that the listener's backlog queues new clients instead of the server
/// failing), serving each in its own thread of `conns`.
///
/// The loop waits for room before accepting but takes its place only once it has a
/// connection, so that with several listeners sharing the places every listener
/// accepts whenever there is room; a connection accepted when another listener took
/// the last place waits for one.
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
    let other_failures = Throttle::new(ACCEPT_REPORT_EVERY);
    loop {
        drop(permits.acquire(1).await?);
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
                    match &e {
                        threadlib::Error::Io(io) if is_out_of_descriptors(io) => {
                            throttle::report_out_of_descriptors(now, "accept", io);
                        }
                        _ => {
                            if let Some(suppressed) = other_failures.admit(now) {
                                match suppressed {
                                    0 => eprintln!("webserver: accept: {e}"),
                                    n => eprintln!(
                                        "webserver: accept: {e}; {n} more since the last report"
                                    ),
                                }
                            }
                        }
                    }
                    threadlib::sleep(ACCEPT_BACKOFF).await?;
                }
            }
        };
        permits.acquire(1).await?.forget();
        let permit = Permit(permits.clone());
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
