//! The bf16 pointwise GEMM loop nest of the x86-64 tiers: f32 activations in and out, bf16 weights
//! packed as K-pairs (`[k/2][NR][2]` per panel, [`crate::registry::HalfTile`] with `kpack = 2`),
//! f32 accumulation, the same fused epilogue (activation, residual, masked tail) as f32.
//!
//! Design (after `vdpbf16ps`, which adds to each f32 lane the products of one pair of bf16 values
//! from each operand): a chunk of input rows is first rounded to bf16 and stored as rows of 32-bit
//! pairs (`[rows][kp]`, `kp = k.div_ceil(2)`, odd K padded with a zero), once per chunk; every panel
//! then reuses it. In the micro-tile each row's pair is broadcast from memory as one 32-bit value
//! straight into the dot instruction, exactly as the f32 tile broadcasts one float, so the inner
//! loop holds only weight loads and dot products, half as many per multiply-add as f32. Converting
//! inside the inner loop instead (`vcvtne2ps2bf16` per pair and row) would add a conversion per
//! dot product; converting once per chunk costs `k / 32` instructions per row against `k * n / 32`
//! dot products.
//!
//! Order of the arithmetic, whatever the tile or block: the accumulator starts at the bias, then
//! for each K-pair the dot instruction adds both products (the odd channel's first, as Intel's
//! definition of `vdpbf16ps` reads); then the activation and the residual in f32. The portable
//! [`crate::scalar::pointwise::pointwise_bf16_4x8_scalar`] computes the same, so the results do
//! not depend on the thread count.

use crate::ukernel::{HalfPacked, PointwiseBlock};
use crate::x86_64::SimdF32;
use crate::x86_64::pointwise::{offset_or_null, tile_rows};
use std::cell::RefCell;

/// Bytes of converted input rows a row chunk may hold (reused by every panel).
const CHUNK_BYTES: usize = 256 * 1024;

/// u32 pairs per converted row: `kp` rounded up to 16, so whole 512-bit vectors may be written.
pub(crate) fn row_stride(k: usize) -> usize {
    k.div_ceil(2).next_multiple_of(16)
}

/// A tier's bf16 dot product on registers of f32 lanes.
///
/// # Safety
/// Implementors may only be used inside functions compiled with (and CPUs supporting) their
/// target features; callers of each method must uphold its `# Safety` section.
pub(crate) unsafe trait Bf16Dot: Copy {
    /// The accumulator and output register.
    type Acc: SimdF32;
    /// `Acc::LANES` pairs of bf16 weights.
    type W: Copy;
    /// One bf16 pair in every lane.
    type A: Copy;

    /// Loads `2 * LANES` bf16 (LANES pairs).
    ///
    /// # Safety
    /// The features are available; `p..p + 2 * LANES` is readable.
    unsafe fn load_w(p: *const u16) -> Self::W;
    /// Broadcasts the pair at `p`.
    ///
    /// # Safety
    /// The features are available; `p` is readable.
    unsafe fn splat_pair(p: *const u32) -> Self::A;
    /// `acc + a.odd * w.odd + a.even * w.even` per lane, as `vdpbf16ps`.
    ///
    /// # Safety
    /// The features are available.
    unsafe fn dot(acc: Self::Acc, a: Self::A, w: Self::W) -> Self::Acc;
}

/// The operands of one micro-tile: `M` rows, columns `j0..j0 + cols` of a panel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TileBf16 {
    /// Converted input at (row r, pair 0); rows are `a_stride` pairs apart.
    a: *const u32,
    a_stride: usize,
    /// The panel's weights at (pair 0, column j0) (`[kp][NR][2]` u16).
    w: *const u16,
    /// The panel's biases at column j0.
    bias: *const f32,
    /// Output at (row r, column j0); rows are `n` floats apart.
    out: *mut f32,
    /// Residual at (row r, column j0), or null.
    res: *const f32,
    kp: usize,
    n: usize,
    /// Columns of the tile, at least 1.
    cols: usize,
}

impl TileBf16 {
    /// Columns of the tile.
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }
}

