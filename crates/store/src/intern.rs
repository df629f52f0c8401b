//! Interned strings (family names, HELP texts) that are freed after their last user: every
//! group shares one allocation per distinct string, and a sweep drops the strings no entry
//! holds any more once the set has doubled since the last sweep (amortised O(1) per insert),
//! so push/delete cycles of unique names or HELP texts leave nothing behind.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

/// A shared string an [`Interner`] can hold: looked up by its text, swept when the set holds
/// the only reference.
pub(crate) trait Shared: Clone + Eq + Hash + Borrow<str> {
    fn new(s: &str) -> Self;
    fn only_in_set(&self) -> bool;
}

impl Shared for Arc<str> {
    fn new(s: &str) -> Self {
        Arc::from(s)
    }
    fn only_in_set(&self) -> bool {
        Arc::strong_count(self) == 1
    }
}

/// Sweeps never run below this many strings.
const MIN_SWEEP: usize = 1024;

pub(crate) struct Interner<T: Shared = Arc<str>> {
    set: HashSet<T, ahash::RandomState>,
    sweep_at: usize,
}

impl<T: Shared> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            set: HashSet::default(),
            sweep_at: MIN_SWEEP,
        }
    }
}

impl<T: Shared> Interner<T> {
    pub fn get(&self, s: &str) -> Option<T> {
        self.set.get(s).cloned()
    }

    /// The shared allocation of `s`, created if needed.
    pub fn intern(&mut self, s: &str) -> T {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        if self.set.len() >= self.sweep_at {
            self.sweep();
        }
        let a = T::new(s);
        self.set.insert(a.clone());
        a
    }

    /// Drops the strings only the set holds.
    pub fn sweep(&mut self) {
        self.set.retain(|a| !a.only_in_set());
        if self.set.capacity() > 4 * self.set.len().max(MIN_SWEEP) {
            self.set.shrink_to(2 * self.set.len());
        }
        self.sweep_at = (2 * self.set.len()).max(MIN_SWEEP);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_nobody_holds_are_swept() {
        let mut i = Interner::<Arc<str>>::default();
        let kept: Vec<Arc<str>> = (0..10).map(|n| i.intern(&format!("kept{n}"))).collect();
        for n in 0..100_000 {
            drop(i.intern(&format!("gone{n}")));
        }
        assert!(i.len() <= 2 * MIN_SWEEP, "{}", i.len());
        i.sweep();
        assert_eq!(i.len(), 10);
        assert!(Arc::ptr_eq(&i.intern("kept3"), &kept[3]));
    }
}
