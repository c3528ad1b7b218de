//! A map that keeps only its `capacity` most recent entries, in insertion order: the
//! sandbox's ledger and its delivered notification ids. Hand-written: the LRU crates reorder
//! on reads, and the sandbox needs insertion order (the ledger is listed oldest first).
//!
//! Both are written for every sandbox charge, so an insert is a push onto a ring and one hash
//! insert into tables sized up front, with no node allocation and no rehash under load.
//! Sizing up front costs a hub ~10 MiB of resident memory from the start; growing instead
//! made a charge 1–3 µs slower (docs/PERFORMANCE.md).

use std::collections::VecDeque;
use std::hash::Hash;

use foldhash::{HashMap, HashMapExt};

pub(crate) struct Remembered<K, V> {
    capacity: usize,
    /// Entries oldest first. A removed entry leaves a hole; neither end is ever a hole.
    slots: VecDeque<Option<(K, V)>>,
    /// The insertion number of `slots[0]`.
    first: u64,
    /// Key → insertion number.
    by_key: HashMap<K, u64>,
}

impl<K: Clone + Eq + Hash, V> Remembered<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            slots: VecDeque::with_capacity(capacity.saturating_add(1)),
            first: 0,
            by_key: HashMap::with_capacity(capacity.saturating_add(1)),
        }
    }

    fn slot(&self, seq: u64) -> Option<usize> {
        usize::try_from(seq.checked_sub(self.first)?).ok()
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        let index = self.slot(*self.by_key.get(key)?)?;
        self.slots.get(index)?.as_ref().map(|(_, v)| v)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    /// Adds a new key (the caller has checked it is not there) and returns the entry that made
    /// room for it, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        let seq = self.first + self.slots.len() as u64;
        self.by_key.insert(key.clone(), seq);
        self.slots.push_back(Some((key, value)));
        // Holes count towards a bound of twice the capacity, so that entries removed behind
        // an old one cannot grow the ring without end.
        let full =
            self.by_key.len() > self.capacity || self.slots.len() > self.capacity.saturating_mul(2);
        if !full {
            return None;
        }
        // The front is never a hole, so this forgets exactly one entry.
        let oldest = self.slots.pop_front().flatten();
        self.first += 1;
        if let Some((key, _)) = &oldest {
            self.by_key.remove(key);
        }
        self.close_ends();
        oldest
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let seq = self.by_key.remove(key)?;
        let index = self.slot(seq)?;
        let (_, value) = self.slots.get_mut(index)?.take()?;
        self.close_ends();
        Some(value)
    }

    fn close_ends(&mut self) {
        while matches!(self.slots.back(), Some(None)) {
            self.slots.pop_back();
        }
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.first += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Oldest first.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().flatten().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recent_in_insertion_order() {
        let mut m = Remembered::new(2);
        assert_eq!(m.insert("a", 1), None);
        assert_eq!(m.insert("b", 2), None);
        assert_eq!(m.insert("c", 3), Some(("a", 1)));
        assert!(!m.contains(&"a") && m.get(&"a").is_none());
        assert_eq!(m.values().copied().collect::<Vec<_>>(), [2, 3]);
        assert_eq!(m.remove(&"b"), Some(2));
        assert_eq!(m.insert("d", 4), None);
        assert_eq!((m.len(), m.get(&"d")), (2, Some(&4)));
        assert_eq!(m.values().copied().collect::<Vec<_>>(), [3, 4]);
    }

    #[test]
    fn entries_removed_behind_an_old_one_do_not_grow_it() {
        let mut m = Remembered::new(3);
        for i in 0..1_000 {
            m.insert(i, i);
            assert_eq!(m.remove(&i), Some(i));
        }
        assert_eq!((m.len(), m.slots.len()), (0, 0));
        // An old entry stays in front while the ones after it come and go.
        m.insert(-1, -1);
        m.insert(0, 0);
        let mut forgotten = Vec::new();
        for k in 1..100 {
            forgotten.extend(m.insert(1_000 + k, k));
            forgotten.extend(m.insert(k, k));
            assert_eq!(m.remove(&(1_000 + k)), Some(k));
            assert_eq!(m.remove(&(k - 1)), Some(k - 1));
            assert!(m.slots.len() <= 6, "{} slots", m.slots.len());
        }
        assert_eq!(forgotten, [(-1, -1)]);
        assert_eq!((m.len(), m.get(&99)), (1, Some(&99)));
        assert_eq!(m.values().copied().collect::<Vec<_>>(), [99]);
    }

    #[test]
    fn a_memory_of_one_or_none() {
        let mut one = Remembered::new(1);
        assert_eq!(one.insert("a", 1), None);
        assert_eq!(one.insert("b", 2), Some(("a", 1)));
        assert_eq!(one.get(&"b"), Some(&2));
        let mut none = Remembered::new(0);
        assert_eq!(none.insert("a", 1), Some(("a", 1)));
        assert_eq!((none.len(), none.get(&"a")), (0, None));
    }
}
