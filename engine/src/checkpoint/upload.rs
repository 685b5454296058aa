//! Uploading completed checkpoints to object storage on a thread of its own, so that the
//! job's sources resume as soon as a checkpoint is complete on local disk. One upload runs at
//! a time; a checkpoint completed meanwhile waits, and a newer one replaces it (only the
//! newest matters for a restore).

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::remote::{RemoteCheckpoints, RemoteError};

/// The background uploader of one job.
pub(crate) struct Uploader {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    remote: RemoteCheckpoints,
    job: String,
    retain: usize,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The newest completed checkpoint not uploaded yet.
    queued: Option<(u64, PathBuf)>,
    /// The checkpoint being uploaded.
    uploading: Option<u64>,
    /// Why publishing stopped for good: a newer run of the job took over.
    fenced: Option<String>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Uploader {
    /// Starts the thread uploading to `remote`, keeping `retain` checkpoints there.
    pub(crate) fn start(remote: RemoteCheckpoints, job: &str, retain: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            remote,
            job: job.to_string(),
            retain,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sluice-upload".into())
            .spawn(move || run(&worker))?;
        Ok(Uploader {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues completed checkpoint `id` in `dir`, replacing a queued older one.
    pub(crate) fn submit(&self, id: u64, dir: PathBuf) {
        let mut state = self.shared.lock();
        if state.fenced.is_none() {
            state.queued = Some((id, dir));
            self.shared.changed.notify_all();
        }
    }

    /// The oldest checkpoint queued or being uploaded: local retention must keep it.
    pub(crate) fn oldest_in_use(&self) -> Option<u64> {
        let state = self.shared.lock();
        state
            .uploading
            .into_iter()
            .chain(state.queued.as_ref().map(|(id, _)| *id))
            .min()
    }

    /// Why this run may not publish any more, if a newer run took over.
    pub(crate) fn fenced(&self) -> Option<String> {
        self.shared.lock().fenced.clone()
    }

    /// Waits up to `limit` until nothing is queued or being uploaded.
    pub(crate) fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut state = self.shared.lock();
        while (state.queued.is_some() || state.uploading.is_some()) && state.fenced.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(job = %self.shared.job, "the newest checkpoint is not uploaded yet");
                return;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared) {
    loop {
        let (id, dir) = {
            let mut state = shared.lock();
            loop {
                if state.closed || state.fenced.is_some() {
                    return;
                }
                if let Some(next) = state.queued.take() {
                    state.uploading = Some(next.0);
                    break next;
                }
                state = shared.changed.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        let outcome = shared.remote.upload(&dir, id);
        let mut state = shared.lock();
        state.uploading = None;
        match outcome {
            Ok(()) => {
                drop(state);
                if let Err(e) = shared.remote.retain(shared.retain) {
                    tracing::warn!(job = %shared.job, error = %e, "cannot remove old uploaded checkpoints");
                }
                state = shared.lock();
            }
            Err(e @ RemoteError::Fenced { .. }) => state.fenced = Some(e.to_string()),
            Err(e) => {
                tracing::warn!(job = %shared.job, checkpoint = id, error = %e, "checkpoint not uploaded")
            }
        }
        drop(state);
        shared.changed.notify_all();
    }
}
