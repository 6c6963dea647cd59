//! The random-number algorithms LoadGen gets from libstdc++, bit for bit.
//!
//! LoadGen's sample sets, sample choices and Server arrival times come from
//! `std::mt19937` driven through libstdc++'s (GCC >= 11) distributions. Rust's
//! `rand` implements different algorithms for the same names, so the same seed
//! would give different queries; this module ports the exact libstdc++ code
//! paths instead:
//!
//! * [`Mt19937`]: the engine, seeded with `seed mod 2^32` (LoadGen passes
//!   64-bit seeds to a constructor taking `uint_fast32_t` words of 32 bits).
//! * [`uniform_int`]: `std::uniform_int_distribution` (Lemire's nearly
//!   divisionless method, plus libstdc++'s "upscaling" path for ranges wider
//!   than 32 bits).
//! * [`shuffle`]: `std::shuffle`, including the optimisation that draws two
//!   swap positions from one random number when the range allows it.
//! * [`generate_canonical`], [`uniform_real`], [`exponential`]: the real
//!   distributions LoadGen uses (accuracy-log sampling, Poisson arrivals).
//!
//! Everything is pure and allocation-free.

/// `std::mt19937`: the 32-bit Mersenne Twister.
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; N],
    index: usize,
}

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The 624-word state is noise in a Debug dump; the position is enough
        // to tell two engines apart while debugging.
        f.debug_struct("Mt19937")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Default for Mt19937 {
    /// A default-constructed `std::mt19937` (seed 5489).
    fn default() -> Self {
        Mt19937::new(Mt19937::DEFAULT_SEED)
    }
}

impl Mt19937 {
    /// The seed of a default-constructed `std::mt19937`.
    pub const DEFAULT_SEED: u64 = 5489;

    /// Seeds the engine as `std::mt19937(seed)` does: only the low 32 bits
    /// of the seed matter.
    pub fn new(seed: u64) -> Self {
        let mut state = [0u32; N];
        // Truncation is the point: the C++ engine keeps seed mod 2^32.
        state[0] = seed as u32;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: N }
    }

    /// The smallest value the engine produces.
    pub const MIN: u32 = 0;
    /// The largest value the engine produces.
    pub const MAX: u32 = u32::MAX;

    #[inline(never)]
    fn twist(&mut self) {
        #[inline(always)]
        fn mix(cur: u32, next: u32, far: u32) -> u32 {
            let y = (cur & UPPER_MASK) | (next & LOWER_MASK);
            // (y & 1) * MATRIX_A without a branch.
            far ^ (y >> 1) ^ ((y & 1).wrapping_neg() & MATRIX_A)
        }
        let s = &mut self.state;
        // The standard recurrence, split so no index needs a modulo.
        for i in 0..N - M {
            s[i] = mix(s[i], s[i + 1], s[i + M]);
        }
        for i in N - M..N - 1 {
            s[i] = mix(s[i], s[i + 1], s[i + M - N]);
        }
        s[N - 1] = mix(s[N - 1], s[0], s[M - 1]);
        self.index = 0;
    }

    /// The next 32-bit output (`operator()`).
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let y = self.state[self.index];
        self.index += 1;
        temper(y)
    }

    /// Fills `out` with the next `out.len()` outputs: the same values as
    /// that many [`Mt19937::next_u32`] calls, tempered a run of the state at
    /// a time in a loop the compiler vectorizes (with the accuracy-log draws
    /// made this way, the generation of a 4M-sample Offline test went from
    /// 45 to 28 ms).
    pub fn fill_u32(&mut self, mut out: &mut [u32]) {
        while !out.is_empty() {
            if self.index >= N {
                self.twist();
            }
            let take = out.len().min(N - self.index);
            let (head, rest) = out.split_at_mut(take);
            for (o, &s) in head
                .iter_mut()
                .zip(&self.state[self.index..self.index + take])
            {
                *o = temper(s);
            }
            self.index += take;
            out = rest;
        }
    }

    /// Skips `n` outputs (`discard`).
    pub fn discard(&mut self, n: u64) {
        for _ in 0..n {
            self.next_u32();
        }
    }
}

/// The engine's tempering of one state word into an output.
#[inline(always)]
fn temper(mut y: u32) -> u32 {
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c_5680;
    y ^= (y << 15) & 0xefc6_0000;
    y ^= y >> 18;
    y
}

