//! The reader of one worker: polls the consumer, hands records on, tracks positions.

use super::*;

pub(super) struct Counters {
    pub(super) dead_lettered: Arc<Counter>,
    pub(super) revoked: Arc<Counter>,
    pub(super) max_poll_exceeded: Arc<Counter>,
}

pub(super) struct KafkaReader<T> {
    pub(super) consumer: BaseConsumer<ReaderContext>,
    pub(super) state: ReaderState<T>,
}

/// Everything but the consumer, so records borrowed from the consumer can be handled.
pub(super) struct ReaderState<T> {
    pub(super) topics: Vec<Arc<str>>,
    pub(super) format: Arc<dyn RecordDeserializer<T>>,
    pub(super) dead_letter: Option<DeadLetterWriter>,
    /// Next offset per partition, for the engine.
    pub(super) positions: Vec<(PartitionId, u64)>,
    pub(super) assigned: Vec<(String, i32)>,
    /// Records polled by `keep_alive` while downstream was busy, at most [`MAX_STASH`].
    pub(super) stash: VecDeque<OwnedMessage>,
    /// Partition numbers whose end `keep_alive` saw behind the stashed records.
    pub(super) stashed_ends: Vec<i32>,
    pub(super) exit_when_idle: Option<Duration>,
    pub(super) last_record: Instant,
    /// When the reader was last read, to tell a stall from a quiet input.
    pub(super) last_read: Instant,
    /// Partitions the brokers said this reader had read to their end, with the reader's
    /// position then: one still there has had no record since.
    pub(super) at_end: Vec<(PartitionId, Option<u64>)>,
    pub(super) votes: Arc<GroupProgress>,
    /// Whether every source of the job is idle too.
    pub(super) job_idle: IdleVote,
    /// Whether this reader still has to take its share of the partitions (static assignment).
    pub(super) awaiting_partitions: bool,
    /// The partition numbers the source reads (all when `None`).
    pub(super) only_partitions: Option<Arc<[i32]>>,
    /// Whether the reader has been given its partitions (possibly none).
    pub(super) assignment_known: bool,
    /// Offsets skipped or read twice.
    pub(super) gaps: OffsetGaps,
    pub(super) next_assignment_try: Instant,
    pub(super) assignment_tries: u32,
    pub(super) worker: usize,
    pub(super) workers: usize,
    pub(super) finished: bool,
    pub(super) counters: Counters,
}

impl<T: Data> ReaderState<T> {
    pub(super) fn topic_index(&self, topic: &str) -> Option<usize> {
        self.topics.iter().position(|t| &**t == topic)
    }

    /// Topic and partition of `id`, if this reader is assigned it now.
    pub(super) fn owned(&self, id: PartitionId) -> Option<(&str, i32)> {
        let (ti, partition) = split_partition_id(id);
        let topic = self.topics.get(ti)?;
        self.assigned
            .iter()
            .any(|(t, p)| **t == **topic && *p == partition)
            .then_some((&**topic, partition))
    }

    pub(super) fn apply_rebalances(&mut self, context: &ReaderContext, batch: &mut SourceOutput<'_, T>) {
        if !context.has_events.swap(false, Ordering::Acquire) {
            return;
        }
        let events = std::mem::take(&mut *context.events.lock().unwrap_or_else(|p| p.into_inner()));
        for event in events {
            match event {
                Rebalanced::Assigned(partitions) => {
                    self.votes.rebalanced();
                    self.assignment_known = true;
                    for (topic, partition, start) in partitions {
                        if let Some(ti) = self.topic_index(&topic) {
                            let id = partition_id(ti, partition);
                            batch.partition_start(id);
                            // Every assigned partition has a position from the start, so a
                            // checkpoint records where it stands before it delivers anything.
                            let start = start.max(0) as u64;
                            match self.positions.iter_mut().find(|(p, _)| *p == id) {
                                Some(entry) => entry.1 = start,
                                None => self.positions.push((id, start)),
                            }
                        }
                        if !self.assigned.contains(&(topic.clone(), partition)) {
                            self.assigned.push((topic, partition));
                        }
                    }
                    self.last_record = Instant::now();
                }
                Rebalanced::Revoked(partitions) => {
                    self.votes.rebalanced();
                    self.assignment_known = true;
                    for (topic, partition) in partitions {
                        if let Some(ti) = self.topic_index(&topic) {
                            batch.partition_revoked(partition_id(ti, partition));
                            self.counters.revoked.inc();
                        }
                        self.assigned.retain(|p| p.0 != topic || p.1 != partition);
                    }
                }
            }
        }
    }

