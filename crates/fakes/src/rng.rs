//! The fakes' deterministic generator: the same user, tag and key always draw the same
//! numbers, so any two requests for the same period agree.

/// splitmix64 seeded from an FNV-1a hash of (user, tag, key).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(user: &str, tag: &str, key: i64) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in user.bytes().chain(tag.bytes()).chain(key.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}
