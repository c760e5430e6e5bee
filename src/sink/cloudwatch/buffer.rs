//! The sink's buffer: a bounded in-memory queue of records, an optional spill directory behind
//! it, and the drop policy when both are full.
//!
//! Order is first in, first out across both: once anything is in the spill, new records go to
//! the spill too, and the spill is read back into memory (oldest file first) as memory frees up.
//! Spill files are append-only NDJSON (`spill-<seq>.ndjson`, one `{"t","p","m"}` object per
//! line), rotated every [`SPILL_FILE_BYTES`]; a file is deleted once every record in it has been
//! delivered (or dropped and counted). Files left by a previous run are replayed first.
//!
//! When memory and spill are both full, the least severe record goes: if the buffer holds a
//! record of a lower priority (higher number) than the new one, the newest such record is
//! evicted; otherwise the new record is dropped. Every drop is counted per priority; the counts
//! are reported as a record once delivery works again (see the sink).

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Record;
use super::batch::{MAX_BATCH_BYTES, MAX_BATCH_EVENTS, prepared_bytes};
use crate::priority::Priority;

/// A spill file is closed and a new one started past this size.
pub(crate) const SPILL_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A record in the buffer, with the spill file it was read from (to delete the file once the
/// record is delivered).
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// The record.
    pub(crate) record: Record,
    /// The spill file it came from, if any.
    pub(crate) spill_file: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct SpillLine {
    t: i64,
    p: u8,
    m: String,
}

#[derive(Debug)]
struct SpillFile {
    seq: u64,
    path: PathBuf,
    bytes: u64,
    read_offset: u64,
    unread: u64,
}

/// The spill directory.
#[derive(Debug)]
struct Spill {
    dir: PathBuf,
    max_bytes: u64,
    /// Files oldest first; the last one may be open for writing.
    files: VecDeque<SpillFile>,
    writer: Option<(u64, File)>,
    next_seq: u64,
    /// Records read into memory and not yet delivered, per file.
    pending: HashMap<u64, u64>,
    /// Files fully read, kept until their pending records are delivered.
    read_done: HashMap<u64, PathBuf>,
}

impl Spill {
    fn open(dir: &Path, max_bytes: u64) -> std::io::Result<(Spill, u64)> {
        std::fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_prefix("spill-"))
                .and_then(|n| n.strip_suffix(".ndjson"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            found.push((seq, entry.path()));
        }
        found.sort();
        let mut files = VecDeque::new();
        let mut records = 0;
        for (seq, path) in found {
            let bytes = std::fs::metadata(&path)?.len();
            // Complete lines only: a partial last line is skipped when the file is read.
            let unread = std::fs::read(&path)?
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64;
            records += unread;
            files.push_back(SpillFile {
                seq,
                path,
                bytes,
                read_offset: 0,
                unread,
            });
        }
        let next_seq = files.back().map_or(0, |f| f.seq + 1);
        Ok((
            Spill {
                dir: dir.to_owned(),
                max_bytes,
                files,
                writer: None,
                next_seq,
                pending: HashMap::new(),
                read_done: HashMap::new(),
            },
            records,
        ))
    }

    fn disk_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum::<u64>()
            + self
                .read_done
                .values()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum::<u64>()
    }

    fn unread(&self) -> u64 {
        self.files.iter().map(|f| f.unread).sum()
    }

    fn append(&mut self, record: &Record) -> std::io::Result<bool> {
        let line = serde_json::to_string(&SpillLine {
            t: record.timestamp_ms,
            p: record.priority.level(),
            m: record.message.clone(),
        })
        .map_err(std::io::Error::other)?;
        let len = line.len() as u64 + 1;
        if self.disk_bytes() + len > self.max_bytes {
            return Ok(false);
        }
        let rotate = match (&self.writer, self.files.back()) {
            (Some((seq, _)), Some(last)) => last.seq != *seq || last.bytes >= SPILL_FILE_BYTES,
            _ => true,
        };
        if rotate {
            let seq = self.next_seq;
            self.next_seq += 1;
            let path = self.dir.join(format!("spill-{seq:016}.ndjson"));
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            self.writer = Some((seq, file));
            self.files.push_back(SpillFile {
                seq,
                path,
                bytes: 0,
                read_offset: 0,
                unread: 0,
            });
        }
        let (_, file) = self
            .writer
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no writer"))?;
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        file.write_all(&bytes)?;
        if let Some(last) = self.files.back_mut() {
            last.bytes += len;
            last.unread += 1;
        }
        Ok(true)
    }

    /// Reads up to `max` records from the oldest file into `out`. Returns how many lines were
    /// unreadable (skipped).
    fn read(&mut self, max: usize, out: &mut VecDeque<Item>) -> std::io::Result<u64> {
        let mut corrupt = 0;
        let mut taken = 0;
        while taken < max {
            let Some(file) = self.files.front_mut() else {
                break;
            };
            if self
                .writer
                .as_ref()
                .is_some_and(|(seq, _)| *seq == file.seq)
            {
                // Never read the file being appended to; close it so it becomes immutable.
                self.writer = None;
            }
            let mut reader = BufReader::new(File::open(&file.path)?);
            reader.seek(SeekFrom::Start(file.read_offset))?;
            let mut line = String::new();
            let mut end_of_file = false;
            while taken < max {
                line.clear();
                let n = reader.read_line(&mut line)?;
                if n == 0 || !line.ends_with('\n') {
                    // A file being read is never appended to again, so this is its end; a
                    // partial last line (a crash mid-write) is counted as unreadable.
                    if n > 0 {
                        corrupt += 1;
                    }
                    end_of_file = true;
                    break;
                }
                file.read_offset += n as u64;
                file.unread = file.unread.saturating_sub(1);
                match serde_json::from_str::<SpillLine>(line.trim_end()) {
                    Ok(parsed) => {
                        *self.pending.entry(file.seq).or_default() += 1;
                        out.push_back(Item {
                            record: Record {
                                timestamp_ms: parsed.t,
                                priority: Priority::from_level(parsed.p).unwrap_or(Priority::Debug),
                                message: parsed.m,
                            },
                            spill_file: Some(file.seq),
                        });
                        taken += 1;
                    }
                    Err(_) => corrupt += 1,
                }
            }
            if end_of_file || file.read_offset >= file.bytes {
                let seq = file.seq;
                let path = file.path.clone();
                self.files.pop_front();
                self.read_done.insert(seq, path);
                self.maybe_delete(seq);
            } else {
                break;
            }
        }
        Ok(corrupt)
    }

    fn ack(&mut self, seq: u64) {
        if let Some(count) = self.pending.get_mut(&seq) {
            *count = count.saturating_sub(1);
        }
        self.maybe_delete(seq);
    }

    fn maybe_delete(&mut self, seq: u64) {
        if self.pending.get(&seq).copied().unwrap_or(0) == 0 {
            if let Some(path) = self.read_done.remove(&seq) {
                self.pending.remove(&seq);
                if let Err(error) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), %error, "Cannot delete a delivered spill file.");
                }
            }
        }
    }
}

