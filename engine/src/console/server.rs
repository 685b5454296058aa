//! The console's HTTP server: axum on a single-threaded tokio runtime of its own thread.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::rates::RateHistory;
use super::{api, assets};
use crate::console_config::ConsoleConfig;
use crate::error::{EngineError, Result};
use crate::observer::JobObserver;

/// How long `POST /api/savepoint` and `POST /api/stop` wait for their checkpoint.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(60);

/// A running console; stops when dropped.
pub struct Console {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone)]
struct AppState {
    job: JobObserver,
    rates: Arc<Mutex<RateHistory>>,
    token: Option<Arc<str>>,
}

impl Console {
    /// Serves the console of `job` as `config` says, from a thread of its own.
    ///
    /// # Errors
    /// When the address cannot be bound or the thread cannot start.
    pub fn serve(job: JobObserver, config: &ConsoleConfig) -> Result<Console> {
        let bind_error = |e: std::io::Error| EngineError::InvalidConfig {
            key: "console",
            reason: format!("cannot serve the console on {}: {e}", config.addr),
        };
        let listener = std::net::TcpListener::bind(config.addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        if !addr.ip().is_loopback() && config.token.is_none() {
            tracing::warn!(%addr, "the console is served beyond loopback without a token");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(bind_error)?;
        let state = AppState {
            job,
            rates: Arc::default(),
            token: config.token.as_deref().map(Arc::from),
        };
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sluice-console".into())
            .spawn(move || runtime.block_on(run(listener, state, stopped)))
            .map_err(bind_error)?;
        tracing::info!(%addr, "console serving");
        Ok(Console {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn run(listener: std::net::TcpListener, state: AppState, stopped: tokio::sync::oneshot::Receiver<()>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "the console cannot listen");
            return;
        }
    };
    let sampler = tokio::spawn(sample(state.clone()));
    let api = Router::new()
        .route("/job", get(job))
        .route("/operators", get(operators))
        .route("/partitions", get(partitions))
        .route("/checkpoints", get(checkpoints))
        .route("/sinks", get(sinks))
        .route("/rates", get(rates))
        .route("/savepoint", post(savepoint))
        .route("/stop", post(stop))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    let app = Router::new()
        .nest("/api", api)
        .route("/", get(assets::index))
        .route("/app.js", get(assets::script))
        .route("/style.css", get(assets::style))
        .with_state(state);
    tokio::select! {
        served = axum::serve(listener, app) => {
            if let Err(e) = served {
                tracing::error!(error = %e, "the console stopped");
            }
        }
        _ = stopped => {}
    }
    sampler.abort();
}

/// Samples the counters every second, for rates over the last minute.
async fn sample(state: AppState) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        state
            .rates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sample(state.job.metrics());
    }
}

async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(&**token) {
            return problem(StatusCode::UNAUTHORIZED, "a bearer token is required".into());
        }
    }
    next.run(request).await
}

/// An error answer: `{"error": "..."}`.
fn problem(status: StatusCode, error: String) -> Response {
    #[derive(Serialize)]
    struct Problem {
        error: String,
    }
    (status, Json(Problem { error })).into_response()
}

async fn job(State(s): State<AppState>) -> Json<api::JobView> {
    Json(api::job(&s.job))
}

async fn operators(State(s): State<AppState>) -> Json<api::OperatorsView> {
    let rates = s.rates.lock().unwrap_or_else(|p| p.into_inner());
    Json(api::operators(&s.job, &rates))
}

async fn partitions(State(s): State<AppState>) -> Json<api::PartitionsView> {
    Json(api::partitions(&s.job))
}

async fn checkpoints(State(s): State<AppState>) -> Json<api::CheckpointsView> {
    Json(api::checkpoints(&s.job))
}

async fn sinks(State(s): State<AppState>) -> Json<api::SinksView> {
    let rates = s.rates.lock().unwrap_or_else(|p| p.into_inner());
    Json(api::sinks(&s.job, &rates))
}

async fn rates(State(s): State<AppState>) -> Json<api::RatesView> {
    let rates = s.rates.lock().unwrap_or_else(|p| p.into_inner());
    Json(api::rates(&s.job, &rates))
}

#[derive(Deserialize)]
struct SavepointQuery {
    name: Option<String>,
}

async fn savepoint(State(s): State<AppState>, Query(q): Query<SavepointQuery>) -> Response {
    #[derive(Serialize)]
    struct Saved {
        name: String,
        path: String,
    }
    let name = q
        .name
        .unwrap_or_else(|| format!("savepoint-{}", crate::time::now_millis()));
    act(s.job, move |job| {
        job.savepoint(&name, CHECKPOINT_WAIT).map(|path| Saved {
            name,
            path: path.display().to_string(),
        })
    })
    .await
}

async fn stop(State(s): State<AppState>) -> Response {
    #[derive(Serialize)]
    struct Stopping {
        final_checkpoint: Option<u64>,
    }
    act(s.job, |job| {
        job.stop(CHECKPOINT_WAIT)
            .map(|final_checkpoint| Stopping { final_checkpoint })
    })
    .await
}

/// Runs an action that waits for a checkpoint off the runtime's thread; the job's refusal
/// is a 409.
async fn act<T: Serialize + Send + 'static>(
    job: JobObserver,
    action: impl FnOnce(&JobObserver) -> Result<T> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(move || action(&job)).await {
        Ok(Ok(answer)) => Json(answer).into_response(),
        Ok(Err(e)) => problem(StatusCode::CONFLICT, e.to_string()),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
