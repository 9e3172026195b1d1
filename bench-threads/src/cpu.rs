//! Scheduler-bound workloads: spawn/join, yield ping-pong, channel ping-pong. Each
//! returns the wall time of the workload alone, measured inside the runtime.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

use crate::runtimes::{ours, tokio_local, tokio_mt, Rt};

/// Spawns `n` threads (each returns its index), then joins them all.
pub fn spawn_join(rt: Rt, n: usize) -> Result<Duration> {
    let (elapsed, sum) = match rt {
        Rt::Ours => ours(async move {
            let start = Instant::now();
            let handles: Vec<_> = (0..n).map(|i| threadlib::spawn(async move { i })).collect();
            let mut sum = 0usize;
            for h in handles {
                sum = sum.wrapping_add(h.await?);
            }
            Ok((start.elapsed(), sum))
        })?,
        Rt::TokioLocal => tokio_local(async move {
            let start = Instant::now();
            let handles: Vec<_> = (0..n)
                .map(|i| tokio::task::spawn_local(async move { i }))
                .collect();
            let mut sum = 0usize;
            for h in handles {
                sum = sum.wrapping_add(h.await?);
            }
            Ok((start.elapsed(), sum))
        })?,
        Rt::TokioMt => tokio_mt(async move {
            let start = Instant::now();
            let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
            let mut sum = 0usize;
            for h in handles {
                sum = sum.wrapping_add(h.await?);
            }
            Ok((start.elapsed(), sum))
        })?,
    };
    ensure!(sum == n * n.saturating_sub(1) / 2, "spawn_join: wrong sum");
    Ok(elapsed)
}

/// Two threads yield to each other `total` times in all (`total / 2` each).
pub fn yield_pingpong(rt: Rt, total: usize) -> Result<Duration> {
    let each = total / 2;
    match rt {
        Rt::Ours => ours(async move {
            let start = Instant::now();
            let yielder = || async move {
                for _ in 0..each {
                    threadlib::yield_now().await?;
                }
                Ok(())
            };
            threadlib::both(yielder(), yielder()).await?;
            Ok(start.elapsed())
        }),
        Rt::TokioLocal => tokio_local(async move {
            let start = Instant::now();
            let yielder = || async move {
                for _ in 0..each {
                    tokio::task::yield_now().await;
                }
            };
            let (a, b) = (
                tokio::task::spawn_local(yielder()),
                tokio::task::spawn_local(yielder()),
            );
            a.await?;
            b.await?;
            Ok(start.elapsed())
        }),
        Rt::TokioMt => tokio_mt(async move {
            let start = Instant::now();
            let yielder = || async move {
                for _ in 0..each {
                    tokio::task::yield_now().await;
                }
            };
            let (a, b) = (tokio::spawn(yielder()), tokio::spawn(yielder()));
            a.await?;
            b.await?;
            Ok(start.elapsed())
        }),
    }
}

/// Two threads exchange `total` messages in all over two capacity-1 channels: `total /
/// 2` pings, each answered by a pong. threadlib uses its core-local channel
/// (`threadlib::sync::channel`), tokio its `mpsc` channel.
pub fn channel_pingpong(rt: Rt, total: usize) -> Result<Duration> {
    let rounds = (total / 2) as u64;
    let (elapsed, last) = match rt {
        Rt::Ours => ours(async move {
            use threadlib::sync::channel;
            let start = Instant::now();
            let (ping_tx, ping_rx) = channel::<u64>(1);
            let (pong_tx, pong_rx) = channel::<u64>(1);
            let (last, ()) = threadlib::both(
                async move {
                    let mut last = 0;
                    for i in 0..rounds {
                        ping_tx.send(i).await?;
                        last = pong_rx.recv().await?;
                    }
                    Ok(last)
                },
                async move {
                    for _ in 0..rounds {
                        let v = ping_rx.recv().await?;
                        pong_tx.send(v).await?;
                    }
                    Ok(())
                },
            )
            .await?;
            Ok((start.elapsed(), last))
        })?,
        Rt::TokioLocal => tokio_local(async move {
            let start = Instant::now();
            let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
            let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
            let echo = tokio::task::spawn_local(async move {
                while let Some(v) = ping_rx.recv().await {
                    pong_tx.send(v).await?;
                }
                anyhow::Ok(())
            });
            let driver = tokio::task::spawn_local(async move {
                let mut last = 0;
                for i in 0..rounds {
                    ping_tx.send(i).await?;
                    last = pong_rx.recv().await.unwrap_or(u64::MAX);
                }
                anyhow::Ok(last)
            });
            let last = driver.await??;
            echo.await??;
            Ok((start.elapsed(), last))
        })?,
        Rt::TokioMt => tokio_mt(async move {
            let start = Instant::now();
            let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
            let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
            let echo = tokio::spawn(async move {
                while let Some(v) = ping_rx.recv().await {
                    pong_tx.send(v).await?;
                }
                anyhow::Ok(())
            });
            let driver = tokio::spawn(async move {
                let mut last = 0;
                for i in 0..rounds {
                    ping_tx.send(i).await?;
                    last = pong_rx.recv().await.unwrap_or(u64::MAX);
                }
                anyhow::Ok(last)
            });
            let last = driver.await??;
            echo.await??;
            Ok((start.elapsed(), last))
        })?,
    };
    ensure!(
        last == rounds.saturating_sub(1),
        "channel_pingpong: lost a message"
    );
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_complete_on_every_runtime() {
        for rt in Rt::ALL {
            spawn_join(rt, 1000).unwrap();
            yield_pingpong(rt, 1000).unwrap();
            channel_pingpong(rt, 1000).unwrap();
        }
    }
}