/// `std::uniform_int_distribution<T>(a, b)(g)` for a 32-bit engine, as
/// libstdc++ >= 11 computes it, for any range that fits in 64 bits.
///
/// Signed C++ distributions (`uniform_int_distribution<int>`) draw through the
/// same unsigned arithmetic, so a signed range `[0, n]` is the unsigned range
/// `[0, n]`. Requires `a <= b` (like the C++ precondition); the range is
/// computed with wrapping arithmetic, so `a > b` draws from a huge range
/// rather than panicking.
#[inline]
pub fn uniform_int(g: &mut Mt19937, a: u64, b: u64) -> u64 {
    a.wrapping_add(uniform_below_or_eq(g, b.wrapping_sub(a)))
}

/// The engine's range, `max() - min()`.
const URNG_RANGE: u64 = Mt19937::MAX as u64 - Mt19937::MIN as u64;

/// A uniform value in `[0, urange]`.
#[inline]
fn uniform_below_or_eq(g: &mut Mt19937, urange: u64) -> u64 {
    if urange < URNG_RANGE {
        // Downscaling: Lemire's method with a 64-bit product.
        lemire(g, (urange + 1) as u32)
    } else {
        wide_uniform(g, urange)
    }
}

/// Ranges of 2^32 values or more: the engine output itself, or libstdc++'s
/// "upscaling", which combines a recursive draw for the high part with one
/// engine output for the low 32 bits and rejects wrap-around and values past
/// the range.
#[cold]
#[inline(never)]
fn wide_uniform(g: &mut Mt19937, urange: u64) -> u64 {
    if urange == URNG_RANGE {
        return u64::from(g.next_u32());
    }
    const ERNG_RANGE: u64 = URNG_RANGE + 1;
    loop {
        let high = uniform_below_or_eq(g, urange / ERNG_RANGE);
        let tmp = ERNG_RANGE.wrapping_mul(high);
        let ret = tmp.wrapping_add(u64::from(g.next_u32()));
        if !(ret > urange || ret < tmp) {
            return ret;
        }
    }
}

/// `__uniform_int_dist::_S_nd`: a value in `[0, range)` for `range >= 1`.
#[inline]
fn lemire(g: &mut Mt19937, range: u32) -> u64 {
    let mut product = u64::from(g.next_u32()) * u64::from(range);
    let mut low = product as u32;
    if low < range {
        let threshold = range.wrapping_neg() % range;
        while low < threshold {
            product = u64::from(g.next_u32()) * u64::from(range);
            low = product as u32;
        }
    }
    product >> 32
}

/// `std::shuffle(v.begin(), v.end(), g)` with libstdc++'s algorithm.
///
/// When `n * n` fits in the engine's range, libstdc++ draws one number per
/// two swaps (`__gen_two_uniform_ints`); otherwise it does the classic
/// Fisher-Yates pass from the front. Both are reproduced.
pub fn shuffle<T>(v: &mut [T], g: &mut Mt19937) {
    let n = v.len();
    if n == 0 {
        return;
    }
    let urange = n as u64;
    if URNG_RANGE / urange >= urange {
        let mut i = 1usize;
        // An even length leaves an odd number of positions to swap: do one
        // up front so the rest go in pairs.
        if n.is_multiple_of(2) {
            let j = uniform_int(g, 0, 1) as usize;
            v.swap(i, j);
            i += 1;
        }
        while i != n {
            let swap_range = i as u64 + 1;
            let x = uniform_int(g, 0, swap_range * (swap_range + 1) - 1);
            let (p1, p2) = (x / (swap_range + 1), x % (swap_range + 1));
            v.swap(i, p1 as usize);
            i += 1;
            v.swap(i, p2 as usize);
            i += 1;
        }
        return;
    }
    for i in 1..n {
        let j = uniform_int(g, 0, i as u64) as usize;
        v.swap(i, j);
    }
}

/// `std::generate_canonical<double, 53>(g)`: two engine outputs combined
/// into a double in `[0, 1)`.
///
/// The sum is formed in double arithmetic exactly as libstdc++ does (so the
/// 64-bit value is rounded to 53 bits before the division), and a result
/// that rounds up to 1.0 is replaced by the largest double below 1.
#[inline]
pub fn generate_canonical(g: &mut Mt19937) -> f64 {
    let first = g.next_u32();
    canonical_of(first, g.next_u32())
}

/// [`generate_canonical`] of the two engine outputs it draws, in order.
#[inline]
pub fn canonical_of(first: u32, second: u32) -> f64 {
    const RADIX: f64 = 4_294_967_296.0; // 2^32
    let sum = f64::from(first) + f64::from(second) * RADIX;
    let r = sum / (RADIX * RADIX);
    if r >= 1.0 {
        // nextafter(1.0, 0.0)
        1.0 - f64::EPSILON / 2.0
    } else {
        r
    }
}

