use std::hash::Hash;
use std::marker::PhantomData;

use sluice_engine::state::{KeyGroup, KeyedTable, StateKey, StateValue};
use sluice_engine::{
    BoxError, CheckpointId, Data, EngineError, Keyed, Operator, OperatorContext, OperatorSnapshot, Output,
    Result, TimerQueue, Timestamp, Watermark,
};

use crate::snapshot;

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeDomain {
    /// Fires when the watermark reaches the timer's time.
    EventTime,
    /// Fires when the wall clock reaches the timer's time.
    ProcessingTime,
}

/// A timer that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    /// When it was due (epoch milliseconds).
    pub time: Timestamp,
    /// Its clock.
    pub domain: TimeDomain,
}

/// Custom per-key logic with state and timers: the escape hatch for what windows and
/// aggregates do not cover.
///
/// ```
/// use sluice_engine::BoxError;
/// use sluice_operators::{KeyedProcessFunction, ProcessContext, Timer};
///
/// /// Emits a user's click count once no click came for 10 s of event time.
/// struct Quiet;
/// impl KeyedProcessFunction<String, i64> for Quiet {
///     type State = u64;
///     type Out = (String, u64);
///     fn process(&mut self, _click: i64, ctx: &mut ProcessContext<'_, String, u64, (String, u64)>) -> Result<(), BoxError> {
///         let n = ctx.state()?.unwrap_or(0) + 1;
///         ctx.set_state(n)?;
///         ctx.register_event_timer(ctx.timestamp() + 10_000);
///         Ok(())
///     }
///     fn on_timer(&mut self, timer: Timer, ctx: &mut ProcessContext<'_, String, u64, (String, u64)>) -> Result<(), BoxError> {
///         if let Some(n) = ctx.state()? {
///             ctx.emit((ctx.key().clone(), n))?;
///             ctx.clear_state()?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait KeyedProcessFunction<K, T>: 'static {
    /// Per-key state.
    type State: StateValue;
    /// Output record type.
    type Out: Data;

    /// Handles one record of the context's key.
    ///
    /// # Errors
    /// Any error stops the job (or restarts it) with this operator's name.
    fn process(
        &mut self,
        value: T,
        ctx: &mut ProcessContext<'_, K, Self::State, Self::Out>,
    ) -> Result<(), BoxError>;

    /// A timer registered for the context's key fired.
    ///
    /// # Errors
    /// Any error stops the job (or restarts it) with this operator's name.
    fn on_timer(
        &mut self,
        _timer: Timer,
        _ctx: &mut ProcessContext<'_, K, Self::State, Self::Out>,
    ) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The current key's state, timers and output.
pub struct ProcessContext<'a, K, S, O> {
    key_group: KeyGroup,
    key: &'a K,
    timestamp: Timestamp,
    watermark: Watermark,
    table: &'a mut dyn KeyedTable<K, (), S>,
    event_timers: &'a mut TimerQueue<K, ()>,
    processing_timers: &'a mut TimerQueue<K, ()>,
    out: &'a mut Output<O>,
}

impl<K: StateKey, S: StateValue, O: Data> ProcessContext<'_, K, S, O> {
    /// The current key.
    pub fn key(&self) -> &K {
        self.key
    }

    /// Event time of the current record, or the time of the firing timer.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The operator's input watermark.
    pub fn watermark(&self) -> Watermark {
        self.watermark
    }

    /// The current key's state.
    ///
    /// # Errors
    /// When the state backend fails.
    pub fn state(&mut self) -> Result<Option<S>, BoxError> {
        Ok(self.table.get(self.key_group, self.key, &())?)
    }

    /// Replaces the current key's state.
    ///
    /// # Errors
    /// When the state backend fails.
    pub fn set_state(&mut self, state: S) -> Result<(), BoxError> {
        Ok(self.table.put(self.key_group, self.key.clone(), (), state)?)
    }

    /// Drops the current key's state.
    ///
    /// # Errors
    /// When the state backend fails.
    pub fn clear_state(&mut self) -> Result<(), BoxError> {
        self.table.remove(self.key_group, self.key, &())?;
        Ok(())
    }

    /// Calls back [`KeyedProcessFunction::on_timer`] for this key when the watermark reaches `time`.
    pub fn register_event_timer(&mut self, time: Timestamp) {
        self.event_timers
            .register(time, self.key_group, self.key.clone(), ());
    }

    /// Calls back [`KeyedProcessFunction::on_timer`] for this key when the wall clock reaches `time`.
    pub fn register_processing_timer(&mut self, time: Timestamp) {
        self.processing_timers
            .register(time, self.key_group, self.key.clone(), ());
    }

    /// Cancels an event-time timer of this key.
    pub fn delete_event_timer(&mut self, time: Timestamp) {
        self.event_timers.delete(time, self.key_group, self.key, &());
    }

    /// Emits `value` with the current timestamp.
    ///
    /// # Errors
    /// When a downstream operator fails.
    pub fn emit(&mut self, value: O) -> Result<(), BoxError> {
        let ts = self.timestamp;
        self.emit_at(value, ts)
    }

    /// Emits `value` with timestamp `ts`.
    ///
    /// # Errors
    /// When a downstream operator fails.
    pub fn emit_at(&mut self, value: O, ts: Timestamp) -> Result<(), BoxError> {
        Ok(self.out.push(value, ts)?)
    }
}

