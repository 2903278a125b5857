//! Waiting for the operating system to ask the process to stop.

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM (`docker stop`, Kubernetes).
///
/// A process inherits its signal mask, and some supervisors and CI runners start
/// their children with SIGTERM blocked: such a signal would stay pending forever
/// and the worker would never shut down. So the signals handled here are also
/// unblocked, on the thread that first polls this future; the kernel hands a
/// process-wide signal to any thread that does not block it.
///
/// # Panics
/// If the signal handlers cannot be installed, which only happens when the
/// process is out of resources at start-up.
pub async fn signal() {
    #[cfg(unix)]
    unblock_stop_signals();

    let ctrl_c = async {
        tokio::signal::ctrl_c().await.expect("install the SIGINT handler");
    };

    #[cfg(unix)]
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install the SIGTERM handler")
            .recv()
            .await;
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}

#[cfg(unix)]
fn unblock_stop_signals() {
    use nix::sys::signal::{SigSet, Signal};

    let mut stop_signals = SigSet::empty();
    stop_signals.add(Signal::SIGINT);
    stop_signals.add(Signal::SIGTERM);
    if let Err(error) = stop_signals.thread_unblock() {
        tracing::warn!(%error, "could not unblock SIGINT and SIGTERM; they may never arrive");
    }
}
