//! Activation over a slice with the vector activations of each x86-64 tier (element-wise GELU and
//! friends where they are not fused into a kernel's store).

use core::arch::x86_64::{__m256, __m512};

use crate::activation::Activation;
use crate::x86_64::{SimdF32, with_act};

/// `data[i] = act(data[i])` with vector type `V`.
///
/// # Safety
/// `V`'s target features must be available.
#[inline(always)]
unsafe fn act_slice<V: SimdF32, const ACT: u8>(data: &mut [f32]) {
    let mut chunks = data.chunks_exact_mut(V::LANES);
    for c in &mut chunks {
        // SAFETY: `c` holds exactly LANES floats; the features are available (contract).
        unsafe { V::store(c.as_mut_ptr(), V::act::<ACT>(V::load(c.as_ptr()))) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        // SAFETY: the mask selects the `tail.len()` (< LANES) floats of `tail` only.
        unsafe {
            let m = V::mask_first(tail.len());
            V::store_masked(
                tail.as_mut_ptr(),
                m,
                V::act::<ACT>(V::load_masked(tail.as_ptr(), m)),
            );
        }
    }
}

/// [`crate::elementwise::ActivationFn`] with AVX2 (8 lanes, masked tail).
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn activation_c8_avx2(act: Activation, data: &mut [f32]) {
    // SAFETY: compiled with and called only with AVX2+FMA, the features of `__m256`'s `SimdF32`.
    unsafe { with_act!(act, |A| act_slice::<__m256, A>(data)) }
}

/// [`crate::elementwise::ActivationFn`] with AVX-512F (16 lanes, masked tail).
///
/// # Safety
/// AVX-512F, AVX2 and FMA must be available.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn activation_c16_avx512(act: Activation, data: &mut [f32]) {
    // SAFETY: compiled with and called only with AVX-512F, the features of `__m512`'s `SimdF32`.
    unsafe { with_act!(act, |A| act_slice::<__m512, A>(data)) }
}