/// A tier's bf16 micro-kernel: its register tile, compiled tiles and row conversion.
pub(crate) trait GemmBf16 {
    /// Panel width, the `nr` the weights are packed with.
    const NR: usize;
    /// Rows per full tile.
    const MR: usize;
    /// Fewest rows of a tile (shorter tails are merged with the last full tile and split).
    const MIN_ROWS: usize;

    /// Rows `0..m` of `t` (`1 <= m <= MR`), all of its columns (at most `NR`).
    ///
    /// # Safety
    /// As [`tile`] with `M = m` and `NR = Self::NR`; the tier's features must be available.
    unsafe fn tile<const ACT: u8>(t: &TileBf16, m: usize);

    /// Rounds `rows` rows of `k` floats (`k` apart) at `src` to bf16 pairs, `row_stride(k)` u32
    /// apart at `dst`, padding each row with zeros to its stride.
    ///
    /// # Safety
    /// The tier's features are available; `src` is readable for `rows * k` floats and `dst`
    /// writable for `rows * row_stride(k)` u32.
    unsafe fn convert_rows(src: *const f32, k: usize, rows: usize, dst: *mut u32);
}

thread_local! {
    /// Converted input rows of the block this thread is running.
    static ROWS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Rows `rows` x panels `panels` of `out = act(bf16(in) . W + bias) (+ residual)` with `G`'s tiles.
///
/// # Safety
/// The contract of [`crate::pointwise::PointwiseHalfFn`] with `bias` and `weights` packed for
/// `HalfTile { nr: G::NR, kpack: 2, dtype: Bf16 }`, and the features of `G`'s tier available. (The
/// ranges and the lengths of `bias` and `weights` are checked here.)
#[inline(always)]
pub(crate) unsafe fn pointwise_bf16<G: GemmBf16, const ACT: u8>(
    b: PointwiseBlock<'_, HalfPacked<'_>>,
) {
    let (input, output, HalfPacked { bias, weights }, rows) =
        (b.input, b.output, b.packed, &b.rows);
    let (k, n, nr) = (b.geom.k, b.geom.n, G::NR);
    let kp = k.div_ceil(2);
    let panel_len = kp * nr * 2;
    b.check_half(nr, panel_len);
    let (mr, min_rows) = (G::MR, G::MIN_ROWS);
    let stride = row_stride(k);
    let chunk = (CHUNK_BYTES / (4 * stride) / mr).max(1) * mr;
    ROWS.with_borrow_mut(|buf| {
        let need = chunk.min(rows.len()) * stride;
        if buf.len() < need {
            buf.resize(need, 0);
        }
        let mut r0 = rows.start;
        while r0 < rows.end {
            let r1 = rows.end.min(r0 + chunk);
            // SAFETY: rows r0..r1 < p of the input hold k floats each (contract); `buf` holds at
            // least (r1 - r0) * stride u32 (resized above); the features are the contract's.
            unsafe { G::convert_rows(input.add(r0 * k), k, r1 - r0, buf.as_mut_ptr()) };
            for panel in b.panels.clone() {
                let j0 = panel * nr;
                let cols = nr.min(n - j0);
                let mut r = r0;
                while r < r1 {
                    let m = tile_rows(r1 - r, mr, min_rows);
                    // SAFETY: r + m <= r1 <= p and j0 + cols <= n (checked above), so the tile's
                    // rows of the converted input (within `buf`, `stride` pairs each), the output
                    // and the residual (n floats each, columns j0..j0 + cols) lie within their
                    // buffers; the panel's weights (`panel_len` u16) and biases (`nr` f32) lie
                    // within `weights` and `bias` (checked above); 1 <= m <= MR, 1 <= cols <= NR.
                    unsafe {
                        let t = TileBf16 {
                            a: buf.as_ptr().add((r - r0) * stride),
                            a_stride: stride,
                            w: weights.as_ptr().add(panel * panel_len),
                            bias: bias.as_ptr().add(j0),
                            out: output.add(r * n + j0),
                            res: offset_or_null(b.residual, r * n + j0),
                            kp,
                            n,
                            cols,
                        };
                        G::tile::<ACT>(&t, m);
                    }
                    r += m;
                }
            }
            r0 = r1;
        }
    });
}

/// One micro-tile: rows `0..M` of `t`, `NB` registers per row, from a panel of width `NR`.
///
/// # Safety
/// `D`'s features must be available; `t.a` is readable for `M` rows of `t.kp` pairs (`t.a_stride`
/// apart); `t.w` for `t.kp` pair rows of `NR` pairs (`2 * NR` u16 apart), `NB * LANES` pairs each
/// from the tile's first column; `t.bias` for `NB * LANES` floats; `t.out` writable and `t.res`
/// (when not null) readable for `M` rows of `t.cols` floats (`t.n` apart);
/// `(NB - 1) * LANES < t.cols <= NB * LANES <= NR`; `M >= 1`.
#[inline(always)]
pub(crate) unsafe fn tile<
    D: Bf16Dot,
    const ACT: u8,
    const M: usize,
    const NB: usize,
    const NR: usize,
>(
    t: &TileBf16,
) {
    let l = D::Acc::LANES;
    debug_assert!((NB - 1) * l < t.cols && t.cols <= NB * l && NB * l <= NR);
    // SAFETY: the features are available (contract). Bias reads: bias..bias + NB * LANES. Weight
    // reads: pair row g < kp at w + 2 * NR * g, 2 * NB * LANES u16 from there. Input reads: pair g
    // of row i < M at a + i * a_stride + g.
    let mut acc = unsafe {
        let mut b = [D::Acc::zero(); NB];
        for (v, b) in b.iter_mut().enumerate() {
            *b = D::Acc::load(t.bias.add(v * l));
        }
        let mut acc = [b; M];
        let mut w = t.w;
        for g in 0..t.kp {
            let mut wv = [D::load_w(w); NB];
            for (v, wv) in wv.iter_mut().enumerate().skip(1) {
                *wv = D::load_w(w.add(2 * v * l));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let a = D::splat_pair(t.a.add(i * t.a_stride + g));
                for (c, &wv) in row.iter_mut().zip(&wv) {
                    *c = D::dot(*c, a, wv);
                }
            }
            w = w.add(2 * NR);
        }
        acc
    };
    for row in acc.iter_mut() {
        for c in row.iter_mut() {
            // SAFETY: the features are available (contract).
            *c = unsafe { D::Acc::act::<ACT>(*c) };
        }
    }
    let last = t.cols - (NB - 1) * l;
    // SAFETY: the features are available; 1 <= last <= LANES (contract).
    let mask = unsafe { D::Acc::mask_first(last) };
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row i < M of the output (and residual) is valid for columns 0..cols (contract):
        // registers before the last cover columns below (NB - 1) * LANES < cols, and the last is
        // masked to its `last` valid columns unless they are all valid.
        unsafe {
            let o = t.out.add(i * t.n);
            let q = t.res.wrapping_add(i * t.n);
            for (v, &c) in row.iter().enumerate() {
                let mut y = c;
                if v + 1 < NB || last == l {
                    if !t.res.is_null() {
                        y = D::Acc::add(y, D::Acc::load(q.add(v * l)));
                    }
                    D::Acc::store(o.add(v * l), y);
                } else {
                    if !t.res.is_null() {
                        y = D::Acc::add(y, D::Acc::load_masked(q.add(v * l), mask));
                    }
                    D::Acc::store_masked(o.add(v * l), mask, y);
                }
            }
        }
    }
}

