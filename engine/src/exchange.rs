use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sluice_state::{KeyGroup, KeyGroupRange};

use crate::busy;
use crate::checkpoint::align::BarrierAligner;
use crate::error::{EngineError, Result};
use crate::ids::CheckpointId;
use crate::metrics::{Counter, Gauge};
use crate::push::{BATCH_CAPACITY, Barrier, Control, Data, Output, Push};
use crate::runtime::{Drive, Flush, WorkerInput};
use crate::time::{Timestamp, Watermark};
use crate::watermark_tracker::{Combined, WatermarkTracker};

/// A record of a keyed stream: the value with its key and the key's group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyed<K, V> {
    /// Key group of `key`.
    pub key_group: KeyGroup,
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
}

/// What travels between workers. Records are encoded (serde + bincode) by the sender and
/// decoded by the receiver, so their allocations never cross threads and a batch's memory is
/// its byte length.
enum Transfer {
    Records { bytes: Vec<u8>, count: usize },
    Watermark(Watermark),
    Idle,
    Barrier(Barrier),
    End,
}

struct Envelope {
    from: usize,
    transfer: Transfer,
}

struct Channels {
    senders: Vec<Sender<Envelope>>,
    receivers: Vec<Option<Receiver<Envelope>>>,
    /// Emptied batch buffers on their way back to the worker that allocated them.
    pools: Vec<(Sender<Vec<u8>>, Receiver<Vec<u8>>)>,
}

/// The channel ends one worker holds for one exchange.
struct Endpoints {
    senders: Vec<Sender<Envelope>>,
    receiver: Receiver<Envelope>,
    /// Where this worker returns the buffers of each sender.
    returns: Vec<Sender<Vec<u8>>>,
    /// Where this worker's own buffers come back.
    pool: Receiver<Vec<u8>>,
}

/// What the workers of one run share: the channels of every exchange (created by the first
/// worker that asks), the worker threads, and objects shared by a source's readers.
#[derive(Default)]
pub(crate) struct RunRegistry {
    exchanges: Mutex<HashMap<usize, Channels>>,
    /// Worker threads, to wake a receiver that sleeps.
    pub(crate) threads: OnceLock<Vec<Thread>>,
    /// Objects the readers of a source share across workers.
    pub(crate) shared: Arc<crate::source::SharedResources>,
    /// Whether every reader of the run is idle.
    pub(crate) idleness: Arc<crate::idleness::InputIdleness>,
    /// Whether the run has come to rest.
    pub(crate) activity: Arc<crate::activity::Activity>,
}

impl RunRegistry {
    /// The registry of a run of `sources` sources on `workers` workers.
    pub(crate) fn new(sources: usize, workers: usize) -> Self {
        RunRegistry {
            idleness: Arc::new(crate::idleness::InputIdleness::new(sources, workers)),
            activity: Arc::new(crate::activity::Activity::new(workers)),
            ..RunRegistry::default()
        }
    }

    fn endpoints(&self, spec: &ExchangeSpec) -> Result<Endpoints> {
        let mut map = self.exchanges.lock().unwrap_or_else(|p| p.into_inner());
        let channels = map.entry(spec.id).or_insert_with(|| {
            let (senders, receivers) = (0..spec.workers)
                .map(|_| {
                    let (s, r) = crossbeam_channel::bounded(spec.capacity);
                    (s, Some(r))
                })
                .unzip();
            let pools = (0..spec.workers)
                .map(|_| crossbeam_channel::bounded(2 * spec.capacity * spec.workers))
                .collect();
            Channels {
                senders,
                receivers,
                pools,
            }
        });
        let receiver = channels.receivers[spec.me]
            .take()
            .ok_or_else(|| EngineError::InvalidJob {
                job: String::new(),
                reason: format!("exchange '{}' was opened twice by worker {}", spec.name, spec.me),
            })?;
        Ok(Endpoints {
            senders: channels.senders.clone(),
            receiver,
            returns: channels.pools.iter().map(|(s, _)| s.clone()).collect(),
            pool: channels.pools[spec.me].1.clone(),
        })
    }
}

