use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use sluice_state::{KeyGroup, KeyGroupRange};

use crate::error::{EngineError, Result};
use crate::push::{Barrier, Control, Data, Output, Push};
use crate::time::{Timestamp, Watermark};
use crate::watermark_tracker::{Combined, WatermarkTracker};
use crate::worker::{Drive, WorkerInput};

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

enum Message<T> {
    Records(Vec<(T, Timestamp)>),
    Watermark(Watermark),
    Idle,
    Barrier(Barrier),
    End,
}

struct Envelope<T> {
    from: usize,
    message: Message<T>,
}

struct Channels<T> {
    senders: Vec<Sender<Envelope<T>>>,
    receivers: Vec<Option<Receiver<Envelope<T>>>>,
}

/// The channels of every exchange of a job run, created by the first worker that asks.
#[derive(Default)]
pub(crate) struct ExchangeRegistry {
    exchanges: Mutex<HashMap<usize, Box<dyn Any + Send>>>,
    /// Worker threads, to wake a receiver that sleeps.
    pub(crate) threads: OnceLock<Vec<Thread>>,
}

impl ExchangeRegistry {
    fn endpoints<T: Data>(
        &self,
        id: usize,
        me: usize,
        workers: usize,
        capacity: usize,
    ) -> Result<(Vec<Sender<Envelope<T>>>, Receiver<Envelope<T>>)> {
        let mut map = self.exchanges.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(id).or_insert_with(|| {
            let (senders, receivers) = (0..workers)
                .map(|_| {
                    let (s, r) = crossbeam_channel::bounded(capacity);
                    (s, Some(r))
                })
                .unzip();
            Box::new(Channels::<T> { senders, receivers })
        });
        let channels = entry
            .downcast_mut::<Channels<T>>()
            .ok_or_else(|| EngineError::InvalidJob {
                job: String::new(),
                reason: format!("exchange {id} was built with different types on different workers"),
            })?;
        let receiver = channels.receivers[me].take().ok_or_else(|| EngineError::InvalidJob {
            job: String::new(),
            reason: format!("exchange {id} was opened twice by worker {me}"),
        })?;
        Ok((channels.senders.clone(), receiver))
    }
}

/// Settings of one exchange on one worker.
pub(crate) struct ExchangeSpec {
    pub id: usize,
    pub me: usize,
    pub workers: usize,
    pub max_key_groups: u16,
    pub batch_size: usize,
    pub capacity: usize,
}

/// Receiving side of an exchange on one worker: merges the senders' watermarks.
pub(crate) struct ExchangeReceiver<T: Data> {
    rx: Receiver<Envelope<T>>,
    tracker: WatermarkTracker,
    out: Output<T>,
    ended: bool,
}

