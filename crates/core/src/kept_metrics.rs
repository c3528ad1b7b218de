//! Metric handles kept by their labels. `metrics::counter!` and `histogram!` with labels
//! build, hash and look up a key in the recorder at every call; on a request's path that
//! cost more than the rest of its bookkeeping (docs/PERFORMANCE.md). A handle is found by a
//! string label and a small copyable rest, without building a key.

use std::collections::HashMap;

use parking_lot::RwLock;

pub struct Kept<L, H> {
    by_label: RwLock<HashMap<String, Vec<(L, H)>>>,
}

impl<L, H> Default for Kept<L, H> {
    fn default() -> Self {
        Self {
            by_label: RwLock::new(HashMap::new()),
        }
    }
}

impl<L: Copy + PartialEq, H: Clone> Kept<L, H> {
    /// The handles of `(label, rest)`, made by `register` the first time they are asked for.
    pub fn get(&self, label: &str, rest: L, register: impl FnOnce() -> H) -> H {
        let find = |all: &HashMap<String, Vec<(L, H)>>| {
            let (_, handles) = all.get(label)?.iter().find(|(r, _)| *r == rest)?;
            Some(handles.clone())
        };
        if let Some(handles) = find(&self.by_label.read()) {
            return handles;
        }
        let mut all = self.by_label.write();
        if let Some(handles) = find(&all) {
            return handles;
        }
        let handles = register();
        all.entry(label.to_owned())
            .or_default()
            .push((rest, handles.clone()));
        handles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_each_label_once() {
        let kept = Kept::<u8, usize>::default();
        let mut registered = 0;
        let mut get = |label: &str, rest: u8| {
            kept.get(label, rest, || {
                registered += 1;
                registered
            })
        };
        assert_eq!(get("a", 1), 1);
        assert_eq!(get("a", 2), 2);
        assert_eq!(get("b", 1), 3);
        assert_eq!((get("a", 1), get("a", 2), get("b", 1)), (1, 2, 3));
        assert_eq!(registered, 3);
    }
}
