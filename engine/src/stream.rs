use std::cell::RefCell;
use std::hash::Hash;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build_state::{BuildState, Mode};
use crate::error::EngineError;
use crate::exchange::{ExchangeLoad, ExchangeSpec, Keyed, ReceiverInput, SenderPush, exchange};
use crate::graph::OperatorKind;
use crate::operator::{NodeInput, Operator, OperatorNode};
use crate::push::{Control, Data, Output, Push};
use crate::sink::{SinkFactory, SinkInput, SinkNode};
use crate::union::{Union, UnionInput};

/// A stream of `T` records inside a job being built.
///
/// Calling several operators on the same stream feeds each of them every record.
pub struct Stream<T: Data> {
    pub(crate) state: Rc<RefCell<BuildState>>,
    pub(crate) out: Output<T>,
    pub(crate) producer: Arc<str>,
}

impl<T: Data> Stream<T> {
    pub(crate) fn new(state: Rc<RefCell<BuildState>>, out: Output<T>, producer: &str) -> Self {
        Stream {
            state,
            out,
            producer: Arc::from(producer),
        }
    }

    /// Name of the operator producing this stream.
    pub fn producer(&self) -> &str {
        &self.producer
    }

    /// Records a problem found while building (e.g. invalid operator settings); [`crate::Job::new`]
    /// returns it.
    pub fn report_error(&self, error: EngineError) {
        self.state.borrow_mut().errors.push(error);
    }

    /// Adds a custom operator `op` called `name`; `kind` says what it is in the job graph (an
    /// [`OperatorKind`], or a `&str` for a kind of the user's own).
    pub fn transform<O: Operator<In = T>>(
        &self,
        name: &str,
        kind: impl Into<OperatorKind>,
        op: O,
    ) -> Stream<O::Out> {
        self.transform_with_side_outputs(name, kind.into(), Vec::new(), op)
    }

    /// Adds an operator that also writes a second stream (e.g. late records). `make` gets the
    /// side output to hold on to and returns the operator.
    pub fn transform_with_side_output<S: Data, O: Operator<In = T>>(
        &self,
        name: &str,
        kind: impl Into<OperatorKind>,
        make: impl FnOnce(Output<S>) -> O,
    ) -> (Stream<O::Out>, Stream<S>) {
        let side = Output::<S>::new();
        let op = make(side.clone());
        let main = self.transform_with_side_outputs(name, kind.into(), vec![Box::new(side.clone())], op);
        self.state.borrow_mut().track_output(name, &side);
        (main, Stream::new(Rc::clone(&self.state), side, name))
    }

    fn transform_with_side_outputs<O: Operator<In = T>>(
        &self,
        name: &str,
        kind: OperatorKind,
        side_outputs: Vec<Box<dyn Control>>,
        mut op: O,
    ) -> Stream<O::Out> {
        let out = Output::<O::Out>::new();
        let mut st = self.state.borrow_mut();
        st.claim_name(name);
        st.record(
            name,
            kind,
            &[&self.producer],
            std::any::type_name::<O::Out>().to_string(),
        );
        st.track_output(name, &out);
        let ctx = st.operator_context(name);
        if let Err(e) = op.open(&ctx) {
            st.errors.push(e.in_operator(name));
        }
        let node = Rc::new(RefCell::new(OperatorNode::new(
            &ctx,
            op,
            out.clone(),
            side_outputs,
        )));
        st.run.tickers.push(node.clone());
        st.run.participants.push(node.clone());
        drop(st);
        self.out.attach(Box::new(NodeInput(node)));
        Stream::new(Rc::clone(&self.state), out, name)
    }

    /// Partitions the stream by `key`: records with equal keys meet on the same worker, so
    /// keyed state and windows can follow. This is an exchange between workers.
    ///
    /// Records bound for another worker are encoded with serde + bincode on the way, so keys
    /// and values are serde types.
    pub fn key_by<K, F>(&self, name: &str, key: F) -> KeyedStream<K, T>
    where
        T: Serialize + DeserializeOwned,
        K: Data + Hash + Eq + Serialize + DeserializeOwned,
        F: Fn(&T) -> K + 'static,
    {
        let out = Output::<Keyed<K, T>>::new();
        let mut st = self.state.borrow_mut();
        st.claim_name(name);
        st.record(
            name,
            OperatorKind::KeyBy,
            &[&self.producer],
            format!("{} -> {}", std::any::type_name::<K>(), std::any::type_name::<T>()),
        );
        st.track_output(name, &out);
        let id = st.next_exchange_id();
        let registry = match st.mode {
            Mode::Run => Arc::clone(&st.registry),
            Mode::Plan => Arc::default(),
        };
        let spec = ExchangeSpec {
            name: Arc::from(name),
            id,
            me: st.worker,
            workers: st.config.workers,
            max_key_groups: st.config.max_key_groups,
            batch_size: st.config.batch_size,
            capacity: st.config.channel_capacity,
        };
        let load = ExchangeLoad {
            busy: st.metrics.counter(name, "busy_ns", st.worker),
            queued: st.metrics.gauge(name, "queued_batches", st.worker),
            capacity: st.metrics.gauge(name, "queue_capacity", st.worker),
            records_out: st.metrics.counter(name, "records_out", st.worker),
        };
        match exchange(&registry, &spec, key, out.clone(), load) {
            Ok((sender, receiver)) => {
                st.run.senders.push((id, sender.clone()));
                st.run.inputs.push((id + 1, Box::new(ReceiverInput(receiver))));
                drop(st);
                self.out.attach(Box::new(SenderPush(sender)));
            }
            Err(e) => st.errors.push(e),
        }
        KeyedStream {
            inner: Stream::new(Rc::clone(&self.state), out, name),
            _key: PhantomData,
        }
    }

