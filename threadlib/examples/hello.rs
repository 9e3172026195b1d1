//! Hello world from a thread.
//!
//! `threadlib::run` starts a single-core runtime and runs the given future as its
//! first thread; `spawn` starts another thread on the same core and its handle is
//! awaited for the result.
//!
//! ```text
//! cargo run -p threadlib --example hello
//! ```

fn main() -> threadlib::Result<()> {
    let greeting = threadlib::run(async {
        let child = threadlib::spawn(async {
            format!("Hello, world! (from thread {:?})", threadlib::current())
        });
        child.await
    })??;
    println!("{greeting}");
    Ok(())
}
