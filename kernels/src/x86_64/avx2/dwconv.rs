//! Depthwise, AVX2+FMA. 3x3: channel blocks of one `__m256` (8 channels, the 9 taps in registers),
//! steps of 4 output columns, channel tails with `vmaskmovps` (the loop nest is
//! [`crate::x86_64::dwconv`]). k x k: one `__m256` per block (8 channels); at stride 1 steps of 8
//! outputs for k = 5 and 6 for k = 7, so the k taps of a kernel row, the accumulators and the
//! input column fit the 16 `ymm` (14 used); at stride 2 steps of 4 (loop nest:
//! [`crate::dwconv_kxk`]).
//!
//! 3x3 blocking: 9 taps + 4 accumulators + input + row sum fit the 16 `ymm` for one register per
//! block, with the taps reloaded per step from a stack copy (see [`crate::x86_64::dwconv::block`]).

use core::arch::x86_64::__m256;

crate::x86_64::dwconv::dwconv_tier!(
    Avx2,
    __m256,
    "avx2,fma",
    "AVX2+FMA",
    Avx2,
    dwconv3x3_c8_avx2,
    dwconv5x5_c8_avx2,
    dwconv7x7_c8_avx2,
    nv: 1,
    reload: true,
    steps: [8, 6]
);
