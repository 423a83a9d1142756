//! Axis ticks and number labels: the one helper that formats numbers for people in figures
//! (SI prefixes, durations, tick steps). Ticks are chosen here, not by plotters, so each label
//! is formatted knowing the step: no `-5.6e-17` for zero, no `100000M` for 100G, one format per
//! axis. This file must not draw.

/// SI prefixes from 10^-9 to 10^12 (the range figures need).
const PREFIXES: [(i32, &str); 8] = [
    (-9, "n"),
    (-6, "µ"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
    (12, "T"),
];

/// `v` with three significant digits and an SI prefix: `1.5M`, `100G`, `25k`, `980`, `12.3`,
/// `0.5` (values in [0.001, 1) keep a plain decimal, which reads better for fractions), `2.5µ`.
pub fn si(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1.0).contains(&a) {
        return trim(format!("{:.*}", sig_decimals(a, 3), v));
    }
    let exp = (a.log10().floor() as i32).div_euclid(3) * 3;
    let exp = exp.clamp(PREFIXES[0].0, PREFIXES[PREFIXES.len() - 1].0);
    let mut scaled = v / 10f64.powi(exp);
    let mut exp = exp;
    // 999.7k rounds to 1000k: move up one prefix.
    if (scaled.abs() * 100.0).round() / 100.0 >= 999.5 && exp < PREFIXES[PREFIXES.len() - 1].0 {
        exp += 3;
        scaled = v / 10f64.powi(exp);
    }
    let prefix = PREFIXES
        .iter()
        .find(|(e, _)| *e == exp)
        .map(|(_, p)| *p)
        .unwrap_or("");
    format!(
        "{}{prefix}",
        trim(format!("{:.*}", sig_decimals(scaled.abs(), 3), scaled))
    )
}

/// Decimals that give `sig` significant digits for a magnitude `a > 0`.
fn sig_decimals(a: f64, sig: i32) -> usize {
    (sig - 1 - a.log10().floor() as i32).max(0) as usize
}

/// Drops trailing zeros of a decimal (`1.50` → `1.5`, `2.00` → `2`).
fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A duration given in milliseconds, in the unit that reads naturally: `850 ms`, `1.2 s`, `35 µs`.
pub fn duration_ms(ms: f64) -> String {
    if !ms.is_finite() {
        return "n/a".into();
    }
    let a = ms.abs();
    let (v, unit) = if a == 0.0 {
        (0.0, "ms")
    } else if a >= 1000.0 {
        (ms / 1000.0, "s")
    } else if a >= 1.0 {
        (ms, "ms")
    } else if a >= 1e-3 {
        (ms * 1e3, "µs")
    } else {
        (ms * 1e6, "ns")
    };
    let digits = if v == 0.0 {
        0
    } else {
        sig_decimals(v.abs(), 3)
    };
    format!("{} {unit}", trim(format!("{v:.digits$}")))
}

/// Linear ticks: a 1-2-5 step giving at most `max_ticks` ticks over `[lo, hi]`, the ticks, and the
/// decimals that step needs. Tick values are multiples of the step computed as `i * step`, and
/// values within a millionth of a step from zero are exactly zero.
pub fn linear_ticks(lo: f64, hi: f64, max_ticks: usize) -> (Vec<f64>, usize) {
    let span = (hi - lo).abs().max(f64::MIN_POSITIVE);
    let raw = span / max_ticks.max(2) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= max_ticks.max(2) as f64)
        .unwrap_or(10.0 * mag);
    // The epsilon keeps -0.3 / 0.1 = -2.9999999999999996 from dropping the first tick.
    let first = (lo.min(hi) / step - 1e-9).ceil() as i64;
    let last = (lo.max(hi) / step + 1e-9).floor() as i64;
    let decimals = (-(step.log10().floor()) as i32).max(0) as usize;
    // Rounded to the step's decimals: 3 * 0.1 is 0.30000000000000004 otherwise.
    let scale = 10f64.powi(decimals as i32);
    let ticks = (first..=last)
        .map(|i| {
            let v = (i as f64 * step * scale).round() / scale;
            if v.abs() < step * 1e-6 {
                0.0
            } else {
                v
            }
        })
        .collect();
    (ticks, decimals)
}

/// A linear tick label with the axis's decimals (so `0.0, 0.5, 1.0` not `0, 0.5, 1`).
pub fn linear_label(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    // "-0.0" reads as a value below zero.
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

/// Decades `10^a ..= 10^b` as exponents (ticks of a log10-transformed axis).
pub fn decade_ticks(lo_exp: f64, hi_exp: f64) -> Vec<f64> {
    let (a, b) = (lo_exp.ceil() as i32, hi_exp.floor() as i32);
    (a..=b).map(f64::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_prefixes() {
        assert_eq!(si(0.0), "0");
        assert_eq!(si(1e11), "100G");
        assert_eq!(si(1e5), "100k");
        assert_eq!(si(1_500_000.0), "1.5M");
        assert_eq!(si(25_000.0), "25k");
        assert_eq!(si(999_700.0), "1M");
        assert_eq!(si(980.0), "980");
        assert_eq!(si(12.345), "12.3");
        assert_eq!(si(1.0), "1");
        assert_eq!(si(0.5), "0.5");
        assert_eq!(si(0.0123), "0.0123");
        assert_eq!(si(2.5e-6), "2.5µ");
        assert_eq!(si(-25_000.0), "-25k");
        assert_eq!(si(f64::NAN), "n/a");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms(850.0), "850 ms");
        assert_eq!(duration_ms(1234.0), "1.23 s");
        assert_eq!(duration_ms(0.035), "35 µs");
        assert_eq!(duration_ms(0.0001), "100 ns");
        assert_eq!(duration_ms(2.0), "2 ms");
        assert_eq!(duration_ms(0.0), "0 ms");
    }

    #[test]
    fn linear_ticks_have_one_format_and_a_true_zero() {
        let (t, d) = linear_ticks(-0.3, 0.3, 7);
        assert_eq!(t, [-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3]);
        assert_eq!(d, 1);
        let labels: Vec<String> = t.iter().map(|v| linear_label(*v, d)).collect();
        assert_eq!(labels[3], "0.0");
        assert_eq!(labels[0], "-0.3");
        let (t, d) = linear_ticks(0.0, 100.0, 6);
        assert_eq!(t, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(d, 0);
        let (t, _) = linear_ticks(0.0, 2750.0, 6);
        assert_eq!(t, [0.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0]);
        assert_eq!(linear_label(-1e-17, 2), "0.00");
    }

    #[test]
    fn decades() {
        assert_eq!(
            decade_ticks(-3.0, 3.0),
            [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(decade_ticks(0.5, 2.2), [1.0, 2.0]);
    }
}