    pub(super) fn handle<M: rdkafka::message::Message>(
        &mut self,
        m: &M,
        batch: &mut SourceOutput<'_, T>,
    ) -> Result<(), BoxError> {
        // With one topic there is nothing to look up (and reading the name costs a UTF-8 check).
        let ti = if self.topics.len() == 1 {
            0
        } else {
            match self.topic_index(m.topic()) {
                Some(ti) => ti,
                None => return Ok(()),
            }
        };
        let id = partition_id(ti, m.partition());
        let next = (m.offset() + 1).max(0) as u64;
        match self.positions.iter_mut().find(|(p, _)| *p == id) {
            Some(entry) => {
                let expected = entry.1;
                entry.1 = next;
                if expected != m.offset() as u64 {
                    self.gaps
                        .note(&self.topics[ti], m.partition(), expected, m.offset());
                }
            }
            None => self.positions.push((id, next)),
        }
        let location = || {
            RecordLocation::new(
                Arc::clone(&self.topics[ti]),
                m.partition().max(0) as u32,
                m.offset().max(0) as u64,
                |l, f| {
                    write!(
                        f,
                        "topic {} partition {} offset {}",
                        l.source, l.partition, l.position
                    )
                },
            )
        };
        match self
            .format
            .deserialize_at(id, m.offset().max(0) as u64, m.key(), m.payload())
        {
            Ok(value) => {
                batch.record_at(id, value, m.timestamp().to_millis(), location());
                Ok(())
            }
            Err(reason) => match &self.dead_letter {
                Some(dlq) => {
                    let written = dlq.write(&BadRecord {
                        topic: m.topic(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key(),
                        payload: m.payload(),
                        error: &reason,
                    })?;
                    if written {
                        self.counters.dead_lettered.inc();
                    }
                    Ok(())
                }
                None => {
                    batch.bad_record(id, location(), reason);
                    Ok(())
                }
            },
        }
    }

    /// Takes this worker's share of the topics' partitions once their metadata is known:
    /// partition *i* of all the topics' partitions, in order, if *i* mod workers is this
    /// worker. Whether it did.
    pub(super) fn assign_static(&mut self, consumer: &BaseConsumer<ReaderContext>) -> bool {
        if Instant::now() < self.next_assignment_try {
            return false;
        }
        let Some(counts) = count_partitions(consumer, &self.topics) else {
            // Serves the client's queued events (logs, errors), where bad credentials or a
            // failed TLS handshake show (no records come: nothing is assigned yet); a poll
            // with no time left would serve only one.
            let _ = consumer.poll(Duration::from_millis(20));
            self.assignment_tries += 1;
            if self.assignment_tries == 5 && self.worker == 0 {
                tracing::warn!(topics = ?self.topics, "waiting for the topics' metadata (do they exist?)");
            }
            self.next_assignment_try = Instant::now() + Duration::from_secs(1);
            return false;
        };
        let only = self.only_partitions.as_deref();
        let _ = self
            .votes
            .total_partitions
            .set(static_share(&self.topics, &counts, only, 0, 1).len());
        let mut mine = TopicPartitionList::new();
        for (topic, partition) in static_share(&self.topics, &counts, only, self.worker, self.workers) {
            mine.add_partition(topic, partition);
        }
        consumer.context().take(consumer, &mut mine);
        self.awaiting_partitions = false;
        true
    }

    /// Marks as caught up the partitions numbered `partition` that this reader has read to
    /// their end (librdkafka says which partition number reached its end, not of which topic).
    pub(super) fn reached_end(
        &mut self,
        consumer: &BaseConsumer<ReaderContext>,
        partition: i32,
        batch: &mut SourceOutput<'_, T>,
    ) {
        let owned: Vec<(String, i32)> = self
            .assigned
            .iter()
            .filter(|(_, p)| *p == partition)
            .cloned()
            .collect();
        for (topic, p) in &owned {
            let Some(ti) = self.topic_index(topic) else {
                continue;
            };
            let id = partition_id(ti, *p);
            let at_end = owned.len() == 1
                || consumer
                    .fetch_watermarks(topic, *p, Duration::from_secs(1))
                    .is_ok_and(|(_, high)| {
                        self.positions
                            .iter()
                            .any(|(q, next)| *q == id && *next as i64 >= high)
                    });
            if at_end {
                batch.caught_up(id);
                let position = self.position_of(id);
                self.at_end.retain(|(q, _)| *q != id);
                self.at_end.push((id, position));
            }
        }
    }

    /// The next offset this reader reads of partition `id`, if it knows.
    fn position_of(&self, id: PartitionId) -> Option<u64> {
        self.positions
            .iter()
            .find(|(p, _)| *p == id)
            .map(|(_, next)| *next)
    }

    /// Whether every assigned partition has been read to its end, as the brokers said, with
    /// no record since. A broker that stops answering says nothing, so a reader waiting for
    /// one is never taken for a reader that read everything.
    pub(super) fn read_to_end(&self) -> bool {
        self.assigned.iter().all(|(topic, partition)| {
            let Some(ti) = self.topic_index(topic) else {
                return true;
            };
            let id = partition_id(ti, *partition);
            self.at_end
                .iter()
                .any(|(q, position)| *q == id && *position == self.position_of(id))
        })
    }
}

pub(super) fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageConsumptionFatal(_) | KafkaError::Subscription(_) | KafkaError::ClientCreation(_)
    )
}

