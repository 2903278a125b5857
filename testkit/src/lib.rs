//! Test harness: a real NATS server, started in a container by testcontainers, and
//! workers serving on tasks of their own until the test stops them.
//!
//! The image is the official `nats` image unless `SHIPPY_NATS_IMAGE` names another
//! (`name:tag`), such as the stand-in `scripts/offline-images.sh` builds on machines
//! with no image registry. Either way it runs `nats-server` as its entrypoint.

use shared::{
    ServiceError,
    client::RequestError,
    service::{Handler, Service},
};
use testcontainers::{
    ContainerAsync, GenericImage, ImageExt as _,
    core::{IntoContainerPort as _, WaitFor},
    runners::AsyncRunner as _,
};

/// Environment variable naming the NATS image to test against.
pub const IMAGE_ENV: &str = "SHIPPY_NATS_IMAGE";
/// The image used when [`IMAGE_ENV`] is unset.
pub const DEFAULT_IMAGE: &str = "nats:2.12";
/// The largest message the test server accepts; above the workers' own limit, so
/// that tests reach the workers' oversized-request handling.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

const CLIENT_PORT: u16 = 4222;
const CONFIG_PATH: &str = "/etc/nats/test.conf";

/// A NATS server that lives as long as this value.
pub struct Nats {
    url: String,
    _container: ContainerAsync<GenericImage>,
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Nats {
    /// Starts a NATS server and waits until it accepts clients.
    ///
    /// # Panics
    /// If the container cannot be started: a test cannot run without it.
    pub async fn start() -> Self {
        let image = std::env::var(IMAGE_ENV).unwrap_or_else(|_| DEFAULT_IMAGE.to_owned());
        let (name, tag) = image.rsplit_once(':').unwrap_or((&image, "latest"));
        let config = format!("port: {CLIENT_PORT}\nmax_payload: {MAX_PAYLOAD}\n");
        let container = GenericImage::new(name, tag)
            .with_exposed_port(CLIENT_PORT.tcp())
            .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
            .with_copy_to(CONFIG_PATH, config.into_bytes())
            .with_cmd(["--config", CONFIG_PATH])
            .start()
            .await
            .unwrap_or_else(|error| panic!("start NATS from image {image}: {error}"));
        let host = container.get_host().await.expect("container host");
        let port = container.get_host_port_ipv4(CLIENT_PORT).await.expect("mapped NATS port");
        Self { url: format!("nats://{host}:{port}"), _container: container }
    }

    /// Where clients connect, such as `nats://localhost:32768`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Serves `service` on a task of its own until [`Running::stop`] is called.
pub fn serve<H: Handler>(service: Service<H>) -> Running<Result<(), shared::service::Error>> {
    Running::spawn(|shutdown| service.serve(shutdown))
}

/// The error reply in `result`.
///
/// # Panics
/// If `result` is anything else: the test expected an error reply.
pub fn service_error<T: std::fmt::Debug>(result: Result<T, RequestError>) -> ServiceError {
    match result {
        Err(RequestError::Service(error)) => error,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// A worker serving on a task of its own until [`Running::stop`] is called.
#[derive(Debug)]
pub struct Running<T> {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<T>,
}

impl<T: Send + 'static> Running<T> {
    /// Spawns `serve`, handing it the future that completes when the test calls [`Running::stop`].
    pub fn spawn<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = Box::pin(async move {
            // A dropped sender means the test is over: stop then too.
            let _ = stopped.await;
        });
        Self { stop, task: tokio::spawn(serve(shutdown)) }
    }

    /// Asks the worker to shut down and waits for what it returns.
    ///
    /// # Panics
    /// If the worker panicked.
    pub async fn stop(self) -> T {
        let _ = self.stop.send(());
        self.task.await.expect("worker task panicked")
    }
}
