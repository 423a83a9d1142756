//! `--shard K/N`: a contiguous slice of the tweets (1-based K), so that `merge` can concatenate
//! shards in K order and get the unsharded order back.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardSpec {
    /// 1-based shard index.
    pub k: usize,
    pub n: usize,
}

impl ShardSpec {
    /// The half-open range of item indices this shard takes out of `len`.
    pub fn range(&self, len: usize) -> std::ops::Range<usize> {
        (len * (self.k - 1) / self.n)..(len * self.k / self.n)
    }
}

impl FromStr for ShardSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("invalid shard {s:?}: expected K/N with 1 <= K <= N (e.g. 2/8)");
        let (k, n) = s.split_once('/').ok_or_else(err)?;
        let k: usize = k.trim().parse().map_err(|_| err())?;
        let n: usize = n.trim().parse().map_err(|_| err())?;
        if n == 0 || k == 0 || k > n {
            return Err(err());
        }
        Ok(ShardSpec { k, n })
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_everything_once() {
        for n in 1..7 {
            let mut covered = Vec::new();
            for k in 1..=n {
                covered.extend(ShardSpec { k, n }.range(10));
            }
            assert_eq!(covered, (0..10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn parse() {
        assert_eq!(
            "2/8".parse::<ShardSpec>().unwrap(),
            ShardSpec { k: 2, n: 8 }
        );
        assert!("0/8".parse::<ShardSpec>().is_err());
        assert!("9/8".parse::<ShardSpec>().is_err());
        assert!("x".parse::<ShardSpec>().is_err());
    }
}
