//! Depthwise, AVX-512F. 3x3: channel blocks of two `__m512` (32 channels, the 18 taps in
//! registers), steps of 4 output columns, channel tails with `k`-masked loads and stores (the loop
//! nest is [`crate::x86_64::dwconv`]). k x k: one `__m512` per block (16 channels, so channel
//! counts such as 40 and 72 waste at most half a register), steps of 8 outputs at stride 1 and of 4
//! at stride 2: the k taps of a kernel row, 8 accumulators and the input column use at most 16 of
//! the 32 `zmm` (loop nest: [`crate::dwconv_kxk`]).
//!
//! 3x3 blocking: 18 taps + 8 accumulators + inputs + row sums fit the 32 `zmm` for two registers
//! per block, the taps kept in registers.

use core::arch::x86_64::__m512;

crate::x86_64::dwconv::dwconv_tier!(
    Avx512,
    __m512,
    "avx512f,avx2,fma",
    "AVX-512F+AVX2+FMA",
    Avx512,
    dwconv3x3_c32_avx512,
    dwconv5x5_c16_avx512,
    dwconv7x7_c16_avx512,
    nv: 2,
    reload: false,
    steps: [8, 8]
);
