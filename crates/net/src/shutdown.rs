//! A one-shot, cloneable shutdown signal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// The sending side: call [`Shutdown::trigger`] once to stop everything.
#[derive(Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
    triggered: Arc<AtomicBool>,
}

/// The receiving side, handed to every server and background task.
#[derive(Clone)]
pub struct ShutdownSignal {
    rx: watch::Receiver<bool>,
    /// Read on every request: a plain load, where `rx.borrow()` takes a
    /// lock every connection of every thread shares.
    triggered: Arc<AtomicBool>,
}

impl Shutdown {
    pub fn new() -> (Shutdown, ShutdownSignal) {
        let (tx, rx) = watch::channel(false);
        let triggered = Arc::new(AtomicBool::new(false));
        (
            Shutdown {
                tx,
                triggered: triggered.clone(),
            },
            ShutdownSignal { rx, triggered },
        )
    }

    pub fn trigger(&self) {
        self.triggered.store(true, Ordering::Release);
        self.tx.send_replace(true);
    }
}

impl ShutdownSignal {
    /// Resolves once shutdown has been triggered (or the sender is gone).
    pub async fn wait(&mut self) {
        if self.is_triggered() {
            return;
        }
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    pub fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::Acquire)
    }
}
