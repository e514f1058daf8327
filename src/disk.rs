//! The free space of the filesystem a store writes to, and the low-space warning.

use std::path::Path;

/// Bytes an unprivileged writer may still use on the filesystem holding `dir` (what
/// `df` calls available: the blocks reserved for root are not counted).
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Says once when free space falls under a threshold, and once when it is back over it
/// by a margin: space hovering at the line does not fill the log.
#[derive(Debug)]
pub struct LowSpace {
    threshold: u64,
    low: bool,
}

/// What changed with a reading.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Low,
    Recovered,
}

impl LowSpace {
    pub fn new(threshold: u64) -> LowSpace {
        LowSpace {
            threshold,
            low: false,
        }
    }

    /// Takes a reading of the free bytes.
    pub fn observe(&mut self, free: u64) -> Option<Change> {
        if !self.low && free < self.threshold {
            self.low = true;
            return Some(Change::Low);
        }
        // Back only past a tenth more than the threshold.
        let back = self.threshold.saturating_add(self.threshold / 10);
        if self.low && free >= back {
            self.low = false;
            return Some(Change::Recovered);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_bytes_of_a_real_directory() {
        let free = free_bytes(&std::env::temp_dir());
        assert!(free.is_ok(), "{free:?}");
        assert!(free_bytes(Path::new("/no/such/dir")).is_err());
    }

    #[test]
    fn low_space_is_said_once_each_way() {
        let mut low = LowSpace::new(1000);
        assert_eq!(low.observe(5000), None);
        assert_eq!(low.observe(999), Some(Change::Low));
        assert_eq!(low.observe(500), None);
        // At the line, or just over it, says nothing new.
        assert_eq!(low.observe(1000), None);
        assert_eq!(low.observe(1099), None);
        assert_eq!(low.observe(1100), Some(Change::Recovered));
        assert_eq!(low.observe(5000), None);
        assert_eq!(low.observe(10), Some(Change::Low));
    }

    #[test]
    fn a_zero_threshold_never_warns() {
        let mut low = LowSpace::new(0);
        assert_eq!(low.observe(0), None);
    }
}
