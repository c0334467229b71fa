//! Waiting for a server to reach a state: the one polling loop.

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
}
