//! A user-written event loop: threads wait for Unix signals through a `signalfd`.
//!
//! threadlib's scheduler is built from event loops, and users can add their own. This
//! one serves a new system call, "wait for signal S":
//!
//! - [`EventLoop::submit`] records which thread waits for which signal;
//! - [`EventLoop::wake_fd`] gives the scheduler the signalfd, so it sleeps in epoll on
//!   it together with everything else and calls `poll` only when a signal is pending;
//! - [`EventLoop::poll`] reads the pending signals and completes the waiting threads;
//! - [`EventLoop::cancel`] withdraws a waiter whose thread was cancelled (here by a
//!   timeout), so cancellation stays exact for user-defined calls too.
//!
//! Threads call it with `threadlib::syscall::custom::<R>(loop_id, Box::new(request))`.
//! (threadlib ships signal handling of its own in `threadlib::signal`, built on the
//! epoll loop; this example shows how such a facility is written as a separate loop.)
//! The example sends itself SIGUSR1, and shows a wait for SIGINT timing out (press
//! Ctrl-C within the second to see it answered instead).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use threadlib::{Error, EventLoop, LoopCx, LoopId, Request, Runtime, ThreadId};

/// The request a thread hands the loop: wait for this signal number.
struct WaitSignal(libc::c_int);

/// The loop's reply: the signal that arrived, and who sent it.
#[derive(Debug)]
struct Delivered {
    signo: libc::c_int,
    sender_pid: u32,
}

/// A signal set for the signals this example handles.
fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: `sigset_t` is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

/// Blocks `signals` for the calling OS thread (and every thread it starts later), so
/// they stay pending for the signalfd instead of running a handler or killing us.
fn block_signals(signals: &[libc::c_int]) -> io::Result<()> {
    let set = signal_set(signals);
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// The event loop: one signalfd and the threads waiting on it.
struct SignalLoop {
    fd: OwnedFd,
    waiters: Vec<(ThreadId, libc::c_int)>,
}

impl SignalLoop {
    fn new(signals: &[libc::c_int]) -> io::Result<SignalLoop> {
        let set = signal_set(signals);
        // SAFETY: `set` is initialised; -1 asks for a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalLoop {
            fd,
            waiters: Vec::new(),
        })
    }

    /// Reads one pending signal, if any (the fd is non-blocking).
    fn read_one(&self) -> io::Result<Option<libc::signalfd_siginfo>> {
        // SAFETY: `signalfd_siginfo` is plain data; the kernel fills it in whole.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is valid for writes of `size` bytes.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                _ => Err(e),
            };
        }
        Ok((n as usize == size).then_some(info))
    }
}

impl EventLoop for SignalLoop {
    fn name(&self) -> &'static str {
        "signals"
    }

    fn submit(&mut self, tid: ThreadId, request: Request, cx: &mut LoopCx<'_>) {
        match request.downcast::<WaitSignal>() {
            Some(req) => self.waiters.push((tid, req.0)),
            None => cx.fail::<Delivered>(tid, Error::other("signal loop: unknown request")),
        }
    }

    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
        self.waiters.retain(|&(t, _)| t != tid);
        cx.cancelled(tid);
    }

    fn poll(&mut self, cx: &mut LoopCx<'_>) {
        loop {
            let info = match self.read_one() {
                Ok(Some(info)) => info,
                Ok(None) => return,
                Err(e) => {
                    // The descriptor broke: fail every waiter rather than hang them.
                    for (tid, _) in self.waiters.drain(..) {
                        cx.fail::<Delivered>(tid, Error::other(format!("signalfd: {e}")));
                    }
                    return;
                }
            };
            let signo = info.ssi_signo as libc::c_int;
            // Every thread waiting for this signal gets it; others keep waiting.
            self.waiters.retain(|&(tid, wanted)| {
                if wanted != signo {
                    return true;
                }
                cx.reply(
                    tid,
                    Delivered {
                        signo,
                        sender_pid: info.ssi_pid,
                    },
                );
                false
            });
        }
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }
}

/// The thread-side API of the new system call.
async fn wait_signal(signals: LoopId, signo: libc::c_int) -> threadlib::Result<Delivered> {
    threadlib::syscall::custom::<Delivered>(signals, Box::new(WaitSignal(signo))).await
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const HANDLED: [libc::c_int; 2] = [libc::SIGUSR1, libc::SIGINT];
    // Block first, on the main thread: the runtime's OS threads inherit the mask.
    block_signals(&HANDLED)?;
    // Fail early with a clear error rather than in the loop factory below.
    drop(SignalLoop::new(&HANDLED)?);

    let (builder, signals) = Runtime::builder().event_loop(|_core| {
        Box::new(SignalLoop::new(&HANDLED).expect("signalfd worked a moment ago"))
    });
    let rt = builder.build()?;

    rt.block_on(async move {
        threadlib::scope(|s| async move {
            s.spawn(async move {
                println!("waiter: waiting for SIGUSR1");
                let d = wait_signal(signals, libc::SIGUSR1).await?;
                let me = std::process::id();
                println!(
                    "waiter: got signal {} (SIGUSR1) from pid {} ({})",
                    d.signo,
                    d.sender_pid,
                    if d.sender_pid == me {
                        "ourselves"
                    } else {
                        "another process"
                    }
                );
                Ok(())
            });
            s.spawn(async move {
                println!("impatient: waiting up to 1 s for SIGINT (Ctrl-C)");
                match threadlib::with_timeout(
                    Duration::from_secs(1),
                    wait_signal(signals, libc::SIGINT),
                )
                .await
                {
                    Ok(d) => println!("impatient: got signal {}", d.signo),
                    Err(Error::TimedOut) => {
                        println!("impatient: timed out; the loop withdrew the wait")
                    }
                    Err(e) => return Err(e),
                }
                Ok(())
            });
            s.spawn(async {
                threadlib::sleep(Duration::from_millis(50)).await?;
                println!("sender: kill(getpid(), SIGUSR1)");
                // SAFETY: sending a signal to our own process; it is blocked, so it
                // stays pending until the signalfd reads it.
                if unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) } != 0 {
                    return Err(io::Error::last_os_error().into());
                }
                Ok(())
            });
            Ok(())
        })
        .await
    })??;
    println!("done");
    Ok(())
}