impl<T: Data> KafkaReader<T> {
    /// One poll: takes what rebalances changed, then hands records on.
    fn read(&mut self, batch: &mut SourceOutput<'_, T>) -> Result<PollStatus, BoxError> {
        let Self { consumer, state } = self;
        if state.finished {
            return Ok(PollStatus::Finished);
        }
        let now = Instant::now();
        if now.duration_since(state.last_read) > sluice_engine::STALL {
            // Not read for a while (the process was stopped or starved): the partitions were
            // not watched meanwhile, so their quiet time starts again.
            state.last_record = now;
        }
        state.last_read = now;
        let context = consumer.context();
        context.refusals.check(&context.brokers)?;
        if state.awaiting_partitions && !state.assign_static(consumer) {
            return Ok(PollStatus::Pending);
        }
        if let Some(e) = consumer
            .context()
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(KafkaConnectorError::Assignment(e).into());
        }
        // Records polled while downstream was busy go first: they were read before any
        // rebalance seen since.
        let mut got = 0;
        for m in std::mem::take(&mut state.stash) {
            state.handle(&m, batch)?;
            got += 1;
        }
        // Ends reached behind the stashed records count once those are handed on.
        for partition in std::mem::take(&mut state.stashed_ends) {
            state.reached_end(consumer, partition, batch);
        }
        state.apply_rebalances(consumer.context(), batch);
        while !batch.is_full() {
            let polled = consumer.poll(Duration::ZERO);
            // Rebalance callbacks run inside poll: announce partitions before their records.
            state.apply_rebalances(consumer.context(), batch);
            match polled {
                None => break,
                Some(Ok(m)) => {
                    state.handle(&m, batch)?;
                    got += 1;
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    state.reached_end(consumer, partition, batch)
                }
                Some(Err(e)) if is_fatal(&e) => {
                    return Err(KafkaConnectorError::client("Kafka consumer failed", e).into());
                }
                Some(Err(e)) => {
                    if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PollExceeded) {
                        state.counters.max_poll_exceeded.inc();
                    }
                    tracing::warn!(error = %e, "Kafka consumer error; retrying");
                    break;
                }
            }
        }
        if let Some(dlq) = &state.dead_letter {
            dlq.check()?;
        }
        if got > 0 {
            state.last_record = Instant::now();
        }
        if got == 0 && state.idle_exit(consumer, batch)? {
            return Ok(PollStatus::Finished);
        }
        Ok(if got > 0 {
            PollStatus::Ready
        } else {
            PollStatus::Pending
        })
    }
}

impl<T: Data> SourceReader<T> for KafkaReader<T> {
    fn partitions(&self) -> Vec<PartitionId> {
        // Partitions are announced as the reader takes them (first poll, or the group's
        // assignment).
        Vec::new()
    }

    fn poll(&mut self, batch: &mut SourceOutput<'_, T>) -> Result<PollStatus, BoxError> {
        self.read(batch).map_err(with_retry_hint)
    }

    fn position(&self) -> SourcePosition {
        SourcePosition::of_offsets(self.state.positions.iter().copied())
    }

    fn end_offsets(&self) -> Vec<(PartitionId, u64)> {
        // The high watermarks of the client's last statistics (every second): no request.
        let ends = self
            .consumer
            .context()
            .ends
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.state
            .positions
            .iter()
            .filter_map(|(id, _)| {
                let (topic, partition) = self.state.owned(*id)?;
                let high = ends.get(&(topic.to_string(), partition))?;
                Some((*id, u64::try_from(*high).ok()?))
            })
            .collect()
    }

