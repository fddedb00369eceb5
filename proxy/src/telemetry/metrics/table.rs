//! A shard's series table: the hot path finds a series by a packed integer key (config
//! generation, listener, cluster, status, flags … — all small integers), so recording a
//! request hashes one `u128` and indexes a `Vec`. Only a key seen for the first time builds
//! its label strings (cold path, one allocation per new label combination); keys from an
//! older config generation that resolve to the same labels share the series, so counters
//! carry across reloads.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Most series one table keeps per shard; further label combinations are counted in one
/// overflow series (labels all `"overflow"`) so a label explosion cannot exhaust memory.
pub const MAX_SERIES: usize = 4096;

#[derive(Debug)]
pub struct Table<T> {
    hot: HashMap<u128, usize, BuildHasherDefault<KeyHasher>>,
    by_labels: HashMap<Vec<String>, usize>,
    series: Vec<(Vec<String>, T)>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            hot: HashMap::default(),
            by_labels: HashMap::new(),
            series: Vec::new(),
        }
    }
}

impl<T> Table<T> {
    /// The series for `key`; `labels` builds its label values the first time `key` is seen.
    pub fn get(
        &mut self,
        key: u128,
        labels: impl FnOnce() -> Vec<String>,
        new: impl FnOnce() -> T,
    ) -> &mut T {
        if let Some(&i) = self.hot.get(&key) {
            return &mut self.series[i].1;
        }
        self.cold(key, labels, new)
    }

    #[cold]
    fn cold(
        &mut self,
        key: u128,
        labels: impl FnOnce() -> Vec<String>,
        new: impl FnOnce() -> T,
    ) -> &mut T {
        let mut l = labels();
        if self.series.len() >= MAX_SERIES && !self.by_labels.contains_key(&l) {
            l.iter_mut().for_each(|v| *v = "overflow".into());
        }
        let i = match self.by_labels.get(&l) {
            Some(&i) => i,
            None => {
                self.series.push((l.clone(), new()));
                self.by_labels.insert(l, self.series.len() - 1);
                self.series.len() - 1
            }
        };
        if self.hot.len() < 4 * MAX_SERIES {
            self.hot.insert(key, i);
        }
        &mut self.series[i].1
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[String], &T)> {
        self.series.iter().map(|(l, t)| (l.as_slice(), t))
    }
}

/// Multiply-xorshift for integer keys (the keys are already well spread small integers).
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u128(&mut self, v: u128) {
        let x = (v as u64) ^ ((v >> 64) as u64).rotate_left(29);
        let x = (x ^ (x >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 29);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_labels_share_a_series_across_keys() {
        let mut t: Table<u64> = Table::default();
        *t.get(1, || vec!["a".into()], || 0) += 1;
        *t.get(2, || vec!["a".into()], || 0) += 1;
        *t.get(3, || vec!["b".into()], || 0) += 1;
        let v: Vec<_> = t.iter().map(|(l, n)| (l[0].clone(), *n)).collect();
        assert_eq!(v, vec![("a".into(), 2), ("b".into(), 1)]);
    }
}