/// Portable row conversion (the reference of the tiers' vector conversions, and the AVX2 test
/// tier's): pairs `(x[2i], x[2i + 1])` as `lo | hi << 16`, zero past `k`.
///
/// # Safety
/// As [`GemmBf16::convert_rows`] (no feature needed).
#[allow(dead_code)] // used by the test tier
pub(crate) unsafe fn convert_rows_portable(src: *const f32, k: usize, rows: usize, dst: *mut u32) {
    use crate::convert::bf16_from_f32;
    let stride = row_stride(k);
    for r in 0..rows {
        for i in 0..stride {
            let at = |kk: usize| {
                if kk < k {
                    // SAFETY: row r < rows, kk < k: inside the `rows * k` readable floats.
                    bf16_from_f32(unsafe { *src.add(r * k + kk) }) as u32
                } else {
                    0
                }
            };
            // SAFETY: r * stride + i < rows * stride, inside `dst`.
            unsafe { *dst.add(r * stride + i) = at(2 * i) | at(2 * i + 1) << 16 };
        }
    }
}

/// The bf16 nest tested on any x86-64 with AVX2: a tier whose `dot` emulates `vdpbf16ps` with two
/// FMAs (odd product first), bit-exact with the scalar model on normal numbers. It checks the loop
/// nest, tiles, tails, packing and epilogue that the AVX-512 BF16 kernel shares, on machines
/// without AVX512_BF16.
#[cfg(test)]
pub(crate) mod tests {
    use core::arch::x86_64::*;

