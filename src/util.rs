//! Small shared helpers with no better home: a seeded PRNG (hand-written so that the bootstrap and
//! the synthetic masks are identical on every platform and crate version) and UTC calendar dates
//! (the `time` crate).

/// The splitmix64 generator (Steele, Lea, Flood 2014): tiny, fast, and fully determined by its
/// seed. Used for the paired bootstrap and the synthetic SMNER masks.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-40 for n < 2^24).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in [0, 1), 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// `(year, month, day, hour, minute, second)` in UTC from Unix seconds. Seconds past the
/// `time` crate's range (year 9999) clamp to its last second rather than panicking.
pub fn utc_parts(unix: u64) -> (i64, i64, i64, u64, u64, u64) {
    let last = time::PrimitiveDateTime::MAX.assume_utc();
    let t = i64::try_from(unix)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(last);
    (
        i64::from(t.year()),
        i64::from(u8::from(t.month())),
        i64::from(t.day()),
        u64::from(t.hour()),
        u64::from(t.minute()),
        u64::from(t.second()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // Reference outputs of splitmix64 seeded with 1234567 (Vigna's C implementation).
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_parts(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc_parts(1_795_000_000), (2026, 11, 18, 11, 6, 40));
        // Leap day (2024-02-29 12:00:00 UTC) and the end of `time`'s range.
        assert_eq!(utc_parts(1_709_208_000), (2024, 2, 29, 12, 0, 0));
        assert_eq!(utc_parts(u64::MAX), (9999, 12, 31, 23, 59, 59));
    }
}
