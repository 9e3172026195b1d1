//! Structured concurrency: one thread of a scope fails, its sibling is cancelled.
//!
//! The scope forks a "sleeper" that would sleep for an hour and a "worker" that fails
//! after a moment. The failure cancels the scope: the sleeper's pending `Sleep` system
//! call is withdrawn from the timer loop and returns `Cancelled`, its cleanup runs, the
//! scope's release hook runs once every thread has exited, and `scope` returns the
//! worker's error.

use std::time::Duration;

use threadlib::Error;

/// Stands for a resource owned by the scope (a file, a connection...).
struct Resource(&'static str);

impl Drop for Resource {
    fn drop(&mut self) {
        println!("{}: cleaned up", self.0);
    }
}

fn main() -> threadlib::Result<()> {
    let outcome = threadlib::run(async {
        threadlib::scope(|s| async move {
            s.on_release(|| println!("release hook: the scope is finished, closing its resources"));

            s.spawn(async {
                let _guard = Resource("sleeper");
                println!("sleeper: going to sleep for an hour");
                match threadlib::sleep(Duration::from_secs(3600)).await {
                    Ok(()) => println!("sleeper: woke up (unexpected)"),
                    Err(e) => println!("sleeper: sleep returned `{e}`"),
                }
                // Any later system call fails too: a cancelled thread should unwind.
                let again = threadlib::yield_now().await;
                println!("sleeper: a further call returns {again:?}, unwinding");
                again
            });

            s.spawn(async {
                threadlib::sleep(Duration::from_millis(10)).await?;
                println!("worker: failing");
                Err::<(), _>(Error::other("worker gave up"))
            });

            println!("scope body: forked both threads");
            Ok("the body finished")
        })
        .await
    })?;
    match outcome {
        Ok(v) => println!("scope returned Ok({v:?})"),
        Err(e) => println!("scope returned the first error: {e}"),
    }
    Ok(())
}
