//! A one-shot, cloneable shutdown signal.

use tokio::sync::watch;

/// The sending side: call [`Shutdown::trigger`] once to stop everything.
#[derive(Clone)]
pub struct Shutdown(watch::Sender<bool>);

/// The receiving side, handed to every server and background task.
#[derive(Clone)]
pub struct ShutdownSignal(watch::Receiver<bool>);

impl Shutdown {
    pub fn new() -> (Shutdown, ShutdownSignal) {
        let (tx, rx) = watch::channel(false);
        (Shutdown(tx), ShutdownSignal(rx))
    }

    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl ShutdownSignal {
    /// Resolves once shutdown has been triggered (or the sender is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }
}
