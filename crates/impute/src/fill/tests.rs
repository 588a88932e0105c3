//! Behaviour of the fill strategies on small hand-made series.

use wearhouse_core::{ImputationStrategy, Metric};

use super::*;

fn cfg(max_gap: usize) -> FillConfig {
    FillConfig {
        max_gap,
        ..FillConfig::default()
    }
}

#[test]
fn forward_fill_carries_the_last_value_and_back_fills_the_start() {
    let v = [None, Some(3.0), None, None, Some(5.0), None];
    let f = fill(
        ImputationStrategy::ForwardBackFill,
        (0.0, 300.0),
        &v,
        &cfg(5),
    )
    .unwrap();
    assert_eq!(
        f.values,
        vec![
            Some(3.0),
            Some(3.0),
            Some(3.0),
            Some(3.0),
            Some(5.0),
            Some(5.0)
        ]
    );
    assert_eq!(f.imputed, vec![true, false, true, true, false, true]);
}

#[test]
fn a_gap_longer_than_the_maximum_stays_empty() {
    let v = [Some(10.0), None, None, None, Some(4.0), None, Some(2.0)];
    let f = fill(
        ImputationStrategy::ForwardBackFill,
        (0.0, 300.0),
        &v,
        &cfg(2),
    )
    .unwrap();
    assert_eq!(f.values[1..4], [None, None, None]);
    assert_eq!(f.values[5], Some(4.0));
    assert_eq!(f.imputed_count(), 1);
}

#[test]
fn linear_interpolation_fills_interior_gaps_only() {
    let v = [None, Some(90.0), None, None, Some(96.0), None];
    let f = fill(ImputationStrategy::Linear, (50.0, 100.0), &v, &cfg(10)).unwrap();
    assert_eq!(
        f.values,
        vec![None, Some(90.0), Some(92.0), Some(94.0), Some(96.0), None]
    );
}

#[test]
fn the_none_strategy_fills_nothing() {
    let v = [Some(1.0), None, Some(2.0)];
    let f = fill_metric(Metric::Floors, &v, &cfg(10)).unwrap();
    assert_eq!(f.values, v.to_vec());
    assert_eq!(f.method, ImputationStrategy::None);
}

#[test]
fn imputed_values_are_clipped_to_the_bounds() {
    let v = [Some(2.0), None, Some(-4.0)];
    let f = fill(ImputationStrategy::Linear, (0.0, 300.0), &v, &cfg(10)).unwrap();
    assert_eq!(f.values[1], Some(0.0));
}

/// A smooth deterministic heart-rate-like series with a little pseudo-random noise.
fn heart_rate(n: usize) -> Vec<Option<f64>> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut noise = 0.0;
    (0..n)
        .map(|t| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            noise = 0.8 * noise + 3.0 * u;
            Some(70.0 + 8.0 * (t as f64 / 90.0).sin() + noise)
        })
        .collect()
}

#[test]
fn arima_fills_short_gaps_from_the_smoother_and_leaves_non_wear_empty() {
    let mut v = heart_rate(600);
    v[100..105].fill(None);
    v[300..400].fill(None);
    let config = FillConfig {
        max_gap: 30,
        order: Some(ArimaOrder::new(1, 0, 0).unwrap()),
        ..FillConfig::default()
    };
    let f = fill_metric(Metric::HeartRate, &v, &config).unwrap();
    assert_eq!(f.method, ImputationStrategy::Arima);
    assert!(f.model.is_some());
    for t in 100..105 {
        let x = f.values[t].unwrap();
        assert!(f.imputed[t] && (25.0..=250.0).contains(&x));
        // The smoother bridges between both neighbours: the value lies near them, not at the
        // unconditional mean a long way off.
        let lo = v[99].unwrap().min(v[105].unwrap()) - 10.0;
        let hi = v[99].unwrap().max(v[105].unwrap()) + 10.0;
        assert!((lo..=hi).contains(&x), "{x} outside {lo}..{hi}");
        assert!(f.std_error[t].unwrap() > 0.0);
    }
    assert!(f.values[300..400].iter().all(Option::is_none));
    assert_eq!(f.values[0], v[0]);
}

#[test]
fn arima_with_too_little_data_falls_back_to_linear() {
    let v = [Some(70.0), None, Some(72.0), Some(71.0)];
    let f = fill_metric(Metric::HeartRate, &v, &cfg(10)).unwrap();
    assert_eq!(f.method, ImputationStrategy::Linear);
    assert_eq!(f.values[1], Some(71.0));
}
