//! A bounded record stream: the newest records up to a capacity, kept in
//! chunks so that growing never copies and dropping the oldest is one chunk
//! at a time.

use std::collections::VecDeque;

/// Records per chunk at most.
const CHUNK: usize = 4096;

pub(crate) struct RecordRing<T> {
    chunk: usize,
    max_chunks: usize,
    chunks: VecDeque<Vec<T>>,
    /// Records dropped to stay within the capacity since the last clear.
    dropped: u64,
}

impl<T> RecordRing<T> {
    /// A ring that keeps at most `capacity` records (at least one).
    pub fn new(capacity: usize) -> RecordRing<T> {
        let capacity = capacity.max(1);
        let chunk = (capacity / 8).clamp(1, CHUNK);
        RecordRing {
            chunk,
            max_chunks: (capacity / chunk).max(1),
            chunks: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Appends a record, dropping the oldest chunk when full.
    #[inline]
    pub fn push(&mut self, record: T) {
        if self.chunks.back().is_none_or(|c| c.len() == self.chunk) {
            let reused = if self.chunks.len() == self.max_chunks {
                self.chunks.pop_front()
            } else {
                None
            };
            let fresh = match reused {
                Some(mut oldest) => {
                    self.dropped += oldest.len() as u64;
                    oldest.clear();
                    oldest
                }
                None => Vec::with_capacity(self.chunk),
            };
            self.chunks.push_back(fresh);
        }
        if let Some(current) = self.chunks.back_mut() {
            current.push(record);
        }
    }

    /// Forgets every record and returns their memory.
    pub fn clear(&mut self) {
        self.chunks = VecDeque::new();
        self.dropped = 0;
    }

    /// The records kept, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    /// Records dropped since the last clear.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_records_within_capacity() {
        let mut ring = RecordRing::new(100);
        for i in 0..1000u32 {
            ring.push(i);
        }
        let kept: Vec<u32> = ring.iter().copied().collect();
        assert!(kept.len() <= 100 && kept.len() >= 80, "{}", kept.len());
        assert_eq!(*kept.last().unwrap(), 999);
        assert!(kept.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(kept.len() as u64 + ring.dropped(), 1000);
        ring.clear();
        assert_eq!(ring.iter().count(), 0);
        assert_eq!(ring.dropped(), 0);
    }

    #[test]
    fn a_capacity_of_one_keeps_the_last_record() {
        let mut ring = RecordRing::new(1);
        for i in 0..5u8 {
            ring.push(i);
        }
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), vec![4]);
    }
}