/// What happened to a record offered to the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued in memory.
    Memory,
    /// Written to the spill directory.
    Spilled,
    /// Queued, after evicting a less severe record (of this priority), counted as dropped.
    Evicted(Priority),
    /// Not queued: everything is full of records at least as severe. Counted as dropped.
    Dropped,
}

/// The bounded buffer (memory + optional spill).
#[derive(Debug)]
pub(crate) struct Buffer {
    memory: VecDeque<Item>,
    capacity: usize,
    by_priority: [usize; 8],
    /// Bytes of the records in memory, as they will count in a batch.
    memory_bytes: usize,
    spill: Option<Spill>,
    /// Drops not yet reported, per priority.
    unreported_drops: [u64; 8],
    /// Drops since start, per priority.
    total_drops: [u64; 8],
    /// Spill write errors and unreadable spill lines since start.
    pub(crate) spill_errors: u64,
}

impl Buffer {
    /// A buffer of `capacity` records in memory, with a spill directory if given. Records left
    /// in the directory by a previous run are kept and replayed first.
    pub fn new(capacity: usize, spill: Option<(&Path, u64)>) -> std::io::Result<(Buffer, u64)> {
        let (spill, recovered) = match spill {
            Some((dir, max)) => {
                let (spill, recovered) = Spill::open(dir, max)?;
                (Some(spill), recovered)
            }
            None => (None, 0),
        };
        Ok((
            Buffer {
                memory: VecDeque::with_capacity(capacity.min(65_536)),
                capacity: capacity.max(1),
                by_priority: [0; 8],
                memory_bytes: 0,
                spill,
                unreported_drops: [0; 8],
                total_drops: [0; 8],
                spill_errors: 0,
            },
            recovered,
        ))
    }