/// Settings of one exchange on one worker.
pub(crate) struct ExchangeSpec {
    pub name: Arc<str>,
    pub id: usize,
    pub me: usize,
    pub workers: usize,
    pub max_key_groups: u16,
    pub batch_size: usize,
    pub capacity: usize,
}

/// Largest encoded batch before it is sealed, whatever its record count.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Longest time a receiver delivers messages before the worker turns to its other inputs.
const RECEIVE_BUDGET: std::time::Duration = std::time::Duration::from_millis(100);

/// Capacity of a fresh batch buffer.
const BATCH_BUFFER: usize = 64 * 1024;

/// Fixed-width integers: larger than varints, but cheaper to encode and decode.
fn codec() -> impl bincode::config::Config {
    bincode::config::standard().with_fixed_int_encoding()
}

type Encoded<K, T> = (Timestamp, u16, K, T);

/// Receiving side of an exchange on one worker: decodes records and merges the senders'
/// watermarks.
pub(crate) struct ExchangeReceiver<K: Data, T: Data> {
    name: Arc<str>,
    rx: Receiver<Envelope>,
    returns: Vec<Sender<Vec<u8>>>,
    tracker: WatermarkTracker,
    aligner: BarrierAligner,
    out: Output<Keyed<K, T>>,
    ended: bool,
    /// The newest barrier passed on downstream.
    passed: Option<CheckpointId>,
    load: ExchangeLoad,
}

/// What an exchange reports of its load on one worker.
pub(crate) struct ExchangeLoad {
    /// Nanoseconds spent routing, encoding and decoding records.
    pub busy: Arc<Counter>,
    /// Batches waiting in the worker's incoming queue.
    pub queued: Arc<Gauge>,
    /// Batches the queue holds.
    pub capacity: Arc<Gauge>,
    /// Records handed on to the operators after the exchange on this worker.
    pub records_out: Arc<Counter>,
}

impl<K, T> ExchangeReceiver<K, T>
where
    K: Data + DeserializeOwned,
    T: Data + DeserializeOwned,
{
    fn deliver(&mut self, from: usize, transfer: Transfer) -> Result<()> {
        match transfer {
            Transfer::Records { mut bytes, count } => {
                let mut rest = &bytes[..];
                for _ in 0..count {
                    let ((ts, kg, key, value), n): (Encoded<K, T>, usize) =
                        bincode::serde::decode_from_slice(rest, codec()).map_err(|e| {
                            EngineError::Internal {
                                operator: self.name.to_string(),
                                reason: format!(
                                "cannot decode a record from worker {from} ({e}); the record type's serde \
                                 implementation must read back what it writes with bincode \
                                 (untagged enums, skip_serializing_if and self-describing values such as \
                                 serde_json::Value do not)"
                            ),
                            }
                        })?;
                    rest = &rest[n..];
                    let record = Keyed {
                        key_group: KeyGroup(kg),
                        key,
                        value,
                    };
                    self.out.push(record, ts)?;
                }
                self.out.flush()?;
                bytes.clear();
                // A full pool only means the sender has buffers enough.
                let _ = self.returns[from].try_send(bytes);
                Ok(())
            }
            Transfer::Watermark(wm) => {
                let c = self.tracker.update(from, wm);
                self.emit(c)
            }
            Transfer::Idle => {
                let c = self.tracker.set_idle(from);
                self.emit(c)
            }
            Transfer::Barrier(b) => match self.aligner.barrier(from, b.id) {
                Some(id) => self.pass_barrier(id),
                None => Ok(()),
            },
            Transfer::End => {
                let c = self.tracker.end(from);
                self.emit(c)?;
                if let Some(id) = self.aligner.end(from) {
                    self.pass_barrier(id)?;
                }
                if self.tracker.all_ended() && !self.ended {
                    self.ended = true;
                    self.out.end()?;
                }
                Ok(())
            }
        }
    }

    fn emit(&mut self, c: Combined) -> Result<()> {
        match c {
            Combined::Unchanged => Ok(()),
            Combined::Advanced(wm) | Combined::Resumed(wm) => self.out.watermark(wm),
            Combined::Idle => self.out.idle(),
            Combined::IdleAt(wm) => {
                self.out.watermark(wm)?;
                self.out.idle()
            }
        }
    }

    fn pass_barrier(&mut self, id: CheckpointId) -> Result<()> {
        self.passed = Some(id);
        self.out.barrier(Barrier { id })
    }
}

