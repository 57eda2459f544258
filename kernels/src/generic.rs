//! Kernels written once for every tier, beside the tier folders (like them, this file imports only
//! [`crate::ukernel`] and leaf modules, never an op module or the registry):
//! - the squeeze-excite gate's matrix-vector product ([`crate::ukernel::GemvFn`], registry entries
//!   [`crate::registry::Op::Gemv`]): one body over plain arrays, compiled once per tier under that
//!   tier's `#[target_feature]` (the compiler keeps a block of outputs in vector registers);
//! - the scalar tier's in-place activation ([`crate::ukernel::ActivationFn`]).

use crate::activation::Activation;
use crate::isa::Isa;
use crate::ukernel::Gemv;

/// Largest block of outputs the matrix-vector product keeps in registers: 8 AVX-512 registers
/// (enough independent FMA chains to cover the FMA latency), 16 AVX2 or NEON registers.
const fn gemv_block(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 128,
        _ => 64,
    }
}

#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    // Fused where the tier has FMA (every vector tier); the scalar tier must not call libm's fmaf.
    if FUSED { a.mul_add(b, c) } else { a * b + c }
}

/// Outputs `j0..j0 + B` of the product `m`, summed in a local array the compiler keeps in vector
/// registers, into `y`, which holds columns `base..` (`base <= j0`). Each output is its bias, then
/// one multiply-add per row in row order, whatever `B` and the window: a split into windows gives
/// the same bits.
#[inline(always)]
fn gemv_cols<const B: usize, const FUSED: bool>(
    m: &Gemv<'_>,
    j0: usize,
    y: &mut [f32],
    base: usize,
) {
    let (x, wt, n, bias) = (m.x, m.wt, m.n(), m.bias);
    let mut acc = [0.0f32; B];
    acc.copy_from_slice(&bias[j0..j0 + B]);
    for (row, &xi) in wt.chunks_exact(n).zip(x) {
        let w: &[f32; B] = row[j0..j0 + B].try_into().expect("block inside the row");
        for (a, &wv) in acc.iter_mut().zip(w) {
            *a = madd::<FUSED>(wv, xi, *a);
        }
    }
    y[j0 - base..j0 - base + B].copy_from_slice(&acc);
}

/// Columns `base..base + y.len()` of the product `m` into `y`, in blocks of at most `MAX` outputs.
#[inline(always)]
fn gemv_body<const MAX: usize, const FUSED: bool>(m: &Gemv<'_>, y: &mut [f32], base: usize) {
    let end = base + y.len();
    let mut j0 = base;
    while end - j0 >= MAX {
        gemv_cols::<MAX, FUSED>(m, j0, y, base);
        j0 += MAX;
    }
    // The rest in blocks of halving width (64, 32, 16, 8), then single columns.
    if MAX > 64 && end - j0 >= 64 {
        gemv_cols::<64, FUSED>(m, j0, y, base);
        j0 += 64;
    }
    if end - j0 >= 32 {
        gemv_cols::<32, FUSED>(m, j0, y, base);
        j0 += 32;
    }
    if end - j0 >= 16 {
        gemv_cols::<16, FUSED>(m, j0, y, base);
        j0 += 16;
    }
    if end - j0 >= 8 {
        gemv_cols::<8, FUSED>(m, j0, y, base);
        j0 += 8;
    }
    while j0 < end {
        gemv_cols::<1, FUSED>(m, j0, y, base);
        j0 += 1;
    }
}

/// Stamps out a tier's [`GemvFn`]: `gemv_entry!(name, Tier, fused, "features", "doc")` defines
/// `name`, [`gemv_body`] with the tier's block width, compiled with `#[target_feature(enable =
/// features)]` when features are given.
macro_rules! gemv_entry {
    ($(#[$cfg:meta])* $name:ident, $isa:ident, $fused:literal, $doc:literal $(, $features:literal)?) => {
        #[doc = concat!("[`GemvFn`] ", $doc)]
        ///
        /// # Safety
        /// The tier's features must be available; lengths as [`GemvFn`] (checked in debug builds,
        /// where the kernels would not notice a caller's mistake; the body indexes with bounds
        /// checks).
        $(#[$cfg])*
        $(#[target_feature(enable = $features)])?
        pub(crate) unsafe fn $name(m: &Gemv<'_>, y: &mut [f32], base: usize) {
            debug_assert!(m.lengths_ok(y.len(), base));
            gemv_body::<{ gemv_block(Isa::$isa) }, $fused>(m, y, base)
        }
    };
}

gemv_entry!(
    gemv_c64_scalar,
    Scalar,
    false,
    "of the scalar tier: a multiply then an add (no software `fmaf`), blocks of 64."
);
gemv_entry!(
    gemv_c64_portable,
    Portable,
    false,
    "of the portable tier: the scalar body, vectorised by the compiler with the target's baseline SIMD."
);
gemv_entry!(
    #[cfg(target_arch = "x86_64")]
    gemv_c64_avx2,
    Avx2,
    true,
    "with AVX2 and FMA, blocks of 64 columns.",
    "avx2,fma"
);
gemv_entry!(
    #[cfg(target_arch = "x86_64")]
    gemv_c128_avx512,
    Avx512,
    true,
    "with AVX-512F, blocks of 128 columns.",
    "avx512f,avx2,fma"
);
gemv_entry!(
    #[cfg(target_arch = "aarch64")]
    gemv_c64_neon,
    Neon,
    true,
    "with NEON, blocks of 64 columns.",
    "neon"
);

/// [`crate::ukernel::ActivationFn`] of the scalar tier: the scalar forms, element by element.
///
/// # Safety
/// None (`unsafe` only to share the kernels' function-pointer type).
pub(crate) unsafe fn activation_scalar(act: Activation, data: &mut [f32]) {
    for v in data.iter_mut() {
        *v = act.apply(*v);
    }
}