    /// Records in memory.
    pub(crate) fn memory_len(&self) -> usize {
        self.memory.len()
    }

    /// Records in the spill directory not yet read back.
    pub(crate) fn spilled(&self) -> u64 {
        self.spill.as_ref().map_or(0, Spill::unread)
    }

    /// Records buffered in total (memory + spill).
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.memory.len() as u64 + self.spilled()
    }

    /// Whether memory holds at least a full batch (by count or bytes), or is at capacity, or
    /// records wait in the spill, so sending should not wait for the flush interval.
    pub(crate) fn has_full_batch(&self) -> bool {
        self.memory.len() >= MAX_BATCH_EVENTS
            || self.memory.len() >= self.capacity
            || self.memory_bytes >= MAX_BATCH_BYTES
            || self.spilled() > 0
    }

    /// Drops since start, per priority.
    pub(crate) fn total_drops(&self) -> [u64; 8] {
        self.total_drops
    }

    /// Takes the unreported drop counts (all zero when nothing was dropped).
    pub(crate) fn take_unreported_drops(&mut self) -> [u64; 8] {
        std::mem::take(&mut self.unreported_drops)
    }

    fn count_drop(&mut self, priority: Priority) {
        let p = usize::from(priority.level());
        self.unreported_drops[p] += 1;
        self.total_drops[p] += 1;
    }

    fn push_memory(&mut self, item: Item) {
        self.by_priority[usize::from(item.record.priority.level())] += 1;
        self.memory_bytes += prepared_bytes(&item.record.message);
        self.memory.push_back(item);
    }

    /// Queues TaskSentry's own drop report. It always goes to memory, even when memory is at
    /// capacity (by this one record), because reporting drops must never evict, and so drop,
    /// another record: that would need a report of its own.
    pub(crate) fn push_report(&mut self, record: Record) {
        self.push_memory(Item {
            record,
            spill_file: None,
        });
    }

    /// Offers a record to the buffer; never blocks, never fails (drops are counted).
    pub(crate) fn push(&mut self, record: Record) -> Pushed {
        let spill_has_unread = self.spilled() > 0;
        if !spill_has_unread && self.memory.len() < self.capacity {
            self.push_memory(Item {
                record,
                spill_file: None,
            });
            return Pushed::Memory;
        }
        if let Some(spill) = self.spill.as_mut() {
            match spill.append(&record) {
                Ok(true) => return Pushed::Spilled,
                Ok(false) => {}
                Err(error) => {
                    self.spill_errors += 1;
                    if self.spill_errors.is_power_of_two() {
                        tracing::warn!(%error, errors = self.spill_errors, "Cannot write to the spill directory.");
                    }
                }
            }
            // The spill is full: make room in memory from it first, to keep the order.
            self.refill();
            if self.memory.len() < self.capacity {
                self.push_memory(Item {
                    record,
                    spill_file: None,
                });
                return Pushed::Memory;
            }
        }
        self.evict_or_drop(record)
    }

    fn evict_or_drop(&mut self, record: Record) -> Pushed {
        // The least severe priority held in memory, if it is less severe than the newcomer.
        let victim = Priority::ALL
            .into_iter()
            .rev()
            .find(|p| self.by_priority[usize::from(p.level())] > 0)
            .filter(|p| *p < record.priority);
        let Some(victim) = victim else {
            self.count_drop(record.priority);
            return Pushed::Dropped;
        };
        if let Some(index) = self
            .memory
            .iter()
            .rposition(|item| item.record.priority == victim)
        {
            if let Some(evicted) = self.memory.remove(index) {
                self.by_priority[usize::from(victim.level())] -= 1;
                self.memory_bytes -= prepared_bytes(&evicted.record.message);
                self.forget(&evicted);
            }
            self.count_drop(victim);
            self.push_memory(Item {
                record,
                spill_file: None,
            });
            return Pushed::Evicted(victim);
        }
        self.count_drop(record.priority);
        Pushed::Dropped
    }

    /// Moves spilled records into memory while there is room.
    pub(crate) fn refill(&mut self) {
        let room = self.capacity.saturating_sub(self.memory.len());
        if room == 0 {
            return;
        }
        let Some(spill) = self.spill.as_mut() else {
            return;
        };
        if spill.unread() == 0 {
            return;
        }
        let mut read = VecDeque::new();
        match spill.read(room, &mut read) {
            Ok(corrupt) => {
                if corrupt > 0 {
                    self.spill_errors += corrupt;
                    tracing::warn!(
                        lines = corrupt,
                        "Skipped unreadable lines in the spill directory."
                    );
                }
            }
            Err(error) => {
                self.spill_errors += 1;
                tracing::warn!(%error, "Cannot read the spill directory.");
            }
        }
        for item in read {
            self.push_memory(item);
        }
    }

    /// Takes the oldest records that fit one PutLogEvents call (count and bytes, as they will be
    /// once prepared), refilling memory from the spill first.
    pub(crate) fn take_batch(&mut self) -> Vec<Item> {
        self.refill();
        let mut taken = Vec::new();
        let mut bytes = 0;
        while let Some(front) = self.memory.front() {
            let size = prepared_bytes(&front.record.message);
            if taken.len() >= MAX_BATCH_EVENTS
                || (!taken.is_empty() && bytes + size > MAX_BATCH_BYTES)
            {
                break;
            }
            bytes += size;
            let Some(item) = self.memory.pop_front() else {
                break;
            };
            self.by_priority[usize::from(item.record.priority.level())] -= 1;
            self.memory_bytes -= size;
            taken.push(item);
        }
        taken
    }

    /// Puts taken records back at the front (in their order), e.g. when a shutdown deadline
    /// stops delivery. Memory may exceed its capacity by what was taken.
    pub(crate) fn put_back(&mut self, items: Vec<Item>) {
        for item in items.into_iter().rev() {
            self.by_priority[usize::from(item.record.priority.level())] += 1;
            self.memory_bytes += prepared_bytes(&item.record.message);
            self.memory.push_front(item);
        }
    }

    /// Marks records as delivered or dropped for good: spill files whose records are all done
    /// are deleted.
    pub(crate) fn done(&mut self, items: &[Item]) {
        for item in items {
            self.forget(item);
        }
    }

    fn forget(&mut self, item: &Item) {
        if let (Some(seq), Some(spill)) = (item.spill_file, self.spill.as_mut()) {
            spill.ack(seq);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(i: i64, level: u8) -> Record {
        let priority = Priority::from_level(level).unwrap_or(Priority::Debug);
        Record {
            timestamp_ms: 1_780_000_000_000 + i,
            priority,
            message: format!("{{\"n\":{i}}}"),
        }
    }

    fn n(item: &Item) -> i64 {
        item.record.timestamp_ms - 1_780_000_000_000
    }

    #[test]
    fn a_drop_report_into_a_full_buffer_drops_nothing() {
        let (mut buffer, _) = Buffer::new(2, None).unwrap();
        assert_eq!(buffer.push(record(0, 7)), Pushed::Memory);
        assert_eq!(buffer.push(record(1, 7)), Pushed::Memory);
        buffer.push_report(record(2, 2));
        assert_eq!(
            buffer.take_unreported_drops(),
            [0; 8],
            "the report evicted nothing"
        );
        let kept: Vec<_> = buffer.take_batch().iter().map(n).collect();
        assert_eq!(kept, [0, 1, 2]);
    }

    #[test]
    fn memory_only_drops_least_severe_first_and_counts() {
        let (mut buffer, _) = Buffer::new(3, None).unwrap();
        assert_eq!(buffer.push(record(0, 7)), Pushed::Memory);
        assert_eq!(buffer.push(record(1, 4)), Pushed::Memory);
        assert_eq!(buffer.push(record(2, 7)), Pushed::Memory);
        // Full: a warning evicts the newest debug record.
        assert_eq!(buffer.push(record(3, 4)), Pushed::Evicted(Priority::Debug));
        // A debug record cannot evict anything more severe... but an equal-priority one? No.
        assert_eq!(buffer.push(record(4, 7)), Pushed::Dropped);
        // A critical one evicts the remaining debug one, then warnings.
        assert_eq!(buffer.push(record(5, 2)), Pushed::Evicted(Priority::Debug));
        assert_eq!(
            buffer.push(record(6, 2)),
            Pushed::Evicted(Priority::Warning)
        );
        assert_eq!(buffer.push(record(7, 4)), Pushed::Dropped);
        let drops = buffer.take_unreported_drops();
        assert_eq!(drops, [0, 0, 0, 0, 2, 0, 0, 3]);
        assert_eq!(buffer.take_unreported_drops(), [0; 8]);
        assert_eq!(buffer.total_drops(), drops);
        let kept: Vec<_> = buffer.take_batch().iter().map(n).collect();
        assert_eq!(kept, [1, 5, 6], "survivors in arrival order");
    }

    #[test]
    fn spill_keeps_fifo_order_and_deletes_delivered_files() {
        let dir = tempfile::tempdir().unwrap();
        let (mut buffer, recovered) = Buffer::new(10, Some((dir.path(), 1 << 30))).unwrap();
        assert_eq!(recovered, 0);
        for i in 0..100 {
            let pushed = buffer.push(record(i, 5));
            assert_eq!(
                pushed,
                if i < 10 {
                    Pushed::Memory
                } else {
                    Pushed::Spilled
                }
            );
        }
        assert_eq!(buffer.len(), 100);
        let mut seen = Vec::new();
        loop {
            let batch = buffer.take_batch();
            if batch.is_empty() {
                break;
            }
            // New arrivals while draining still land after the older spilled ones.
            if seen.len() == 20 {
                buffer.push(record(1000, 5));
            }
            seen.extend(batch.iter().map(n));
            buffer.done(&batch);
        }
        let mut expected: Vec<i64> = (0..100).collect();
        expected.push(1000);
        assert_eq!(seen, expected);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(
            left.is_empty(),
            "delivered spill files are deleted: {left:?}"
        );
    }

    #[test]
    fn spill_files_survive_until_delivered_and_are_replayed_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut buffer, _) = Buffer::new(2, Some((dir.path(), 1 << 30))).unwrap();
            for i in 0..7 {
                buffer.push(record(i, 3));
            }
            // Read some back but never deliver them: the file must stay.
            let batch = buffer.take_batch();
            assert_eq!(batch.len(), 2);
            let batch = buffer.take_batch();
            assert_eq!(batch.iter().map(n).collect::<Vec<_>>(), [2, 3]);
        }
        let (mut buffer, recovered) = Buffer::new(100, Some((dir.path(), 1 << 30))).unwrap();
        assert_eq!(recovered, 5, "records 2..7 were spilled");
        let batch = buffer.take_batch();
        assert_eq!(batch.iter().map(n).collect::<Vec<_>>(), [2, 3, 4, 5, 6]);
        buffer.done(&batch);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn unreadable_and_partial_spill_lines_are_counted_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("spill-0000000000000003.ndjson"),
            "{\"t\":1,\"p\":4,\"m\":\"{}\"}\nnot json\n{\"t\":2,\"p\":4,\"m\":\"{\\\"cut",
        )
        .unwrap();
        let (mut buffer, recovered) = Buffer::new(10, Some((dir.path(), 1 << 30))).unwrap();
        assert_eq!(recovered, 2, "complete lines only");
        let batch = buffer.take_batch();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].record.timestamp_ms, 1);
        assert_eq!(
            buffer.spill_errors, 2,
            "the garbage line and the partial one"
        );
        assert_eq!(buffer.spilled(), 0, "nothing left to read: no busy loop");
        assert!(buffer.take_batch().is_empty());
        buffer.done(&batch);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // New spill files continue the sequence after the recovered one.
        let (mut buffer, _) = Buffer::new(1, Some((dir.path(), 1 << 30))).unwrap();
        buffer.push(record(0, 4));
        buffer.push(record(1, 4));
        assert_eq!(buffer.spilled(), 1);
    }

    #[test]
    fn full_spill_falls_back_to_priority_eviction() {
        let dir = tempfile::tempdir().unwrap();
        // Room for about three spilled lines.
        let (mut buffer, _) = Buffer::new(2, Some((dir.path(), 150))).unwrap();
        let mut outcomes = Vec::new();
        for i in 0..8 {
            outcomes.push(buffer.push(record(i, 6)));
        }
        assert_eq!(outcomes[..2], [Pushed::Memory, Pushed::Memory]);
        assert!(outcomes[2..].contains(&Pushed::Spilled));
        assert_eq!(*outcomes.last().unwrap(), Pushed::Dropped);
        let spilled = outcomes.iter().filter(|o| **o == Pushed::Spilled).count() as u64;
        let dropped = buffer.total_drops()[6];
        assert_eq!(2 + spilled + dropped, 8, "every record is kept or counted");
        // A critical record still gets in by evicting an informational one.
        assert_eq!(
            buffer.push(record(99, 2)),
            Pushed::Evicted(Priority::Informational)
        );
    }
}