/// Runs a [`KeyedProcessFunction`].
pub(crate) struct ProcessOperator<K: StateKey, T, F: KeyedProcessFunction<K, T>> {
    name: String,
    function: F,
    table: Option<Box<dyn KeyedTable<K, (), F::State>>>,
    event_timers: TimerQueue<K, ()>,
    processing_timers: TimerQueue<K, ()>,
    watermark: Watermark,
    _input: PhantomData<fn(T)>,
}

impl<K: StateKey, T, F: KeyedProcessFunction<K, T>> ProcessOperator<K, T, F> {
    pub(crate) fn new(function: F) -> Self {
        ProcessOperator {
            name: String::new(),
            function,
            table: None,
            event_timers: TimerQueue::new(),
            processing_timers: TimerQueue::new(),
            watermark: Watermark::MIN,
            _input: PhantomData,
        }
    }

    fn fire(&mut self, domain: TimeDomain, until: Timestamp, out: &mut Output<F::Out>) -> Result<()> {
        loop {
            let queue = match domain {
                TimeDomain::EventTime => &mut self.event_timers,
                TimeDomain::ProcessingTime => &mut self.processing_timers,
            };
            let Some((time, due)) = queue.pop_due(until) else {
                return Ok(());
            };
            for (key_group, key, ()) in due {
                let table = self
                    .table
                    .as_deref_mut()
                    .ok_or_else(|| EngineError::user("process state used before open"))?;
                let mut ctx = ProcessContext {
                    key_group,
                    key: &key,
                    timestamp: time,
                    watermark: self.watermark,
                    table,
                    event_timers: &mut self.event_timers,
                    processing_timers: &mut self.processing_timers,
                    out,
                };
                self.function
                    .on_timer(Timer { time, domain }, &mut ctx)
                    .map_err(user_error)?;
            }
        }
    }
}

fn user_error(e: BoxError) -> EngineError {
    match e.downcast::<EngineError>() {
        Ok(engine) => *engine,
        Err(other) => EngineError::user(other),
    }
}

impl<K, T, F> Operator for ProcessOperator<K, T, F>
where
    K: StateKey + Data + Hash + Eq,
    T: Data,
    F: KeyedProcessFunction<K, T>,
{
    type In = Keyed<K, T>;
    type Out = F::Out;

    fn open(&mut self, ctx: &OperatorContext) -> Result<()> {
        self.name = ctx.name().to_string();
        self.table = Some(ctx.state().open_table(ctx.name())?);
        Ok(())
    }

    fn process(&mut self, record: Keyed<K, T>, ts: Timestamp, out: &mut Output<F::Out>) -> Result<()> {
        let table = self
            .table
            .as_deref_mut()
            .ok_or_else(|| EngineError::user("process state used before open"))?;
        let mut ctx = ProcessContext {
            key_group: record.key_group,
            key: &record.key,
            timestamp: ts,
            watermark: self.watermark,
            table,
            event_timers: &mut self.event_timers,
            processing_timers: &mut self.processing_timers,
            out,
        };
        self.function.process(record.value, &mut ctx).map_err(user_error)
    }

    fn restore_watermark(&mut self, wm: Watermark) {
        self.watermark = wm;
    }

    fn on_watermark(&mut self, wm: Watermark, out: &mut Output<F::Out>) -> Result<()> {
        self.watermark = wm;
        self.fire(TimeDomain::EventTime, wm.0, out)
    }

    fn on_processing_time(&mut self, now: Timestamp, out: &mut Output<F::Out>) -> Result<()> {
        self.fire(TimeDomain::ProcessingTime, now, out)
    }

    fn snapshot(&mut self, _id: CheckpointId) -> Result<OperatorSnapshot> {
        let table = self
            .table
            .as_deref_mut()
            .ok_or_else(|| EngineError::user("process state used before open"))?;
        let tables = vec![table.snapshot(table.key_groups())?];
        let timers = (&self.event_timers, &self.processing_timers);
        Ok(OperatorSnapshot {
            tables,
            local: snapshot::encode(&self.name, &timers)?,
        })
    }

    fn restore(&mut self, snap: &OperatorSnapshot) -> Result<()> {
        let table = self
            .table
            .as_deref_mut()
            .ok_or_else(|| EngineError::user("process state used before open"))?;
        let owned = table.key_groups();
        for t in &snap.tables {
            table.restore(t)?;
        }
        let (event, processing): (TimerQueue<K, ()>, TimerQueue<K, ()>) =
            snapshot::decode(&self.name, &snap.local)?;
        self.event_timers.absorb(event, |kg| owned.contains(kg));
        self.processing_timers.absorb(processing, |kg| owned.contains(kg));
        Ok(())
    }
}