    /// Merges this stream with `others` into one stream called `name`.
    pub fn union(&self, name: &str, others: &[&Stream<T>]) -> Stream<T> {
        let out = Output::<T>::new();
        let mut st = self.state.borrow_mut();
        st.claim_name(name);
        let mut inputs: Vec<&str> = vec![&self.producer];
        inputs.extend(others.iter().map(|s| &*s.producer));
        st.record(
            name,
            OperatorKind::Union,
            &inputs,
            std::any::type_name::<T>().to_string(),
        );
        st.track_output(name, &out);
        drop(st);
        let union = Rc::new(RefCell::new(Union::new(others.len() + 1, out.clone())));
        for (index, s) in std::iter::once(self).chain(others.iter().copied()).enumerate() {
            s.out.attach(Box::new(UnionInput {
                index,
                union: Rc::clone(&union),
            }));
        }
        Stream::new(Rc::clone(&self.state), out, name)
    }

    /// Writes the stream to a sink called `name`; `factory` makes one sink per worker.
    pub fn sink(&self, name: &str, factory: impl SinkFactory<T>) {
        let mut st = self.state.borrow_mut();
        st.claim_name(name);
        st.record(name, OperatorKind::Sink, &[&self.producer], String::new());
        if st.mode == Mode::Plan {
            drop(st);
            self.out.attach(Box::new(Discard));
            return;
        }
        if let Some(report) = factory.report() {
            st.metrics.sinks().register(name, report);
        }
        match factory.create(st.worker, st.config.workers) {
            Ok(sink) => {
                let node = Rc::new(RefCell::new(SinkNode {
                    name: Arc::from(name),
                    sink,
                    records_in: st.metrics.counter(name, "records_in", st.worker),
                    busy: st.metrics.counter(name, "busy_ns", st.worker),
                    ended: false,
                    barrier: None,
                }));
                st.run.participants.push(node.clone());
                drop(st);
                self.out.attach(Box::new(SinkInput(node)));
            }
            Err(source) => st.errors.push(EngineError::SinkFailed {
                sink: name.to_string(),
                source,
            }),
        }
    }
}

/// Consumer used while a graph is only planned.
struct Discard;

impl<T: Data> Push<T> for Discard {
    fn push(&mut self, _: T, _: crate::time::Timestamp) -> crate::Result<()> {
        Ok(())
    }
    fn watermark(&mut self, _: crate::time::Watermark) -> crate::Result<()> {
        Ok(())
    }
    fn idle(&mut self) -> crate::Result<()> {
        Ok(())
    }
    fn barrier(&mut self, _: crate::push::Barrier) -> crate::Result<()> {
        Ok(())
    }
    fn end(&mut self) -> crate::Result<()> {
        Ok(())
    }
}

/// A stream partitioned by key: the only place windows, keyed state and keyed process
/// functions are available.
pub struct KeyedStream<K: Data, T: Data> {
    inner: Stream<Keyed<K, T>>,
    _key: PhantomData<K>,
}

impl<K: Data + Hash + Eq, T: Data> KeyedStream<K, T> {
    /// The stream of [`Keyed`] records, for building keyed operators.
    pub fn records(&self) -> &Stream<Keyed<K, T>> {
        &self.inner
    }

    /// Name of the `key_by` that produced this stream.
    pub fn producer(&self) -> &str {
        self.inner.producer()
    }

    /// Treats a stream of [`Keyed`] records as keyed. Only for records that are already on
    /// the worker owning their key group: value-wise maps and unions of keyed streams (how
    /// joins bring two keyed streams together). Anything else breaks keyed state.
    pub fn from_partitioned(records: Stream<Keyed<K, T>>) -> Self {
        KeyedStream {
            inner: records,
            _key: PhantomData,
        }
    }
}