impl<T: Data> ExchangeReceiver<T> {
    fn deliver(&mut self, from: usize, message: Message<T>) -> Result<()> {
        match message {
            Message::Records(records) => {
                for (v, ts) in records {
                    self.out.push(v, ts)?;
                }
                Ok(())
            }
            Message::Watermark(wm) => {
                let c = self.tracker.update(from, wm);
                self.emit(c)
            }
            Message::Idle => {
                let c = self.tracker.set_idle(from);
                self.emit(c)
            }
            // Barrier alignment belongs to the checkpoint coordinator; until then barriers pass.
            Message::Barrier(b) => self.out.barrier(b),
            Message::End => {
                let c = self.tracker.end(from);
                self.emit(c)?;
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
            Combined::Advanced(wm) => self.out.watermark(wm),
            Combined::Idle => self.out.idle(),
        }
    }
}

/// The receiver registered as a worker input.
pub(crate) struct ReceiverInput<T: Data>(pub(crate) Rc<RefCell<ExchangeReceiver<T>>>);

impl<T: Data> WorkerInput for ReceiverInput<T> {
    fn drive(&mut self) -> Result<Drive> {
        let mut r = self.0.borrow_mut();
        if r.ended {
            return Ok(Drive::Finished);
        }
        let mut worked = false;
        // A bounded number of messages per turn keeps the other inputs served.
        for _ in 0..64 {
            match r.rx.try_recv() {
                Ok(env) => {
                    worked = true;
                    r.deliver(env.from, env.message)?;
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

    fn is_finished(&self) -> bool {
        self.0.borrow().ended
    }
}

struct Destination<R> {
    tx: Sender<Envelope<R>>,
    current: Vec<(R, Timestamp)>,
    pending: VecDeque<Message<R>>,
}

/// Sending side of a `key_by` exchange on one worker: computes the key and its key group,
/// batches records per destination worker and delivers records for this worker directly.
pub(crate) struct ExchangeSender<T, K, F>
where
    T: Data,
    K: Data,
{
    key_fn: F,
    me: usize,
    workers: usize,
    max_key_groups: u16,
    batch_size: usize,
    max_pending: usize,
    local: Rc<RefCell<ExchangeReceiver<Keyed<K, T>>>>,
    destinations: Vec<Destination<Keyed<K, T>>>,
    threads: Arc<ExchangeRegistry>,
    latest_wm: Watermark,
    sent_wm: Watermark,
    ended: bool,
}

/// Creates both ends of an exchange for this worker.
pub(crate) fn exchange<T, K, F>(
    registry: &Arc<ExchangeRegistry>,
    spec: &ExchangeSpec,
    key_fn: F,
    out: Output<Keyed<K, T>>,
) -> Result<(
    Rc<RefCell<ExchangeSender<T, K, F>>>,
    Rc<RefCell<ExchangeReceiver<Keyed<K, T>>>>,
)>
where
    T: Data,
    K: Data + Hash,
    F: Fn(&T) -> K + 'static,
{
    let (senders, rx) = registry.endpoints::<Keyed<K, T>>(spec.id, spec.me, spec.workers, spec.capacity)?;
    let receiver = Rc::new(RefCell::new(ExchangeReceiver {
        rx,
        tracker: WatermarkTracker::new(spec.workers),
        out,
        ended: false,
    }));
    let destinations = senders
        .into_iter()
        .map(|tx| Destination {
            tx,
            current: Vec::new(),
            pending: VecDeque::new(),
        })
        .collect();
    let sender = Rc::new(RefCell::new(ExchangeSender {
        key_fn,
        me: spec.me,
        workers: spec.workers,
        max_key_groups: spec.max_key_groups,
        batch_size: spec.batch_size.max(1),
        max_pending: spec.capacity.max(1),
        local: Rc::clone(&receiver),
        destinations,
        threads: Arc::clone(registry),
        latest_wm: Watermark::MIN,
        sent_wm: Watermark::MIN,
        ended: false,
    }));
    Ok((sender, receiver))
}

impl<T: Data, K: Data + Hash, F: Fn(&T) -> K + 'static> ExchangeSender<T, K, F> {
    fn seal(&mut self, dest: usize) {
        let d = &mut self.destinations[dest];
        if !d.current.is_empty() {
            let batch = std::mem::replace(&mut d.current, Vec::with_capacity(self.batch_size));
            d.pending.push_back(Message::Records(batch));
        }
    }

    fn broadcast(&mut self, make: impl Fn() -> Message<Keyed<K, T>>) {
        for dest in 0..self.workers {
            if dest != self.me {
                self.seal(dest);
                self.destinations[dest].pending.push_back(make());
            }
        }
    }

    /// Sends what the channels accept. Returns whether anything was sent.
    pub(crate) fn flush(&mut self) -> Result<bool> {
        if self.latest_wm > self.sent_wm {
            let wm = self.latest_wm;
            self.sent_wm = wm;
            self.broadcast(|| Message::Watermark(wm));
        }
        let mut sent = false;
        for dest in 0..self.workers {
            if dest == self.me {
                continue;
            }
            self.seal(dest);
            let d = &mut self.destinations[dest];
            let mut woke = false;
            while let Some(message) = d.pending.pop_front() {
                match d.tx.try_send(Envelope {
                    from: self.me,
                    message,
                }) {
                    Ok(()) => {
                        sent = true;
                        woke = true;
                    }
                    Err(TrySendError::Full(env)) => {
                        d.pending.push_front(env.message);
                        break;
                    }
                    Err(TrySendError::Disconnected(_)) => return Err(EngineError::Aborted),
                }
            }
            if woke {
                if let Some(threads) = self.threads.threads.get() {
                    threads[dest].unpark();
                }
            }
        }
        Ok(sent)
    }

    /// Whether more is queued than the channels take: upstream must pause.
    pub(crate) fn is_blocked(&self) -> bool {
        self.destinations
            .iter()
            .any(|d| d.pending.len() >= self.max_pending)
    }

    /// Whether everything, including end-of-input, has been handed to the channels.
    pub(crate) fn is_drained(&self) -> bool {
        self.destinations
            .iter()
            .all(|d| d.pending.is_empty() && d.current.is_empty())
    }
}

/// Type-erased view of a sender for the worker loop.
pub(crate) trait Flush {
    fn flush(&mut self) -> Result<bool>;
    fn is_blocked(&self) -> bool;
    fn is_drained(&self) -> bool;
}

impl<T: Data, K: Data + Hash, F: Fn(&T) -> K + 'static> Flush for ExchangeSender<T, K, F> {
    fn flush(&mut self) -> Result<bool> {
        ExchangeSender::flush(self)
    }
    fn is_blocked(&self) -> bool {
        ExchangeSender::is_blocked(self)
    }
    fn is_drained(&self) -> bool {
        ExchangeSender::is_drained(self)
    }
}

/// The sender as the consumer of the upstream stream.
pub(crate) struct SenderPush<T: Data, K: Data, F>(pub(crate) Rc<RefCell<ExchangeSender<T, K, F>>>);

impl<T, K, F> Push<T> for SenderPush<T, K, F>
where
    T: Data,
    K: Data + Hash,
    F: Fn(&T) -> K + 'static,
{
    #[inline]
    fn push(&mut self, value: T, ts: Timestamp) -> Result<()> {
        let mut s = self.0.borrow_mut();
        let key = (s.key_fn)(&value);
        let key_group = KeyGroup::of(&key, s.max_key_groups);
        let dest = KeyGroupRange::worker_for(key_group, s.workers, s.max_key_groups);
        let record = Keyed {
            key_group,
            key,
            value,
        };
        if dest == s.me {
            let local = Rc::clone(&s.local);
            drop(s);
            return local.borrow_mut().out.push(record, ts);
        }
        let batch_size = s.batch_size;
        s.destinations[dest].current.push((record, ts));
        if s.destinations[dest].current.len() >= batch_size {
            s.seal(dest);
        }
        Ok(())
    }

    fn watermark(&mut self, wm: Watermark) -> Result<()> {
        let mut s = self.0.borrow_mut();
        s.latest_wm = s.latest_wm.max(wm);
        let (me, local) = (s.me, Rc::clone(&s.local));
        drop(s);
        let mut r = local.borrow_mut();
        let c = r.tracker.update(me, wm);
        r.emit(c)
    }

    fn idle(&mut self) -> Result<()> {
        let mut s = self.0.borrow_mut();
        s.broadcast(|| Message::Idle);
        let (me, local) = (s.me, Rc::clone(&s.local));
        drop(s);
        let mut r = local.borrow_mut();
        let c = r.tracker.set_idle(me);
        r.emit(c)
    }

    fn barrier(&mut self, barrier: Barrier) -> Result<()> {
        let mut s = self.0.borrow_mut();
        s.broadcast(|| Message::Barrier(barrier));
        let local = Rc::clone(&s.local);
        drop(s);
        local.borrow_mut().out.barrier(barrier)
    }

    fn end(&mut self) -> Result<()> {
        let mut s = self.0.borrow_mut();
        if s.ended {
            return Ok(());
        }
        s.ended = true;
        if s.latest_wm < Watermark::MAX {
            s.latest_wm = Watermark::MAX;
        }
        let wm = s.latest_wm;
        if wm > s.sent_wm {
            s.sent_wm = wm;
            s.broadcast(|| Message::Watermark(wm));
        }
        s.broadcast(|| Message::End);
        let (me, local) = (s.me, Rc::clone(&s.local));
        drop(s);
        local.borrow_mut().deliver(me, Message::End)
    }
}
