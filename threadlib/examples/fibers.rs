//! Two threads interleaving deterministically (Eio's "fibers" example).
//!
//! Both threads run on one core. Each prints a line, then yields: `yield_now` hands
//! the scheduler a `Yield` system call, which puts the caller at the back of the run
//! queue, so the output always alternates:
//!
//! ```text
//! x = 1
//! y = 1
//! x = 2
//! y = 2
//! x = 3
//! y = 3
//! ```

fn main() -> threadlib::Result<()> {
    threadlib::run(async {
        threadlib::both(
            async {
                for x in 1..=3 {
                    println!("x = {x}");
                    threadlib::yield_now().await?;
                }
                Ok(())
            },
            async {
                for y in 1..=3 {
                    println!("y = {y}");
                    threadlib::yield_now().await?;
                }
                Ok(())
            },
        )
        .await
    })??;
    Ok(())
}
