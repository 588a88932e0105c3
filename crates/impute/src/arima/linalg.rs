//! The few dense linear-algebra kernels the ARIMA code needs, on row-major slices. The
//! systems are tiny (at most 49 unknowns), so Gaussian elimination with partial pivoting
//! is exact enough and avoids a linear-algebra dependency.

/// Solves `a x = b` for `x` (written into `b`); `a` is `n × n`, row-major, and is destroyed.
/// Returns `None` when `a` is singular to working precision.
pub fn solve_in_place(a: &mut [f64], b: &mut [f64], n: usize) -> Option<()> {
    let scale = a.iter().fold(0.0_f64, |acc, x| acc.max(x.abs())).max(1.0);
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap_or(col);
        let p = a[pivot * n + col].abs();
        if p.is_nan() || p <= 1e-13 * scale {
            return None;
        }
        if pivot != col {
            for j in 0..n {
                a.swap(col * n + j, pivot * n + j);
            }
            b.swap(col, pivot);
        }
        let diag = a[col * n + col];
        for i in col + 1..n {
            let f = a[i * n + col] / diag;
            if f != 0.0 {
                for j in col..n {
                    a[i * n + j] -= f * a[col * n + j];
                }
                b[i] -= f * b[col];
            }
        }
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for j in i + 1..n {
            s -= a[i * n + j] * b[j];
        }
        b[i] = s / a[i * n + i];
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_system_is_solved() {
        let mut a = vec![0.0, 2.0, 1.0, 1.0, 1.0, 0.0, 3.0, 0.0, 1.0];
        let mut b = vec![5.0, 3.0, 6.0];
        solve_in_place(&mut a, &mut b, 3).unwrap();
        let x = [b[0], b[1], b[2]];
        assert!((0.0 * x[0] + 2.0 * x[1] + x[2] - 5.0).abs() < 1e-12);
        assert!((x[0] + x[1] - 3.0).abs() < 1e-12);
        assert!((3.0 * x[0] + x[2] - 6.0).abs() < 1e-12);
    }

    #[test]
    fn a_singular_system_is_refused() {
        let mut a = vec![1.0, 2.0, 2.0, 4.0];
        let mut b = vec![1.0, 2.0];
        assert!(solve_in_place(&mut a, &mut b, 2).is_none());
    }
}