    use super::*;
    use crate::activation::Activation;
    use crate::reference::blocks::{BlockRunner, Operands, same_bits};
    use crate::registry::{self, KernelKey, Op};
    use crate::ukernel::{PointwiseGeom, PointwiseHalfFn};
    use crate::x86_64::pointwise::dispatch_tile;
    use crate::x86_64::with_act;
    use crate::{Isa, PackedPointwise, Precision};

    #[derive(Clone, Copy)]
    struct Emul;

    // SAFETY: AVX2 and FMA instructions only; memory as each contract names.
    unsafe impl Bf16Dot for Emul {
        type Acc = __m256;
        type W = __m256i;
        type A = __m256i;
        #[inline(always)]
        unsafe fn load_w(p: *const u16) -> __m256i {
            // SAFETY: 16 u16 readable (contract).
            unsafe { _mm256_loadu_si256(p.cast()) }
        }
        #[inline(always)]
        unsafe fn splat_pair(p: *const u32) -> __m256i {
            // SAFETY: `p` readable (contract).
            unsafe { _mm256_set1_epi32(p.read_unaligned() as i32) }
        }
        #[inline(always)]
        unsafe fn dot(acc: __m256, a: __m256i, w: __m256i) -> __m256 {
            // SAFETY: AVX2 and FMA available (contract).
            unsafe {
                let hi = _mm256_set1_epi32(0xffff_0000u32 as i32);
                let odd = |v| _mm256_castsi256_ps(_mm256_and_si256(v, hi));
                let even = |v| _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v));
                let acc = _mm256_fmadd_ps(odd(a), odd(w), acc);
                _mm256_fmadd_ps(even(a), even(w), acc)
            }
        }
    }

    struct Tiles;
    const NR: usize = 16;

    #[target_feature(enable = "avx2,fma")]
    unsafe fn t<const ACT: u8, const M: usize, const NB: usize>(x: &TileBf16) {
        // SAFETY: the contract of `tile` (the caller's) with AVX2 and FMA available.
        unsafe { tile::<Emul, ACT, M, NB, NR>(x) }
    }

    impl GemmBf16 for Tiles {
        const NR: usize = NR;
        const MR: usize = 4;
        const MIN_ROWS: usize = 2;
        unsafe fn tile<const ACT: u8>(x: &TileBf16, m: usize) {
            // SAFETY: `GemmBf16::tile`'s contract, 1 <= m <= 4, 1 <= cols <= 16.
            unsafe {
                dispatch_tile!(
                    t,
                    ACT,
                    x,
                    m,
                    x.cols().div_ceil(8),
                    [1 2 3 4],
                    [1 2]
                )
            }
        }
        unsafe fn convert_rows(src: *const f32, k: usize, rows: usize, dst: *mut u32) {
            // SAFETY: the same contract.
            unsafe { convert_rows_portable(src, k, rows, dst) }
        }
    }

    unsafe fn emulated(b: PointwiseBlock<'_, HalfPacked<'_>>) {
        // SAFETY: the caller's contract; AVX2 and FMA are checked by the test.
        unsafe { with_act!(b.geom.act, |A| pointwise_bf16::<Tiles, A>(b)) }
    }

    /// Runs `f` (panel width `nr`) and the scalar model on the same packed data; equal bits, and
    /// nothing written outside the block. `gelu` is the scalar form of the tier's GELU table (the
    /// model's epilogue with that form: `gelu(acc + bias)`, then `+ residual`).
    pub(crate) fn check_bitwise_against_scalar(
        f: PointwiseHalfFn,
        nr: usize,
        gelu: crate::activation::tier_test::ScalarGelu,
    ) {
        let scalar = registry::find_key(KernelKey {
            op: Op::Pointwise,
            dtype: Precision::Bf16,
            isa: Isa::Scalar,
        })
        .unwrap();
        let mut shapes = Vec::new();
        for p in [1, 3, 4, 5, 8, 9, 13] {
            for k in [1, 2, 3, 31, 32, 33, 65] {
                for n in [1, 7, 8, 9, nr - 1, nr, nr + 1, 2 * nr + 5] {
                    shapes.push((p, k, n, Activation::Identity, (p + k) % 2 == 0));
                }
            }
        }
        for act in Activation::ALL {
            shapes.push((29, 113, 50, act, true));
        }
        for (p, k, n, act, residual) in shapes {
            let g = PointwiseGeom { p, k, n, act };
            let Operands { x, w, b, res } = Operands::random(&g, residual);
            let ps = PackedPointwise::pack_for(scalar, k, n, &w, Some(&b)).unwrap();
            let mut want = vec![0.0f32; p * n];
            let ks = crate::Kernels::with_isa(Isa::Scalar)
                .unwrap()
                .with_threads(1)
                .unwrap();
            if act == Activation::Gelu {
                ps.run_slices(&ks, p, &x, &mut want, Activation::Identity, None)
                    .unwrap();
                for (e, w) in want.iter_mut().enumerate() {
                    *w = gelu(*w);
                    if let Some(r) = &res {
                        *w += r[e];
                    }
                }
            } else {
                ps.run_slices(&ks, p, &x, &mut want, act, res.as_deref())
                    .unwrap();
            }
            // Pack for width `nr` as the registry does for a HalfTile { nr, 2, Bf16 }.
            let panels = n.div_ceil(nr);
            let kp = k.div_ceil(2);
            let mut wt = vec![0u16; panels * kp * nr * 2];
            let mut bias = vec![0.0f32; panels * nr];
            bias[..n].copy_from_slice(&b);
            for j in 0..n {
                for kk in 0..k {
                    wt[(j / nr) * kp * nr * 2 + (kk / 2) * nr * 2 + (j % nr) * 2 + kk % 2] =
                        crate::convert::bf16_from_f32(w[j * k + kk]);
                }
            }
            let runner = BlockRunner {
                g: &g,
                x: &x,
                res: res.as_deref(),
                nr,
            };
            let packed = HalfPacked {
                bias: &bias,
                weights: &wt,
            };
            let what = format!("p{p} k{k} n{n} {act:?}");
            // SAFETY: the features are checked by the caller; the packing above is the kernel's
            // layout for g.k, g.n.
            let got = unsafe { runner.run(f, packed, 0..p, 0..panels, &what) };
            for (e, (v, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    v.to_bits(),
                    w.to_bits(),
                    "{what}: out[{e}] = {v}, model {w}"
                );
            }
            // SAFETY: as above.
            unsafe { runner.check_sub_blocks(f, packed, &got, same_bits, &what) };
        }
    }

    #[test]
    fn emulated_nest_matches_the_scalar_model_bit_for_bit() {
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            panic!("the x86-64 test machine is expected to have AVX2 and FMA");
        }
        check_bitwise_against_scalar(emulated, NR, crate::activation::gelu);
    }

    #[test]
    fn portable_row_conversion_pairs_even_low_odd_high() {
        let x = [1.0f32, 2.0, 3.0];
        let mut d = vec![7u32; 2 * row_stride(3)];
        // SAFETY: 1 row of 3 floats; `d` holds row_stride(3) u32.
        unsafe { convert_rows_portable(x.as_ptr(), 3, 1, d.as_mut_ptr()) };
        assert_eq!(d[0], 0x3f80 | 0x4000 << 16);
        assert_eq!(d[1], 0x4040);
        assert!(d[2..row_stride(3)].iter().all(|&v| v == 0));
        assert_eq!(d[row_stride(3)], 7, "wrote past one row");
    }
}
