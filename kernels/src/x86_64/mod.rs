//! x86-64 kernels: AVX2+FMA and AVX-512F.
//!
//! Pattern shared by every tier (the NEON tier can mirror it):
//! - the activation is a compile-time choice in hot loops: kernels take `const ACT: u8` (one of the
//!   `ACT_*` codes below), and their safe-typed entry point turns the runtime [`Activation`] into it
//!   once with [`with_act!`](crate::x86_64::with_act), so every activation gets its own monomorphised
//!   loop nest;
//! - each tier implements [`SimdF32`] for its register type (`__m256`, `__m512`) with
//!   `#[inline(always)]` bodies, and the loop nests are generic over it (see [`dwconv`]); they are
//!   instantiated and compiled for the ISA inside the tier's `#[target_feature]` functions. Keep
//!   each of those of moderate size (e.g. [`dwconv::Tier::block`]: one per activation, stride,
//!   valid rows and tail): a single function per activation holding the whole loop nest took
//!   minutes to compile (LLVM's GVN), and its register allocation was worse.

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod dwconv;
mod elementwise;
pub(crate) use elementwise::{activation_c8_avx2, activation_c16_avx512};
pub(crate) mod pointwise;
pub(crate) mod pointwise_bf16;

// The activation codes and `with_act!` are shared by every tier (`crate::activation`).
#[allow(unused_imports)] // each tier uses its own subset of the codes
pub(crate) use crate::activation::{
    ACT_GELU, ACT_HARDSWISH, ACT_IDENTITY, ACT_RELU, ACT_RELU6, ACT_SIGMOID, ACT_SILU, act_code,
    with_act,
};

/// One SIMD register of f32 lanes and the operations the generic loop nests need.
///
/// Every method is `#[inline(always)]` in the implementations and executes instructions of the
/// implementing tier.
///
/// # Safety
/// Implementors must only be used inside functions compiled with (and CPUs supporting) their target
/// features; callers of each method must uphold the `# Safety` section of that method.
pub(crate) unsafe trait SimdF32: Copy {
    /// f32 lanes per register.
    const LANES: usize;
    /// A lane mask selecting the first `n` lanes.
    type Mask: Copy;

    /// Mask of the first `n` lanes (none for 0).
    ///
    /// # Safety
    /// The tier's features must be available; `n <= LANES`.
    unsafe fn mask_first(n: usize) -> Self::Mask;
    /// All lanes zero.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn zero() -> Self;
    /// Every lane `x` (a broadcast; from memory it folds into the consuming instruction).
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn splat(x: f32) -> Self;
    /// Unaligned load of `LANES` floats.
    ///
    /// # Safety
    /// The tier's features must be available; `p..p + LANES` must be readable.
    unsafe fn load(p: *const f32) -> Self;
    /// Load of the lanes in `m` (the others are zero); nothing outside them is touched.
    ///
    /// # Safety
    /// The tier's features must be available; the lanes of `p` selected by `m` must be readable.
    unsafe fn load_masked(p: *const f32, m: Self::Mask) -> Self;
    /// Unaligned store of `LANES` floats.
    ///
    /// # Safety
    /// The tier's features must be available; `p..p + LANES` must be writable.
    unsafe fn store(p: *mut f32, v: Self);
    /// Store of the lanes in `m`; nothing outside them is touched.
    ///
    /// # Safety
    /// The tier's features must be available; the lanes of `p` selected by `m` must be writable.
    unsafe fn store_masked(p: *mut f32, m: Self::Mask, v: Self);
    /// `a * b + c` with one rounding.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// `a + b`.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn add(a: Self, b: Self) -> Self;
    /// The activation of code `ACT` (one of the `ACT_*` constants).
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn act<const ACT: u8>(v: Self) -> Self;
}

/// The activation test both x86 tiers run: `apply(act, xs)` evaluates one tier's vector activation
/// on exactly `lanes` floats.
#[cfg(test)]
pub(crate) mod act_test {
    use crate::activation::{Activation, GELU_ABS_TOLERANCE, GELU_SCALE};
    use crate::x86_64::act_code;

    /// Every activation equals the scalar form bit for bit (NaN stays NaN) on `xs`; returns the worst
    /// GELU error against the f64 reference.
    fn check_all(lanes: usize, apply: &impl Fn(Activation, &[f32]) -> Vec<f32>, xs: &[f32]) -> f64 {
        let mut worst_gelu = 0.0f64;
        for chunk in xs.chunks(lanes) {
            let mut a = vec![0.0f32; lanes];
            a[..chunk.len()].copy_from_slice(chunk);
            for act in Activation::ALL {
                assert_eq!(act_code(act) as usize, act as usize);
                let y = apply(act, &a);
                for (&x, &y) in a.iter().zip(&y) {
                    let s = act.apply(x);
                    assert!(
                        s.to_bits() == y.to_bits() || (s.is_nan() && y.is_nan()),
                        "{act:?}({x}) = {y}, scalar {s}"
                    );
                    if act == Activation::Gelu {
                        let e = crate::reference::activation(act, x as f64);
                        worst_gelu = worst_gelu.max((y as f64 - e).abs());
                    }
                }
            }
        }
        worst_gelu
    }

    /// A sweep of [-20, 20] in steps of 1/4096 and special values, bit for bit against the scalar
    /// forms; GELU within [`GELU_ABS_TOLERANCE`] of exact; an all-NaN vector gives NaN.
    pub(crate) fn check_tier(lanes: usize, apply: impl Fn(Activation, &[f32]) -> Vec<f32>) {
        let xs: Vec<f32> = (-20 * 4096..=20 * 4096)
            .map(|i| i as f32 / 4096.0)
            .collect();
        let worst = check_all(lanes, &apply, &xs);
        assert!(
            worst <= GELU_ABS_TOLERANCE as f64,
            "gelu worst abs err {worst}"
        );
        let special = [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e30,
            -1e30,
            f32::MAX,
            f32::MIN,
            1e-30,
            -1e-30,
            -100.0,
            100.0,
            6.5 / GELU_SCALE,
            -6.5 / GELU_SCALE,
        ];
        check_all(lanes, &apply, &special);
        let y = apply(Activation::Gelu, &vec![f32::NAN; lanes]);
        assert!(y.iter().all(|v| v.is_nan()));
    }
}
