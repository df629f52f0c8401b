//! Interned strings (family names, HELP texts) that are freed after their last user: every
//! group shares one allocation per distinct string, and a sweep drops the strings no entry
//! holds any more once the set has doubled since the last sweep (amortised O(1) per insert),
//! so push/delete cycles of unique names or HELP texts leave nothing behind.

use std::collections::HashSet;
use std::sync::Arc;

/// Sweeps never run below this many strings.
const MIN_SWEEP: usize = 1024;

pub(crate) struct Interner {
    set: HashSet<Arc<str>, ahash::RandomState>,
    sweep_at: usize,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            set: HashSet::default(),
            sweep_at: MIN_SWEEP,
        }
    }
}

impl Interner {
    pub fn get(&self, s: &str) -> Option<Arc<str>> {
        self.set.get(s).cloned()
    }

    /// The shared allocation of `s`, created if needed.
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        if self.set.len() >= self.sweep_at {
            self.sweep();
        }
        let a: Arc<str> = Arc::from(s);
        self.set.insert(a.clone());
        a
    }

    /// Drops the strings only the set holds.
    pub fn sweep(&mut self) {
        self.set.retain(|a| Arc::strong_count(a) > 1);
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
        let mut i = Interner::default();
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
