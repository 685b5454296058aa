//! An in-process CQL server for examples and tests where no Cassandra or ScyllaDB can run.
//!
//! This is a stand-in, not a database: it serves the `kassandra` crate (an in-memory,
//! single-node CQL v4 implementation) on a loopback port. It executes one request at a time,
//! keeps no per-cell write timestamps and no TTL, and has no batch size limit, so tests of
//! those behaviours go below the driver instead (see the sink's unit tests). Everything the
//! sink does over the wire (prepare, execute, unlogged batches, paged reads) is real CQL
//! spoken by the real driver.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kassandra::KassandraSession;
use kassandra::frame::request::{Request, RequestOpcode};
use kassandra::frame::response::Response;
use kassandra::frame::response::error::Error as CqlError;
use kassandra::frame::{FrameFlags, request_stream, response_sink};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use super::config::CassandraConfig;
use super::driver_runtime;
use super::error::CassandraError;

/// A CQL server on a loopback port, serving an in-memory store until dropped.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sluice_cassandra::EmbeddedCql;
/// let store = EmbeddedCql::start()?;
/// let config = store.config("shop"); // a driver configuration pointing at it
/// assert!(config.contact_points()[0].starts_with("127.0.0.1:"));
/// # Ok(())
/// # }
/// ```
pub struct EmbeddedCql {
    addr: SocketAddr,
    serving: watch::Sender<bool>,
    runtime: Option<Runtime>,
}

impl EmbeddedCql {
    /// Starts a server on a free loopback port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub fn start() -> Result<Self, CassandraError> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts a server on `addr` (port 0 picks a free one).
    ///
    /// # Errors
    /// When `addr` cannot be bound.
    pub fn start_on(addr: SocketAddr) -> Result<Self, CassandraError> {
        let runtime = driver_runtime("sluice-embedded-cql")?;
        let listener = runtime.block_on(TcpListener::bind(addr)).map_err(|e| {
            CassandraError::Connect(format!("cannot bind the embedded CQL server to {addr}: {e}"))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| CassandraError::Connect(format!("embedded CQL server: {e}")))?;
        let (serving, _) = watch::channel(true);
        let store = Arc::new(Mutex::new(KassandraSession::new()));
        runtime.spawn(accept_loop(listener, store, serving.clone()));
        tracing::info!(%addr, "embedded CQL server (in-memory kassandra) started");
        Ok(EmbeddedCql {
            addr,
            serving,
            runtime: Some(runtime),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A driver configuration for this server and `keyspace`, with the driver settings this
    /// server needs (no schema metadata, no schema agreement).
    pub fn config(&self, keyspace: &str) -> CassandraConfig {
        CassandraConfig::new([self.addr.to_string()], keyspace).for_embedded_store()
    }

    /// Simulates an outage: `false` drops every open connection and refuses new ones until
    /// set back to `true`. The stored data is kept.
    pub fn set_available(&self, available: bool) {
        self.serving.send_replace(available);
    }

    /// Runs until the process is stopped (for serving the store from its own process).
    pub fn serve_forever(self) -> ! {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

impl Drop for EmbeddedCql {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

type Store = Arc<Mutex<KassandraSession>>;

async fn accept_loop(listener: TcpListener, store: Store, serving: watch::Sender<bool>) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        if !*serving.borrow() {
            drop(socket);
            continue;
        }
        let _ = socket.set_nodelay(true);
        tokio::spawn(serve_connection(socket, Arc::clone(&store), serving.subscribe()));
    }
}

async fn serve_connection(socket: TcpStream, store: Store, mut serving: watch::Receiver<bool>) {
    let (reader, writer) = socket.into_split();
    let mut requests = pin!(request_stream(reader));
    let mut responses = pin!(response_sink(writer));
    loop {
        let frame = tokio::select! {
            frame = requests.next() => frame,
            changed = serving.changed() => {
                if changed.is_err() || !*serving.borrow() {
                    return;
                }
                continue;
            }
        };
        let Some(Ok((params, opcode, body))) = frame else {
            return;
        };
        let response = respond(&store, opcode, &body, params.flags);
        if responses.send((response, params.stream)).await.is_err() {
            return;
        }
    }
}

fn respond(store: &Store, opcode: RequestOpcode, body: &[u8], flags: FrameFlags) -> Response {
    if opcode == RequestOpcode::AuthResponse {
        return Response::Error(CqlError::new(
            kassandra::error::DbError::ProtocolError,
            "the embedded CQL server does not authenticate",
        ));
    }
    let request = match Request::deserialize(opcode, body, flags) {
        Ok(request) => request,
        Err(e) => return Response::Error(e),
    };
    let mut session = store.lock().unwrap_or_else(PoisonError::into_inner);
    let result = match request {
        Request::StartUp(_) | Request::Register { .. } => return Response::Ready,
        Request::Options => return Response::options(),
        Request::AuthResponse => return Response::Ready,
        Request::Query(query) => session.process(query),
        Request::Prepare(query) => session.prepare(query),
        Request::Execute(execute) => session.execute(execute),
        Request::Batch(batch) => session.process_batch(batch),
    };
    match result {
        Ok(result) => Response::Result(result),
        Err(e) => Response::Error(e),
    }
}
