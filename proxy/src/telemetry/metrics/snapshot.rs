//! What a shard reports on a stats request, and how the control side merges shards: metric
//! families of labelled series, plain data (`Send`), merged by family name and label values.
//! Label values are resolved to strings on the shard when it answers, so shards running
//! different config generations still merge by meaning, not by index.

use std::collections::BTreeMap;

use super::histogram::HistogramSnapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(u64),
    Hist(HistogramSnapshot),
}

impl Value {
    fn merge(&mut self, o: &Value) {
        match (self, o) {
            (Value::Int(a), Value::Int(b)) => *a += b,
            (Value::Hist(a), Value::Hist(b)) => a.merge(b),
            _ => debug_assert!(false, "a family mixes value kinds"),
        }
    }
}

/// One metric family: name (without `_total`/`_bucket` suffixes for counters and
/// histograms: the exposition adds them), help, kind, label names, and series by label values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub series: BTreeMap<Vec<String>, Value>,
}

impl Family {
    pub fn new(
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
    ) -> Family {
        Family {
            name,
            help,
            kind,
            labels,
            series: BTreeMap::new(),
        }
    }

    /// Adds `v` to the series with these label values.
    pub fn add(&mut self, labels: Vec<String>, v: Value) {
        debug_assert_eq!(labels.len(), self.labels.len(), "{}", self.name);
        match self.series.get_mut(&labels) {
            Some(have) => have.merge(&v),
            None => {
                self.series.insert(labels, v);
            }
        }
    }

    pub fn int(&mut self, labels: Vec<String>, v: u64) {
        self.add(labels, Value::Int(v));
    }
}

/// Every family one shard (or the merged process) reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub families: Vec<Family>,
}

impl MetricsSnapshot {
    /// The family called `name`, created empty (with this help, kind and labels) if missing.
    pub fn family(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
    ) -> &mut Family {
        match self.families.iter().position(|f| f.name == name) {
            Some(i) => &mut self.families[i],
            None => {
                self.families.push(Family::new(name, help, kind, labels));
                self.families.last_mut().expect("just pushed")
            }
        }
    }

    /// Adds another shard's families, series by series.
    pub fn merge(&mut self, o: &MetricsSnapshot) {
        for f in &o.families {
            let mine = self.family(f.name, f.help, f.kind, f.labels);
            for (labels, v) in &f.series {
                mine.add(labels.clone(), v.clone());
            }
        }
    }

    /// Subtracts `base`'s counter and histogram series from the matching ones here (saturating;
    /// gauges untouched): what `POST /reset_counters` shows afterwards.
    pub fn subtract(&mut self, base: &MetricsSnapshot) {
        for f in &mut self.families {
            if f.kind == Kind::Gauge {
                continue;
            }
            let Some(b) = base.families.iter().find(|b| b.name == f.name) else {
                continue;
            };
            for (labels, v) in f.series.iter_mut() {
                match (v, b.series.get(labels)) {
                    (Value::Int(a), Some(Value::Int(z))) => *a = a.saturating_sub(*z),
                    (Value::Hist(a), Some(Value::Hist(z))) => {
                        for (x, y) in a.counts.iter_mut().zip(&z.counts) {
                            *x = x.saturating_sub(*y);
                        }
                        a.sum = a.sum.saturating_sub(z.sum);
                    }
                    _ => {}
                }
            }
        }
    }

    /// The sum of a counter family's series whose labels include every `(name, value)` of
    /// `matching` (a histogram series counts its observations).
    pub fn sum(&self, name: &str, matching: &[(&str, &str)]) -> u64 {
        let Some(f) = self.families.iter().find(|f| f.name == name) else {
            return 0;
        };
        let idx: Vec<Option<usize>> = matching
            .iter()
            .map(|(n, _)| f.labels.iter().position(|l| l == n))
            .collect();
        f.series
            .iter()
            .filter(|(l, _)| {
                matching
                    .iter()
                    .zip(&idx)
                    .all(|((_, v), i)| i.is_some_and(|i| l[i] == *v))
            })
            .map(|(_, v)| match v {
                Value::Int(n) => *n,
                Value::Hist(h) => h.count(),
            })
            .sum()
    }

    /// The value of a counter or gauge series (tests, `/stats`).
    pub fn get(&self, name: &str, labels: &[&str]) -> Option<u64> {
        let f = self.families.iter().find(|f| f.name == name)?;
        f.series.iter().find_map(|(l, v)| match v {
            Value::Int(n) if l.iter().map(String::as_str).eq(labels.iter().copied()) => Some(*n),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_matching_series_and_keeps_others() {
        let mut a = MetricsSnapshot::default();
        a.family("x", "h", Kind::Counter, &["l"])
            .int(vec!["1".into()], 2);
        let mut b = MetricsSnapshot::default();
        b.family("x", "h", Kind::Counter, &["l"])
            .int(vec!["1".into()], 3);
        b.family("x", "h", Kind::Counter, &["l"])
            .int(vec!["2".into()], 1);
        b.family("y", "h", Kind::Gauge, &[]).int(vec![], 7);
        a.merge(&b);
        assert_eq!(a.get("x", &["1"]), Some(5));
        assert_eq!(a.get("x", &["2"]), Some(1));
        assert_eq!(a.get("y", &[]), Some(7));
    }
}
