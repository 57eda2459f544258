//! Activation over a slice with the vector activations of each x86-64 tier (element-wise GELU and
//! friends where they are not fused into a kernel's store).

use core::arch::x86_64::{__m256, __m512};

use crate::activation::Activation;
use crate::isa::Isa;
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

/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn act_avx2(act: Activation, data: &mut [f32]) {
    // SAFETY: compiled with and called only with AVX2+FMA, the features of `__m256`'s `SimdF32`.
    unsafe { with_act!(act, |A| act_slice::<__m256, A>(data)) }
}

/// # Safety
/// AVX-512F, AVX2 and FMA must be available.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn act_avx512(act: Activation, data: &mut [f32]) {
    // SAFETY: compiled with and called only with AVX-512F, the features of `__m512`'s `SimdF32`.
    unsafe { with_act!(act, |A| act_slice::<__m512, A>(data)) }
}

/// Applies `act` in place with the vector code of `isa` (AVX2 or AVX-512; anything else, or a tier
/// this CPU lacks, takes the portable scalar loop).
pub(crate) fn act_in_place(isa: Isa, act: Activation, data: &mut [f32]) {
    match isa {
        // SAFETY: the tier was checked available on this CPU just now.
        Isa::Avx2 if isa.is_available() => unsafe { act_avx2(act, data) },
        // SAFETY: as above.
        Isa::Avx512 if isa.is_available() => unsafe { act_avx512(act, data) },
        _ => data.iter_mut().for_each(|v| *v = act.apply(*v)),
    }
}
