//! The `fit` command end to end: the real binary on a CSV file, JSON on standard output.

use std::io::Write;
use std::process::Command;

use crate::support::json_output;

fn csv_with_gaps() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "timestamp,value").unwrap();
    let mut x = 0.0_f64;
    let mut state = 12345_u64;
    for t in 0..300 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        x = 0.7 * x + 4.0 * u;
        let ts = format!("2024-03-01T{:02}:{:02}:00Z", t / 60, t % 60);
        let missing = (50..53).contains(&t) || (200..280).contains(&t);
        if missing {
            writeln!(file, "{ts},").unwrap();
        } else {
            writeln!(file, "{ts},{:.2}", 70.0 + x).unwrap();
        }
    }
    file
}

fn run(args: &[&str]) -> serde_json::Value {
    json_output(Command::new(env!("CARGO_BIN_EXE_wearhouse-impute")).args(args))
}

#[test]
fn fit_with_a_fixed_order_prints_the_model_and_the_filled_series() {
    let file = csv_with_gaps();
    let report = run(&[
        "fit",
        "--input",
        file.path().to_str().unwrap(),
        "--order",
        "1,0,1",
        "--max-gap",
        "10",
    ]);
    let model = &report["model"];
    assert_eq!(model["order"], serde_json::json!({"p": 1, "d": 0, "q": 1}));
    let names: Vec<&str> = model["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["const", "ar.L1", "ma.L1", "sigma2"]);
    let ll = model["loglike"].as_f64().unwrap();
    assert!((model["aic"].as_f64().unwrap() - (8.0 - 2.0 * ll)).abs() < 1e-9);
    let series = report["series"].as_array().unwrap();
    assert_eq!(series.len(), 300);
    assert_eq!(series[51]["imputed"], true);
    assert!(series[51]["value"].as_f64().is_some());
    assert_eq!(series[51]["timestamp"], "2024-03-01T00:51:00Z");
    assert!(
        series[250]["value"].is_null(),
        "an 80-point gap is non-wear"
    );
    assert_eq!(report["imputed"], 3);
    assert_eq!(report["left_missing"], 80);
}

#[test]
fn fit_without_an_order_selects_one_by_aic() {
    let file = csv_with_gaps();
    let report = run(&[
        "fit",
        "--input",
        file.path().to_str().unwrap(),
        "--max-p",
        "1",
        "--max-q",
        "1",
    ]);
    let order = &report["model"]["order"];
    assert!(order["p"].as_u64().unwrap() <= 1 && order["q"].as_u64().unwrap() <= 1);
}

#[test]
fn a_malformed_order_is_rejected_with_a_message() {
    let file = csv_with_gaps();
    let out = Command::new(env!("CARGO_BIN_EXE_wearhouse-impute"))
        .args([
            "fit",
            "--input",
            file.path().to_str().unwrap(),
            "--order",
            "1,0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("p,d,q"));
}
