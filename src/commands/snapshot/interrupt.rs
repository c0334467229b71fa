//! SIGINT, SIGTERM and SIGHUP caught while the restore test's throwaway server runs, so that
//! custody, not the default action, decides what happens: the server killed at once, its
//! directory removed, a clear error. Listening starts only once the shares are gathered (a
//! Ctrl-C at a share prompt still ends custody at once, nothing started yet).
//!
//! Once listened for, these signals stay caught by tokio for the rest of the process (it does
//! not give back the default action); the command ends soon after the restore test.

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::error::{Context, Result};

pub(super) struct Interrupt {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Interrupt {
    pub(super) fn listen() -> Result<Interrupt> {
        let on = |kind: SignalKind, name: &str| {
            signal(kind).context(format!("listening for {name} during the restore test"))
        };
        Ok(Interrupt {
            int: on(SignalKind::interrupt(), "SIGINT")?,
            term: on(SignalKind::terminate(), "SIGTERM")?,
            hup: on(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// The signal received since [`Interrupt::listen`], if one was, without waiting.
    pub(super) async fn pending(&mut self) -> Option<&'static str> {
        tokio::select! {
            biased;
            signal = self.received() => Some(signal),
            _ = std::future::ready(()) => None,
        }
    }

    /// The name of the first signal received since [`Interrupt::listen`] (one received while
    /// the command was busy in blocking work is seen at the next call).
    pub(super) async fn received(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}
