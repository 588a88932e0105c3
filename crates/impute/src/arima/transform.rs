//! Maps between unconstrained reals and stationary AR / invertible MA coefficients
//! (Monahan 1984, as in statsmodels' `constrain_stationary_univariate`), so the optimiser
//! can search all of ℝⁿ and every point it visits is a valid model.

/// Unconstrained reals to the coefficients of a stationary AR polynomial
/// `1 - φ₁L - … - φₙLⁿ`. Mirrors statsmodels line for line.
pub fn constrain_stationary(unconstrained: &[f64], out: &mut [f64]) {
    let n = unconstrained.len();
    debug_assert_eq!(out.len(), n);
    // Rows k-1 and k of statsmodels' triangular work matrix; n ≤ 6 so a fixed buffer does.
    let mut prev = [0.0_f64; 8];
    let mut cur = [0.0_f64; 8];
    assert!(n <= prev.len(), "at most {} coefficients", prev.len());
    for k in 0..n {
        let u = unconstrained[k];
        let r = u / (1.0 + u * u).sqrt();
        for i in 0..k {
            cur[i] = prev[i] + r * prev[k - i - 1];
        }
        cur[k] = r;
        prev[..=k].copy_from_slice(&cur[..=k]);
    }
    for i in 0..n {
        out[i] = -prev[i];
    }
}

/// The inverse of [`constrain_stationary`]. Returns `None` when the coefficients are not
/// stationary (a partial autocorrelation reaches ±1).
pub fn unconstrain_stationary(constrained: &[f64], out: &mut [f64]) -> Option<()> {
    let n = constrained.len();
    debug_assert_eq!(out.len(), n);
    if n == 0 {
        return Some(());
    }
    let mut row = [0.0_f64; 8];
    let mut next = [0.0_f64; 8];
    assert!(n <= row.len(), "at most {} coefficients", row.len());
    for i in 0..n {
        row[i] = -constrained[i];
    }
    // Step down (Levinson–Durbin backwards), recording each row's last entry: the
    // partial autocorrelations.
    let mut r = [0.0_f64; 8];
    for k in (0..n).rev() {
        r[k] = row[k];
        if r[k].abs() >= 1.0 || !r[k].is_finite() {
            return None;
        }
        if k == 0 {
            break;
        }
        let denom = 1.0 - row[k] * row[k];
        for i in 0..k {
            next[i] = (row[i] - row[k] * row[k - i - 1]) / denom;
        }
        row[..k].copy_from_slice(&next[..k]);
    }
    for k in 0..n {
        out[k] = r[k] / (1.0 - r[k] * r[k]).sqrt();
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraining_then_unconstraining_returns_the_same_reals() {
        let u = [0.3, -1.7, 2.5, 0.05];
        for n in 1..=u.len() {
            let mut c = vec![0.0; n];
            let mut back = vec![0.0; n];
            constrain_stationary(&u[..n], &mut c);
            unconstrain_stationary(&c, &mut back).unwrap();
            for (a, b) in u[..n].iter().zip(&back) {
                assert!((a - b).abs() < 1e-10, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn the_transform_agrees_with_statsmodels() {
        // constrain_stationary_univariate([0.3, -1.7, 2.5]) in statsmodels 0.14.4.
        let mut c = [0.0; 3];
        constrain_stationary(&[0.3, -1.7, 2.5], &mut c);
        for (a, b) in c.iter().zip([0.76061292, 0.82509884, -0.92847669]) {
            assert!((a - b).abs() < 1e-8, "{a} vs {b}");
        }
        let mut one = [0.0];
        constrain_stationary(&[1.0], &mut one);
        assert!((one[0] + std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15);
        let mut u = [0.0; 2];
        unconstrain_stationary(&[0.5, -0.2], &mut u).unwrap();
        assert!((u[0] + 0.45834925).abs() < 1e-8 && (u[1] - 0.20412415).abs() < 1e-8);
    }

    #[test]
    fn a_unit_root_is_not_stationary() {
        let mut out = [0.0];
        assert!(unconstrain_stationary(&[1.0], &mut out).is_none());
        let mut out2 = [0.0; 2];
        assert!(unconstrain_stationary(&[0.5, 0.6], &mut out2).is_none());
        assert!(unconstrain_stationary(&[0.5, -0.2], &mut out2).is_some());
    }
}
