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

pub(crate) mod act;
pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod dwconv;
mod elementwise;
pub(crate) use elementwise::{activation_c8_avx2, activation_c16_avx512};
pub(crate) mod pointwise;
pub(crate) mod pointwise_bf16;

/// A tier's own kernel tests: runs `check` when this CPU has `isa`; on a CPU without it, checks
/// instead that the safe API refuses the tier, so the test asserts something on every CPU. (The
/// conformance suite in `tests/` runs every registered kernel of every available tier.)
#[cfg(test)]
pub(crate) fn test_tier(isa: crate::Isa, check: impl FnOnce()) {
    if isa.is_available() {
        check()
    } else {
        assert!(
            crate::Kernels::with_isa(isa).is_err(),
            "this CPU lacks {isa}, yet Kernels::with_isa accepted it"
        );
    }
}

// The activation codes and `with_act!` are shared by every tier (`crate::activation`).
#[allow(unused_imports)] // each tier uses its own subset of the codes
pub(crate) use crate::activation::{
    ACT_GELU, ACT_HARDSWISH, ACT_IDENTITY, ACT_RELU, ACT_RELU6, ACT_SIGMOID, ACT_SILU, act_code,
    with_act,
};

/// The vector trait every hand tier implements (defined beside the k x k loop nest, which the
/// NEON and portable tiers share).
pub(crate) use crate::dwconv_kxk::SimdF32;
