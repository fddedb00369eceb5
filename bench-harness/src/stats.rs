//! The statistics every figure goes through: interleaved run order, median with min–max over
//! repetitions, ratios, and "added" (target − direct) differences.

use serde::{Deserialize, Serialize};

/// Run order for `reps` repetitions over `n` targets: A B C A B C ... as `(rep, target index)`,
/// so slow drift of the machine (other tenants, thermal) spreads evenly over all targets.
pub fn interleave(n: usize, reps: u32) -> Vec<(u32, usize)> {
    (1..=reps)
        .flat_map(|r| (0..n).map(move |t| (r, t)))
        .collect()
}

/// Median, min and max of one figure over repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

/// Median (mean of the middle two for an even count); `None` for no values or any NaN.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

pub fn spread(values: &[f64]) -> Option<Spread> {
    let median = median(values)?;
    Some(Spread {
        median,
        min: values.iter().copied().fold(f64::INFINITY, f64::min),
        max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        n: values.len(),
    })
}

/// `a / b`, `None` when `b` is zero or either is not finite.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b != 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// Relative spread `(max − min) / median`: the run-to-run noise of one figure.
pub fn relative_range(s: &Spread) -> Option<f64> {
    ratio(s.max - s.min, s.median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_is_round_robin() {
        assert_eq!(
            interleave(3, 2),
            vec![(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
        );
        assert!(interleave(0, 3).is_empty());
        assert_eq!(interleave(2, 1), vec![(1, 0), (1, 1)]);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[1.0, f64::NAN]), None);
        let s = spread(&[10.0, 30.0, 20.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (20.0, 10.0, 30.0, 3));
        assert_eq!(relative_range(&s), Some(1.0));
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(50.0, 100.0), Some(0.5));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::INFINITY, 1.0), None);
    }
}