/// `std::uniform_real_distribution<double>(a, b)(g)`.
#[inline]
pub fn uniform_real(g: &mut Mt19937, a: f64, b: f64) -> f64 {
    generate_canonical(g) * (b - a) + a
}

/// `std::exponential_distribution<double>(lambda)(g)`: `-ln(1 - U) / lambda`.
#[inline]
pub fn exponential(g: &mut Mt19937, lambda: f64) -> f64 {
    -(1.0 - generate_canonical(g)).ln() / lambda
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_outputs_equal_outputs_one_at_a_time() {
        let mut bulk = Mt19937::new(42);
        let mut one = Mt19937::new(42);
        // Runs that end inside a block, on its end and across it.
        for len in [0usize, 1, 7, 616, 624, 1000, 1249, 3] {
            let mut out = vec![0u32; len];
            bulk.fill_u32(&mut out);
            let want: Vec<u32> = (0..len).map(|_| one.next_u32()).collect();
            assert_eq!(out, want, "{len}");
        }
        assert_eq!(bulk.next_u32(), one.next_u32());
    }

    #[test]
    fn mt19937_known_answers() {
        // The C++ standard fixes the 10000th output of a default-constructed
        // mt19937 ([rand.predef]).
        let mut g = Mt19937::default();
        g.discard(9999);
        assert_eq!(g.next_u32(), 4_123_659_995);
        // First outputs for seed 5489 (the reference mt19937ar.c sequence).
        let mut g = Mt19937::new(5489);
        assert_eq!(
            [g.next_u32(), g.next_u32(), g.next_u32()],
            [3_499_211_612, 581_869_302, 3_890_346_734]
        );
    }

    #[test]
    fn seed_is_taken_mod_2_pow_32() {
        let mut a = Mt19937::new(2_085_463_073_848_966_840);
        let mut b = Mt19937::new(2_085_463_073_848_966_840 % (1 << 32));
        for _ in 0..1000 {
            assert_eq!(a.next_u32(), b.next_u32());
        }
    }

    #[test]
    fn uniform_int_stays_in_range_and_covers_it() {
        let mut g = Mt19937::new(1);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = uniform_int(&mut g, 3, 9);
            assert!((3..=9).contains(&v));
            seen[(v - 3) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        // A degenerate range consumes one output and returns the bound.
        let mut g = Mt19937::new(1);
        let mut h = Mt19937::new(1);
        assert_eq!(uniform_int(&mut g, 5, 5), 5);
        h.next_u32();
        assert_eq!(g.next_u32(), h.next_u32());
    }

    #[test]
    fn uniform_int_full_and_wide_ranges() {
        // The full 32-bit range returns the engine output unchanged.
        let mut g = Mt19937::new(42);
        let mut h = Mt19937::new(42);
        assert_eq!(
            uniform_int(&mut g, 0, u64::from(u32::MAX)),
            u64::from(h.next_u32())
        );
        // Wider ranges combine two outputs and stay in range.
        let mut g = Mt19937::new(42);
        for _ in 0..1000 {
            let v = uniform_int(&mut g, 10, 10 + (1u64 << 40));
            assert!((10..=10 + (1u64 << 40)).contains(&v));
        }
        let mut g = Mt19937::new(7);
        let _ = uniform_int(&mut g, 0, u64::MAX);
    }

    #[test]
    fn shuffle_is_a_permutation_on_both_paths() {
        for n in [0usize, 1, 2, 3, 10, 11, 65_535, 65_536, 70_001] {
            let mut v: Vec<u32> = (0..n as u32).collect();
            let mut g = Mt19937::new(n as u64);
            shuffle(&mut v, &mut g);
            let mut sorted = v.clone();
            sorted.sort_unstable();
            assert!(sorted.iter().enumerate().all(|(i, &x)| x == i as u32));
            if n > 3 {
                assert!(v.iter().enumerate().any(|(i, &x)| x != i as u32));
            }
        }
    }

    #[test]
    fn canonical_and_real_distributions_are_in_range() {
        let mut g = Mt19937::new(9);
        for _ in 0..10_000 {
            let u = generate_canonical(&mut g);
            assert!((0.0..1.0).contains(&u));
            let e = exponential(&mut g, 1000.0);
            assert!(e >= 0.0 && e.is_finite());
            let r = uniform_real(&mut g, 2.0, 3.0);
            assert!((2.0..3.0).contains(&r));
        }
    }
}
