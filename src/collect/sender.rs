//! The one way collectors hand events to the engine: `try_send`, never blocking (a blocked
//! collector would miss what happens meanwhile, and a blocked tracer would stall every tracee).
//! Events that do not fit are counted, and the count is reported as a
//! `tasksentry`/`events_dropped` event as soon as there is room. TaskSentry's own (`tasksentry`)
//! events are never dropped for a full queue: they wait in a small backlog (the oldest goes
//! when it is full, counted like any drop), since they are what tells the reader that
//! visibility was lost.

use std::collections::VecDeque;
use std::sync::mpsc::{SyncSender, TrySendError};

use crate::event::{Collector, Event, EventType, Internal};

/// Most internal events waiting for room in the queue.
const MAX_BACKLOG: usize = 64;

/// A non-blocking, drop-counting sender of one collector.
pub(crate) struct DropCountingSender {
    tx: SyncSender<Event>,
    collector: Collector,
    dropped: u64,
    backlog: VecDeque<Event>,
}

impl DropCountingSender {
    /// A sender for `collector`'s events.
    pub(crate) fn new(tx: SyncSender<Event>, collector: Collector) -> DropCountingSender {
        DropCountingSender {
            tx,
            collector,
            dropped: 0,
            backlog: VecDeque::new(),
        }
    }

    /// Sends waiting internal events and the drop report if there is room. Returns false when
    /// the receiver is gone.
    pub(crate) fn flush(&mut self) -> bool {
        while let Some(event) = self.backlog.pop_front() {
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.backlog.push_front(event);
                    return true;
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        if self.dropped > 0 {
            let mut report = Event::new(EventType::Tasksentry, self.collector);
            report.internal = Some(Box::new(Internal {
                kind: "events_dropped".into(),
                message: format!(
                    "{} {} events were dropped because the event queue was full",
                    self.dropped,
                    self.collector.as_str()
                ),
                count: Some(self.dropped),
            }));
            match self.tx.try_send(report) {
                Ok(()) => self.dropped = 0,
                Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        true
    }

    /// Sends one event. Returns false when the receiver is gone.
    pub(crate) fn send(&mut self, event: Event) -> bool {
        if !self.flush() {
            return false;
        }
        if !self.backlog.is_empty() && event.internal.is_some() {
            self.queue_internal(event);
            return true;
        }
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(event)) => {
                if event.internal.is_some() {
                    self.queue_internal(event);
                } else {
                    self.dropped += 1;
                }
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    fn queue_internal(&mut self, event: Event) {
        if self.backlog.len() >= MAX_BACKLOG {
            self.backlog.pop_front();
            self.dropped += 1;
        }
        self.backlog.push_back(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn drops_are_counted_and_reported_and_internal_events_wait() {
        let (tx, rx) = sync_channel(2);
        let mut sender = DropCountingSender::new(tx, Collector::Procscan);
        assert!(sender.send(Event::new(EventType::Execve, Collector::Procscan)));
        assert!(sender.send(Event::new(EventType::Execve, Collector::Procscan)));
        // Full: an ordinary event is dropped and counted, an internal one waits.
        assert!(sender.send(Event::new(EventType::Execve, Collector::Procscan)));
        let mut internal = Event::new(EventType::Tasksentry, Collector::Procscan);
        internal.internal = Some(Box::new(Internal {
            kind: "processes_missed".into(),
            message: "m".into(),
            count: Some(3),
        }));
        assert!(sender.send(internal));
        let received: Vec<Event> = rx.try_iter().collect();
        assert_eq!(received.len(), 2);
        assert!(sender.flush());
        let received: Vec<Event> = rx.try_iter().collect();
        assert_eq!(
            received.len(),
            2,
            "the waiting internal event, then the drop report"
        );
        let kinds: Vec<&str> = received
            .iter()
            .filter_map(|e| e.internal.as_ref().map(|i| i.kind.as_str()))
            .collect();
        assert_eq!(kinds, ["processes_missed", "events_dropped"]);
        assert_eq!(received[1].internal.as_ref().and_then(|i| i.count), Some(1));
        drop(rx);
        assert!(
            !sender.send(Event::new(EventType::Execve, Collector::Procscan)),
            "receiver gone"
        );
    }
}
