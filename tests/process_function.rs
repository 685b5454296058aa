//! Keyed process functions: per-key state, event-time timers and processing-time timers.

mod common;

use std::time::Duration;

use common::{Event, ScriptedSource, Step};
use sluice::engine::BoxError;
use sluice::prelude::*;
use sluice::testing::{CaptureSink, JobHarness, TestInput};

/// Emits each key's total once no event came for 1 s of event time.
struct TotalAfterQuiet;

impl KeyedProcessFunction<String, Event> for TotalAfterQuiet {
    type State = (i64, i64);
    type Out = (String, i64);

    fn process(
        &mut self,
        e: Event,
        ctx: &mut ProcessContext<'_, String, (i64, i64), (String, i64)>,
    ) -> Result<(), BoxError> {
        let (sum, _) = ctx.state()?.unwrap_or((0, 0));
        let deadline = e.ts + 1_000;
        ctx.set_state((sum + e.value, deadline))?;
        ctx.register_event_timer(deadline);
        Ok(())
    }

    fn on_timer(
        &mut self,
        timer: Timer,
        ctx: &mut ProcessContext<'_, String, (i64, i64), (String, i64)>,
    ) -> Result<(), BoxError> {
        // Only the latest deadline counts; earlier timers find a later deadline in state.
        if let Some((sum, deadline)) = ctx.state()? {
            if deadline == timer.time {
                ctx.emit((ctx.key().clone(), sum))?;
                ctx.clear_state()?;
            }
        }
        Ok(())
    }
}

#[test]
fn event_time_timers_and_keyed_state() {
    // c's record moves the watermark past a's and b's deadlines; the pause lets that
    // watermark reach every worker before a and b get more records.
    let events = vec![
        Step::Emit(Event::new("a", 0, 1)),
        Step::Emit(Event::new("b", 100, 10)),
        Step::Emit(Event::new("a", 500, 2)),
        Step::Emit(Event::new("c", 2_000, 5)),
        Step::Stall(Duration::from_millis(100)),
        Step::Emit(Event::new("a", 3_000, 4)),
        Step::Emit(Event::new("b", 3_100, 20)),
    ];
    for workers in [1, 2] {
        let out = CollectSink::new();
        let sink = out.clone();
        let source = ScriptedSource::new(vec![events.clone()], 1);
        let job = Job::new(JobConfig::new("quiet").workers(workers), move |b| {
            b.source(
                "events",
                source.clone(),
                WatermarkStrategy::monotonous().with_timestamps(|e: &Event| e.ts),
            )
            .key_by("by_key", |e| e.key.clone())
            .process("totals", TotalAfterQuiet)
            .sink("out", sink.clone());
            Ok(())
        })
        .expect("valid");
        job.run().expect("runs");
        let mut rows = out.take();
        rows.sort();
        let expected: Vec<(String, i64)> = [("a", 3), ("a", 4), ("b", 10), ("b", 20), ("c", 5)]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        assert_eq!(rows, expected, "workers = {workers}");
    }
}

/// Emits a key 20 ms of wall time after its first record.
struct Ping;

impl KeyedProcessFunction<String, Event> for Ping {
    type State = bool;
    type Out = String;

    fn process(
        &mut self,
        _: Event,
        ctx: &mut ProcessContext<'_, String, bool, String>,
    ) -> Result<(), BoxError> {
        if ctx.state()?.is_none() {
            ctx.set_state(true)?;
            ctx.register_processing_timer(sluice::engine::now_millis() + 20);
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        timer: Timer,
        ctx: &mut ProcessContext<'_, String, bool, String>,
    ) -> Result<(), BoxError> {
        assert_eq!(timer.domain, sluice::operators::TimeDomain::ProcessingTime);
        ctx.emit(ctx.key().clone())?;
        Ok(())
    }
}

#[test]
fn processing_time_timers_fire_while_the_job_runs() {
    let out = CollectSink::new();
    let sink = out.clone();
    let source = ScriptedSource::new(
        vec![vec![
            Step::Emit(Event::new("a", 0, 1)),
            Step::Emit(Event::new("b", 0, 1)),
            Step::Stall(Duration::from_millis(300)),
        ]],
        8,
    );
    let job = Job::new(
        JobConfig::new("ping")
            .workers(2)
            .tick_interval(Duration::from_millis(5)),
        move |b| {
            b.source("events", source.clone(), WatermarkStrategy::processing_time())
                .key_by("by_key", |e| e.key.clone())
                .process("ping", Ping)
                .sink("out", sink.clone());
            Ok(())
        },
    )
    .expect("valid");
    job.run().expect("runs");
    let mut keys = out.take();
    keys.sort();
    assert_eq!(keys, vec!["a".to_string(), "b".to_string()]);
}

/// Emits a value's key one second of processing time after its first record.
struct PingAfterASecond;

impl KeyedProcessFunction<u64, u64> for PingAfterASecond {
    type State = bool;
    type Out = u64;

    fn process(&mut self, _: u64, ctx: &mut ProcessContext<'_, u64, bool, u64>) -> Result<(), BoxError> {
        if ctx.state()?.is_none() {
            ctx.set_state(true)?;
            let due = ctx.timestamp() + 1_000;
            ctx.register_processing_timer(due);
        }
        Ok(())
    }

    fn on_timer(&mut self, _: Timer, ctx: &mut ProcessContext<'_, u64, bool, u64>) -> Result<(), BoxError> {
        let key = *ctx.key();
        ctx.emit(key)?;
        Ok(())
    }
}

#[test]
fn what_a_processing_time_timer_emits_reaches_the_sink_when_the_clock_passes_it() {
    let input = TestInput::<u64>::new(1);
    let out = CaptureSink::<u64>::new();
    let (source, sink) = (input.source(), out.clone());
    let mut h = JobHarness::new(JobConfig::new("ping-after-a-second").workers(1), move |b| {
        b.source("numbers", source.clone(), WatermarkStrategy::processing_time())
            .key_by("by_value", |v: &u64| *v)
            .process("ping", PingAfterASecond)
            .sink("out", sink.clone());
        Ok(())
    })
    .expect("valid");
    h.start().expect("start");
    input.push(0, 7);
    h.settle().expect("settle");
    assert_eq!(out.values(), Vec::<u64>::new(), "not due yet");
    h.advance(Duration::from_secs(2)).expect("advance");
    assert_eq!(out.values(), vec![7], "emitted by the timer, with no other input");
    input.end_all();
    h.finish().expect("finish");
    assert_eq!(out.values(), vec![7]);
}
