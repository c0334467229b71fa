//! Waiting for a server (or anything slow) to reach a state: the one polling loop, a leaf every
//! layer may use.

use std::future::Future;
use std::time::{Duration, Instant};

/// Asks `check` every `every` until it answers `Ok`, or `bound` has passed: then the last
/// answer's reason (`Err`). `check` runs at least once.
pub async fn poll<T, F, Fut>(bound: Duration, every: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + bound;
    loop {
        let why = match check().await {
            Ok(done) => return Ok(done),
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(why);
        }
        tokio::time::sleep(every).await;
    }
}

/// One look at the state a caller waits for.
pub enum Check<T> {
    Ready(T),
    /// Not there yet, and why (the reason the bound reports).
    NotYet(String),
}

/// Why [`wait_for`] stopped without an answer.
#[derive(Debug)]
pub enum Stopped<E> {
    /// The bound passed; the last reason it was not ready.
    TimedOut(String),
    /// A look failed in a way that waiting cannot mend.
    Failed(E),
}

/// Like [`poll`], for a look that can also fail for good: that failure ends the wait at once.
pub async fn wait_for<T, E, F, Fut>(
    bound: Duration,
    every: Duration,
    mut look: F,
) -> Result<T, Stopped<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Check<T>, E>>,
{
    let outcome = poll(bound, every, || {
        let next = look();
        async move {
            match next.await {
                Ok(Check::Ready(done)) => Ok(Ok(done)),
                Ok(Check::NotYet(why)) => Err(why),
                Err(e) => Ok(Err(e)),
            }
        }
    })
    .await;
    match outcome {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err(Stopped::Failed(e)),
        Err(why) => Err(Stopped::TimedOut(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_when_ready_and_gives_the_last_reason_at_the_bound() {
        let mut calls = 0;
        let got = poll(Duration::from_secs(5), Duration::from_millis(1), || {
            calls += 1;
            let n = calls;
            async move {
                if n == 3 {
                    Ok(n)
                } else {
                    Err(format!("try {n}"))
                }
            }
        })
        .await;
        assert_eq!(got, Ok(3));
        let never: Result<(), String> = poll(Duration::ZERO, Duration::from_millis(1), || async {
            Err("not yet".into())
        })
        .await;
        assert_eq!(never, Err("not yet".to_owned()));
    }

    #[tokio::test]
    async fn a_failed_look_ends_the_wait_at_once() {
        let mut calls = 0;
        let got: Result<(), Stopped<&str>> =
            wait_for(Duration::from_secs(5), Duration::from_millis(1), || {
                calls += 1;
                let n = calls;
                async move {
                    if n == 2 {
                        Err("gone")
                    } else {
                        Ok(Check::NotYet(format!("try {n}")))
                    }
                }
            })
            .await;
        assert!(matches!(got, Err(Stopped::Failed("gone"))));
        assert_eq!(calls, 2);
        let late: Result<(), Stopped<()>> =
            wait_for(Duration::ZERO, Duration::from_millis(1), || async {
                Ok(Check::NotYet("still".into()))
            })
            .await;
        assert!(matches!(late, Err(Stopped::TimedOut(why)) if why == "still"));
    }
}