/// The receiver registered as a worker input.
pub(crate) struct ReceiverInput<K: Data, T: Data>(pub(crate) Rc<RefCell<ExchangeReceiver<K, T>>>);

impl<K, T> WorkerInput for ReceiverInput<K, T>
where
    K: Data + DeserializeOwned,
    T: Data + DeserializeOwned,
{
    fn drive(&mut self) -> Result<Drive> {
        let busy = {
            let r = self.0.borrow();
            r.load.queued.set(i64::try_from(r.rx.len()).unwrap_or(i64::MAX));
            Arc::clone(&r.load.busy)
        };
        busy::timed(&busy, || self.receive())
    }

    fn is_finished(&self) -> bool {
        self.0.borrow().ended
    }

    fn passed_barrier(&self) -> Option<CheckpointId> {
        self.0.borrow().passed
    }
}

impl<K, T> ReceiverInput<K, T>
where
    K: Data + DeserializeOwned,
    T: Data + DeserializeOwned,
{
    /// Delivers a bounded number of the messages waiting in the queue.
    fn receive(&mut self) -> Result<Drive> {
        let mut r = self.0.borrow_mut();
        if r.ended {
            return Ok(Drive::Finished);
        }
        let mut worked = false;
        // A bounded number of messages and time per turn keeps the other inputs (and their
        // connections) served.
        let started = std::time::Instant::now();
        for _ in 0..64 {
            if worked && started.elapsed() >= RECEIVE_BUDGET {
                break;
            }
            match r.rx.try_recv() {
                Ok(env) => {
                    worked = true;
                    r.deliver(env.from, env.transfer)?;
                    if r.ended {
                        return Ok(Drive::Finished);
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return Err(EngineError::Aborted),
            }
        }
        Ok(if worked { Drive::Worked } else { Drive::Waiting })
    }
}

struct Destination {
    tx: Sender<Envelope>,
    bytes: Vec<u8>,
    count: usize,
    pending: VecDeque<Transfer>,
}

/// Sending side of a `key_by` exchange on one worker: computes the key and its key group,
/// encodes records for other workers into batches and delivers records for this worker
/// directly.
pub(crate) struct ExchangeSender<T: Data, K: Data, F> {
    name: Arc<str>,
    key_fn: F,
    me: usize,
    workers: usize,
    max_key_groups: u16,
    batch_size: usize,
    max_pending: usize,
    local: Rc<RefCell<ExchangeReceiver<K, T>>>,
    destinations: Vec<Destination>,
    pool: Receiver<Vec<u8>>,
    registry: Arc<RunRegistry>,
    latest_wm: Watermark,
    sent_wm: Watermark,
    /// Idleness was announced and no watermark came since.
    idle: bool,
    /// A watermark came after idleness: it is sent even if it is not higher, to say this
    /// sender is active again.
    resumed: bool,
    ended: bool,
}

/// Creates both ends of an exchange for this worker.
pub(crate) fn exchange<T, K, F>(
    registry: &Arc<RunRegistry>,
    spec: &ExchangeSpec,
    key_fn: F,
    out: Output<Keyed<K, T>>,
    load: ExchangeLoad,
) -> Result<(
    Rc<RefCell<ExchangeSender<T, K, F>>>,
    Rc<RefCell<ExchangeReceiver<K, T>>>,
)>
where
    T: Data + Serialize + DeserializeOwned,
    K: Data + Hash + Serialize + DeserializeOwned,
    F: Fn(&T) -> K + 'static,
{
    let Endpoints {
        senders,
        receiver: rx,
        returns,
        pool,
    } = registry.endpoints(spec)?;
    load.capacity
        .set(rx.capacity().map_or(-1, |c| i64::try_from(c).unwrap_or(i64::MAX)));
    let receiver = Rc::new(RefCell::new(ExchangeReceiver {
        name: Arc::clone(&spec.name),
        rx,
        returns,
        tracker: WatermarkTracker::new(spec.workers),
        aligner: BarrierAligner::new(spec.workers),
        out: out
            .batching(BATCH_CAPACITY)
            .counting(Arc::clone(&load.records_out)),
        ended: false,
        passed: None,
        load,
    }));
    let destinations = senders
        .into_iter()
        .map(|tx| Destination {
            tx,
            bytes: Vec::new(),
            count: 0,
            pending: VecDeque::new(),
        })
        .collect();
    let sender = Rc::new(RefCell::new(ExchangeSender {
        name: Arc::clone(&spec.name),
        key_fn,
        me: spec.me,
        workers: spec.workers,
        max_key_groups: spec.max_key_groups,
        batch_size: spec.batch_size.max(1),
        max_pending: spec.capacity.max(1),
        local: Rc::clone(&receiver),
        destinations,
        pool,
        registry: Arc::clone(registry),
        latest_wm: Watermark::MIN,
        sent_wm: Watermark::MIN,
        idle: false,
        resumed: false,
        ended: false,
    }));
    Ok((sender, receiver))
}

impl<T, K, F> ExchangeSender<T, K, F>
where
    T: Data + Serialize,
    K: Data + Hash + Serialize,
    F: Fn(&T) -> K + 'static,
{
    fn seal(&mut self, dest: usize) {
        let d = &mut self.destinations[dest];
        if d.count > 0 {
            let bytes = std::mem::take(&mut d.bytes);
            d.pending.push_back(Transfer::Records {
                bytes,
                count: std::mem::take(&mut d.count),
            });
        }
    }

    /// Queues a control message for every other worker, after the records and the watermark
    /// that came before it: every edge keeps the order in which things happened.
    fn broadcast(&mut self, make: impl Fn() -> Transfer) {
        self.queue_watermark();
        self.queue_to_others(make);
    }

    fn queue_to_others(&mut self, make: impl Fn() -> Transfer) {
        for dest in 0..self.workers {
            if dest != self.me {
                self.seal(dest);
                self.destinations[dest].pending.push_back(make());
            }
        }
    }

    /// Queues the newest watermark if the other workers have not been sent it. Watermarks are
    /// sent lazily (one per flush, however often they moved), but never after anything that
    /// followed them.
    fn queue_watermark(&mut self) {
        if self.latest_wm > self.sent_wm || self.resumed {
            self.resumed = false;
            let wm = self.latest_wm;
            self.sent_wm = wm;
            self.queue_to_others(|| Transfer::Watermark(wm));
        }
    }

    /// Sends `value` to the worker owning its key: encoded into the batch for another worker,
    /// or pushed to `local`, this worker's receiving output (its batch is the caller's to
    /// flush).
    #[inline]
    fn route(&mut self, value: T, ts: Timestamp, local: &mut Output<Keyed<K, T>>) -> Result<()> {
        let key = (self.key_fn)(&value);
        let key_group = KeyGroup::of(&key, self.max_key_groups);
        let dest = KeyGroupRange::worker_for(key_group, self.workers, self.max_key_groups);
        if dest != self.me {
            return self.encode(dest, ts, key_group, &key, &value);
        }
        let record = Keyed {
            key_group,
            key,
            value,
        };
        local.push(record, ts)
    }

    fn encode(&mut self, dest: usize, ts: Timestamp, key_group: KeyGroup, key: &K, value: &T) -> Result<()> {
        let d = &mut self.destinations[dest];
        if d.bytes.capacity() == 0 {
            d.bytes = self
                .pool
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(BATCH_BUFFER));
        }
        bincode::serde::encode_into_std_write((ts, key_group.0, key, value), &mut d.bytes, codec()).map_err(
            |e| EngineError::OperatorFailed {
                operator: self.name.to_string(),
                source: format!("cannot encode a record for worker {dest}: {e}").into(),
            },
        )?;
        d.count += 1;
        if d.count >= self.batch_size || d.bytes.len() >= MAX_BATCH_BYTES {
            self.seal(dest);
        }
        Ok(())
    }
}

impl<T, K, F> Flush for ExchangeSender<T, K, F>
where
    T: Data + Serialize,
    K: Data + Hash + Serialize,
    F: Fn(&T) -> K + 'static,
{
    fn flush(&mut self) -> Result<bool> {
        self.queue_watermark();
        let mut sent = false;
        for dest in 0..self.workers {
            if dest == self.me {
                continue;
            }
            self.seal(dest);
            let d = &mut self.destinations[dest];
            let mut woke = false;
            while let Some(transfer) = d.pending.pop_front() {
                match d.tx.try_send(Envelope {
                    from: self.me,
                    transfer,
                }) {
                    Ok(()) => woke = true,
                    Err(TrySendError::Full(env)) => {
                        d.pending.push_front(env.transfer);
                        break;
                    }
                    Err(TrySendError::Disconnected(_)) => return Err(EngineError::Aborted),
                }
            }
            if woke {
                sent = true;
                if let Some(threads) = self.registry.threads.get() {
                    threads[dest].unpark();
                }
            }
        }
        Ok(sent)
    }

    fn is_blocked(&self) -> bool {
        self.destinations
            .iter()
            .any(|d| d.pending.len() >= self.max_pending)
    }

    fn is_drained(&self) -> bool {
        self.destinations
            .iter()
            .all(|d| d.pending.is_empty() && d.count == 0)
    }
}

/// The sender as the consumer of the upstream stream.
pub(crate) struct SenderPush<T: Data, K: Data, F>(pub(crate) Rc<RefCell<ExchangeSender<T, K, F>>>);

impl<T, K, F> Push<T> for SenderPush<T, K, F>
where
    T: Data + Serialize + DeserializeOwned,
    K: Data + Hash + Serialize + DeserializeOwned,
    F: Fn(&T) -> K + 'static,
{
    #[inline]
    fn push(&mut self, value: T, ts: Timestamp) -> Result<()> {
        let mut s = self.0.borrow_mut();
        let local = Rc::clone(&s.local);
        let mut receiver = local.borrow_mut();
        s.route(value, ts, &mut receiver.out)?;
        drop(s);
        receiver.out.flush()
    }

    #[inline]
    fn push_batch(&mut self, batch: &mut Vec<(T, Timestamp)>) -> Result<()> {
        let mut s = self.0.borrow_mut();
        let local = Rc::clone(&s.local);
        let mut receiver = local.borrow_mut();
        let busy = Arc::clone(&receiver.load.busy);
        busy::timed(&busy, || {
            batch
                .drain(..)
                .try_for_each(|(value, ts)| s.route(value, ts, &mut receiver.out))
        })?;
        drop(s);
        receiver.out.flush()
    }

    fn watermark(&mut self, wm: Watermark) -> Result<()> {
        let mut s = self.0.borrow_mut();
        s.latest_wm = s.latest_wm.max(wm);
        if std::mem::take(&mut s.idle) {
            s.resumed = true;
        }
        let (me, local) = (s.me, Rc::clone(&s.local));
        drop(s);
        let mut r = local.borrow_mut();
        let c = r.tracker.update(me, wm);
        r.emit(c)
    }

    fn idle(&mut self) -> Result<()> {
        let mut s = self.0.borrow_mut();
        s.broadcast(|| Transfer::Idle);
        s.idle = true;
        let (me, local) = (s.me, Rc::clone(&s.local));
        drop(s);
        let mut r = local.borrow_mut();
        let c = r.tracker.set_idle(me);
        r.emit(c)
    }

    fn barrier(&mut self, barrier: Barrier) -> Result<()> {
        let mut s = self.0.borrow_mut();
        s.broadcast(|| Transfer::Barrier(barrier));
        let (me, local) = (s.me, Rc::clone(&s.local));
        drop(s);
        let mut r = local.borrow_mut();
        r.deliver(me, Transfer::Barrier(barrier))
    }

    fn end(&mut self) -> Result<()> {
        let mut s = self.0.borrow_mut();
        if s.ended {
            return Ok(());
        }
        s.ended = true;
        s.latest_wm = Watermark::MAX;
        s.broadcast(|| Transfer::End);
        let (me, local) = (s.me, Rc::clone(&s.local));
        drop(s);
        let mut r = local.borrow_mut();
        r.deliver(me, Transfer::End)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Control messages (and records) as a receiver hands them downstream.
    struct Trace(Rc<RefCell<Vec<String>>>);

    impl Push<Keyed<u64, u64>> for Trace {
        fn push(&mut self, r: Keyed<u64, u64>, _: Timestamp) -> Result<()> {
            self.0.borrow_mut().push(format!("record {}", r.value));
            Ok(())
        }
        fn watermark(&mut self, wm: Watermark) -> Result<()> {
            self.0.borrow_mut().push(format!("watermark {wm}"));
            Ok(())
        }
        fn idle(&mut self) -> Result<()> {
            self.0.borrow_mut().push("idle".into());
            Ok(())
        }
        fn barrier(&mut self, b: Barrier) -> Result<()> {
            self.0.borrow_mut().push(format!("barrier {}", b.id));
            Ok(())
        }
        fn end(&mut self) -> Result<()> {
            self.0.borrow_mut().push("end".into());
            Ok(())
        }
    }

    type Ends = (
        SenderPush<u64, u64, fn(&u64) -> u64>,
        Rc<RefCell<ExchangeSender<u64, u64, fn(&u64) -> u64>>>,
        ReceiverInput<u64, u64>,
        Rc<RefCell<Vec<String>>>,
    );

    /// Both workers' ends of one exchange between two workers.
    fn two_workers() -> [Ends; 2] {
        let registry = Arc::new(RunRegistry::new(1, 2));
        [0, 1].map(|me| {
            let spec = ExchangeSpec {
                name: Arc::from("by_key"),
                id: 0,
                me,
                workers: 2,
                max_key_groups: 128,
                batch_size: 4,
                capacity: 4,
            };
            let trace = Rc::new(RefCell::new(Vec::new()));
            let out = Output::new();
            out.attach(Box::new(Trace(Rc::clone(&trace))));
            let key: fn(&u64) -> u64 = |v| *v;
            let load = ExchangeLoad {
                busy: Arc::default(),
                queued: Arc::default(),
                capacity: Arc::default(),
                records_out: Arc::default(),
            };
            let (sender, receiver) = exchange(&registry, &spec, key, out, load).expect("exchange");
            (
                SenderPush(Rc::clone(&sender)),
                sender,
                ReceiverInput(receiver),
                trace,
            )
        })
    }

    #[test]
    fn idle_does_not_overtake_the_watermark_sent_before_it() {
        let [(mut push0, _, mut receive0, trace0), (mut push1, flush1, _, _)] = two_workers();
        push0.watermark(Watermark(100)).unwrap();
        // Worker 1 reaches 50 and goes idle before its next flush.
        push1.watermark(Watermark(50)).unwrap();
        push1.idle().unwrap();
        flush1.borrow_mut().flush().unwrap();
        receive0.drive().unwrap();
        push0.watermark(Watermark(200)).unwrap();
        let trace = trace0.borrow();
        assert_eq!(
            trace.last().map(String::as_str),
            Some("watermark 200"),
            "worker 1 is idle and must not hold worker 0 back: {trace:?}"
        );
    }

    #[test]
    fn a_barrier_does_not_overtake_the_watermark_sent_before_it() {
        let [(mut push0, _, mut receive0, trace0), (mut push1, flush1, _, _)] = two_workers();
        push0.watermark(Watermark(100)).unwrap();
        push0.barrier(Barrier { id: CheckpointId(1) }).unwrap();
        // Worker 1's watermark moved just before its barrier, in the same turn.
        push1.watermark(Watermark(50)).unwrap();
        push1.barrier(Barrier { id: CheckpointId(1) }).unwrap();
        flush1.borrow_mut().flush().unwrap();
        receive0.drive().unwrap();
        let trace = trace0.borrow();
        let barrier = trace.iter().position(|e| e == "barrier 1");
        let watermark = trace.iter().position(|e| e == "watermark 50");
        assert!(
            watermark.is_some() && watermark < barrier,
            "what was sent before the barrier arrives before it: {trace:?}"
        );
    }
}
