//! A map that keeps only its `capacity` most recent entries, in insertion order: the
//! sandbox's ledger and its delivered notification ids. Hand-written: the LRU crates reorder
//! on reads, and the sandbox needs insertion order (the ledger is listed oldest first).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

pub(crate) struct Remembered<K, V> {
    capacity: usize,
    /// Insertion sequence number → entry, oldest first.
    entries: BTreeMap<u64, (K, V)>,
    by_key: HashMap<K, u64>,
    next: u64,
}

impl<K: Clone + Eq + Hash, V> Remembered<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: BTreeMap::new(),
            by_key: HashMap::new(),
            next: 0,
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        let seq = self.by_key.get(key)?;
        self.entries.get(seq).map(|(_, v)| v)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    /// Adds a new key (the caller has checked it is not there) and returns the entry that made
    /// room for it, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        let seq = self.next;
        self.next += 1;
        self.by_key.insert(key.clone(), seq);
        self.entries.insert(seq, (key, value));
        if self.entries.len() <= self.capacity {
            return None;
        }
        let (_, (oldest, value)) = self.entries.pop_first()?;
        self.by_key.remove(&oldest);
        Some((oldest, value))
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let seq = self.by_key.remove(key)?;
        self.entries.remove(&seq).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Oldest first.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|(_, v)| v)
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
    }
}