    fn assignment_known(&self) -> bool {
        self.state.assignment_known
    }

    fn flush(&mut self) -> Result<(), BoxError> {
        self.flush_dead_letters().map_err(with_retry_hint)
    }

    fn pause(&mut self, partitions: &[PartitionId], pause: bool) -> Result<bool, BoxError> {
        self.pause_partitions(partitions, pause).map_err(with_retry_hint)
    }

    fn seek(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        self.seek_to(position).map_err(with_retry_hint)
    }

    /// Commits the checkpoint's offsets of the partitions this reader still owns to the
    /// consumer group, so lag monitoring sees them; restores use the checkpoint, not these.
    fn checkpoint_complete(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        self.commit_offsets(position).map_err(with_retry_hint)
    }

    fn keep_alive(&mut self) -> Result<(), BoxError> {
        self.stay_in_group().map_err(with_retry_hint)
    }
}

/// The reader's steps, before their errors get a retry hint.
impl<T: Data> KafkaReader<T> {
    fn flush_dead_letters(&mut self) -> Result<(), BoxError> {
        match &self.state.dead_letter {
            Some(dlq) => dlq.flush(),
            None => Ok(()),
        }
    }

    fn pause_partitions(&mut self, partitions: &[PartitionId], pause: bool) -> Result<bool, BoxError> {
        let mut tpl = TopicPartitionList::new();
        for id in partitions {
            if let Some((topic, partition)) = self.state.owned(*id) {
                tpl.add_partition(topic, partition);
            }
        }
        if tpl.count() > 0 {
            // librdkafka drops what it prefetched of a paused partition and fetches again from
            // the next offset not yet consumed when it is resumed.
            match pause {
                true => self.consumer.pause(&tpl),
                false => self.consumer.resume(&tpl),
            }
            .context(|| format!("cannot pause or resume partitions {partitions:?}"))?;
        }
        Ok(true)
    }

    fn seek_to(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        let topics: Vec<String> = self.state.topics.iter().map(|t| t.to_string()).collect();
        add_starts(
            &self.consumer.context().offsets,
            &topics,
            position,
            StartKind::Restored,
        );

        for (id, offset) in &position.offsets {
            if let Some((topic, partition)) = self.state.owned(*id) {
                self.consumer
                    .seek(
                        topic,
                        partition,
                        Offset::Offset(*offset as i64),
                        Duration::from_secs(10),
                    )
                    .context(|| format!("cannot seek {topic}/{partition} to {offset}"))?;
            }
        }
        Ok(())
    }

    /// Commits the checkpoint's offsets of the partitions this reader still owns to the
    /// consumer group.
    fn commit_offsets(&mut self, position: &SourcePosition) -> Result<(), BoxError> {
        let mut commit = TopicPartitionList::new();
        for (id, offset) in &position.offsets {
            if let Some((topic, partition)) = self.state.owned(*id) {
                commit.add_partition_offset(topic, partition, Offset::Offset(*offset as i64))?;
            }
        }
        if commit.count() > 0 {
            if let Err(e) = self.consumer.commit(&commit, CommitMode::Async) {
                tracing::warn!(error = %e, "cannot commit checkpointed offsets");
            }
        }
        Ok(())
    }

    fn stay_in_group(&mut self) -> Result<(), BoxError> {
        let Self { consumer, state } = self;
        if state.finished {
            return Ok(());
        }
        // Kept alive while the job is busy elsewhere (a checkpoint, backpressure): watched.
        state.last_read = Instant::now();
        // Polling keeps the group membership; what arrives waits in the stash, which is
        // capped. (Pausing partitions instead loses the records librdkafka had prefetched
        // when a rebalance comes between pause and resume.) Rebalances seen here are
        // announced at the next poll.
        if state.stash.len() >= MAX_STASH {
            state.last_record = Instant::now();
            return Ok(());
        }
        match consumer.poll(Duration::ZERO) {
            Some(Ok(m)) => {
                state.stash.push_back(m.detach());
                // A record is waiting: the input is not idle.
                state.last_record = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(partition))) if !state.stashed_ends.contains(&partition) => {
                state.stashed_ends.push(partition);
            }
            Some(Err(e)) if is_fatal(&e) => {
                return Err(KafkaConnectorError::client("Kafka consumer failed", e).into());
            }
            _ => {}
        }
        Ok(())
    }
}
