//! The pointwise (1x1 convolution) GEMM loop nest shared by the x86-64 tiers, generic over the
//! tier's micro-kernel ([`Gemm`]): the micro-tile body [`tile`] is generic over the register type
//! ([`SimdF32`]), the activation (`ACT`), the rows (`M`) and the registers per row (`NB`), and each
//! tier instantiates it inside its own `#[target_feature]` functions, one per (activation, rows,
//! registers), so every tile is a small function of its own.
//!
//! Micro-tile: `M` rows x `NB` registers of accumulators, initialised with the panel's biases; per
//! input channel `kk`, `NB` weight registers are loaded from the packed panel and each row's
//! `in[r][kk]` is broadcast from memory and multiplied into its row. All of K is summed in
//! registers, with no K blocking: a panel of `K x NR` weights is at most 160 KiB (K = 1280,
//! NR = 32), and streaming it from L2 takes `NR * 4` bytes per `M * NB` FMAs, far below the L2
//! bandwidth; measured with the identity epilogue, K = 896 and K = 448 run at 99-100 % of the FMA
//! peak on Zen 4 (AVX-512), so blocking K has nothing to win. Then the activation, the residual
//! (masked loads on a partial last register) and the store (masked stores there), in registers.
//!
//! Loop nest of a block: chunks of rows whose input (`rows x K` floats) fits in half of L2, then
//! panels, then row tiles: a panel's weights stay in L1 (or L2 for large K) while the chunk's row
//! tiles stream past it, and the chunk's input stays in L2 while every panel reuses it. A last
//! panel narrower than `NR` runs tiles of only the registers it needs. Row tails: a tail shorter
//! than [`Gemm::MIN_ROWS`] is merged with the last full tile and the two are split in halves, so
//! no tile has too few independent accumulators to cover the FMA latency (P = 49 went from 97 % to
//! 99 % of peak on AVX-512, 92 % to 95 % on AVX2).
//!
//! The fused GELU is what bounds the speed at small K: on Zen 4 it costs about 34 cycles per 16
//! outputs on AVX-512 and 57 on AVX2 (against K cycles of FMAs for those 16 outputs at peak),
//! so with GELU a tile can reach at most about `K / (K + 34)` of peak on AVX-512 (62 % at K = 56,
//! 77 % at K = 112) and `K / (K + 57)` on AVX2.
//!
//! Every output element is `bias`, then one fused multiply-add per input channel in ascending order,
//! then the activation, then the residual added in f32, whatever the tile, chunk or block: results do
//! not depend on how a call is split into blocks (the bitwise thread-count tests rely on it).

use crate::ukernel::PointwiseBlock;
use crate::x86_64::SimdF32;

/// Bytes of input rows a row chunk may hold (the input of a chunk is reused by every panel).
const CHUNK_BYTES: usize = 512 * 1024;

/// The operands of one micro-tile: `M` rows starting at row `r`, columns `j0..j0 + cols` of a panel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tile {
    /// Input at (row r, channel 0); rows are `k` floats apart.
    a: *const f32,
    /// The panel's biases at column j0 (`[NR biases][k x NR weights]`, from column j0 on).
    w: *const f32,
    /// Output at (row r, column j0); rows are `n` floats apart.
    out: *mut f32,
    /// Residual at (row r, column j0), or null.
    res: *const f32,
    k: usize,
    n: usize,
    /// Columns of the tile, at least 1.
    cols: usize,
}

impl Tile {
    /// Columns of the tile.
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// The first `c1` columns (`1 <= c1 <= cols`).
    pub(crate) fn columns_to(&self, c1: usize) -> Tile {
        debug_assert!((1..=self.cols).contains(&c1));
        Tile { cols: c1, ..*self }
    }

    /// Columns `c0..cols` as a tile of their own (the panel stride is unchanged).
    ///
    /// # Safety
    /// `c0 < cols`, and the tile's column range lies within its panel and output rows (as the
    /// loop nest builds tiles).
    pub(crate) unsafe fn columns_from(&self, c0: usize) -> Tile {
        debug_assert!(c0 < self.cols);
        Tile {
            // SAFETY: c0 < cols, so the offsets stay inside the panel's bias row and the tile's
            // output row (contract); the residual pointer may be null, hence `wrapping_add`.
            w: unsafe { self.w.add(c0) },
            // SAFETY: as above.
            out: unsafe { self.out.add(c0) },
            res: if self.res.is_null() {
                self.res
            } else {
                self.res.wrapping_add(c0)
            },
            cols: self.cols - c0,
            ..*self
        }
    }
}

/// A tier's pointwise micro-kernel: its register tile and its compiled tiles.
pub(crate) trait Gemm {
    /// Panel width, the `nr` the weights are packed with.
    const NR: usize;
    /// Rows per full tile.
    const MR: usize;
    /// Fewest rows a tile needs to keep enough independent accumulators: a row tail shorter than
    /// this is merged with the last full tile and the two are split in halves.
    const MIN_ROWS: usize;

    /// Rows `0..m` of `t` (`1 <= m <= MR`), all of its columns (at most `NR`).
    ///
    /// # Safety
    /// As [`tile`] with `M = m` and `NR = Self::NR` (for whatever `V` and `NB` the tier picks to
    /// cover `t.cols()` columns); the tier's features must be available.
    unsafe fn tile<const ACT: u8>(t: &Tile, m: usize);
}

/// Expands to a `match (m, nb)` calling `$f::<ACT, M, NB>(t)` for every listed `M` and `NB`.
macro_rules! dispatch_tile {
    ($f:ident, $act:ident, $t:expr, $m:expr, $nb:expr, [$($mm:literal)*], [$($bb:literal)*]) => {
        dispatch_tile!(@rows $f, $act, $t, ($m, $nb), [$($mm)*], [$($bb)*], [])
    };
    (@rows $f:ident, $act:ident, $t:expr, $sel:expr, [$mm:literal $($rest:literal)*], [$($bb:literal)*], [$($arms:tt)*]) => {
        dispatch_tile!(@rows $f, $act, $t, $sel, [$($rest)*], [$($bb)*],
            [$($arms)* $(($mm, $bb) => $f::<$act, $mm, $bb>($t),)*])
    };
    (@rows $f:ident, $act:ident, $t:expr, $sel:expr, [], [$($bb:literal)*], [$($arms:tt)*]) => {
        match $sel {
            $($arms)*
            (m, nb) => unreachable!("no pointwise tile of {m} rows x {nb} registers"),
        }
    };
}
pub(crate) use dispatch_tile;

/// Stamps out a tier's pointwise entry point ([`crate::ukernel::PointwiseFn`]) and its test
/// against the reference: `pointwise_entry!(name, Tiles, NR, "Names", "tile", isa)` defines `name`,
/// which runs [`pointwise`] with the tiles `Tiles` (panel width `NR`) of the tier `isa`.
macro_rules! pointwise_entry {
    ($name:ident, $tiles:ty, $nr:literal, $names:literal, $tile:literal, $isa:ident) => {
        #[doc = concat!(
            "Pointwise block kernel, ", $names, ", ", $tile, " output channels per tile (panel ",
            "width ", stringify!($nr), ") ([`crate::ukernel::PointwiseFn`])."
        )]
        ///
        /// # Safety
        #[doc = concat!(
            "The contract of [`crate::ukernel::PointwiseFn`]: ", $names, " are available; ",
            "`packed` was packed with panel width ", stringify!($nr), " for `g.k` and `g.n`; ",
            "`input` is valid for reads of `g.p * g.k` floats, `output` for writes of `g.p * g.n` ",
            "floats, `residual` (when not null) for reads of `g.p * g.n` floats and does not alias ",
            "`output`; no other thread writes the block at the same time. (The ranges and the ",
            "length of `packed` are checked.)"
        )]
        pub(crate) unsafe fn $name(b: $crate::ukernel::PointwiseBlock<'_, &[f32]>) {
            // SAFETY: this function's contract is the loop nest's with these tiles (the panel
            // width above).
            unsafe {
                $crate::x86_64::with_act!(b.geom.act, |A| {
                    $crate::x86_64::pointwise::pointwise::<$tiles, A>(b)
                })
            }
        }

        #[cfg(test)]
        mod tests {
            #[test]
            fn matches_reference() {
                $crate::x86_64::test_tier($crate::Isa::$isa, || {
                    $crate::x86_64::pointwise::tests::check_against_reference(super::$name, $nr)
                });
            }
        }
    };
}
pub(crate) use pointwise_entry;

/// Rows `rows` x panels `panels` of `out = act(in . W + bias) (+ residual)` with the tiles of `G`.
///
/// # Safety
/// The contract of [`crate::ukernel::PointwiseFn`] with `packed` packed for panel width
/// `G::NR`, and the features of `G`'s tier available. (The ranges and the length of `packed` are
/// checked here.)
#[inline(always)]
pub(crate) unsafe fn pointwise<G: Gemm, const ACT: u8>(b: PointwiseBlock<'_, &[f32]>) {
    // Makes every offset below provably in range given only the validity of the pointers.
    b.check_f32(G::NR);
    let (input, output, packed, rows) = (b.input, b.output, b.packed, &b.rows);
    let (k, n, nr) = (b.geom.k, b.geom.n, G::NR);
    let stride = nr * (k + 1);
    let (mr, min_rows) = (G::MR, G::MIN_ROWS);
    debug_assert!(1 <= min_rows && min_rows <= mr.div_ceil(2));
    let chunk = (CHUNK_BYTES / (4 * k) / mr).max(1) * mr;
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = rows.end.min(r0 + chunk);
        for panel in b.panels.clone() {
            let j0 = panel * nr;
            let cols = nr.min(n - j0);
            let mut r = r0;
            while r < r1 {
                let m = tile_rows(r1 - r, mr, min_rows);
                // SAFETY: r + m <= rows.end <= p and j0 + cols <= n (checked above), so the tile's
                // rows of the input (k floats each), the output and the residual (n floats each,
                // columns j0..j0 + cols) lie within the buffers the caller guarantees; the panel
                // lies within `packed` (checked above) and holds NR * (k + 1) floats; 1 <= m <= MR
                // and 1 <= cols <= NR; the features are this function's contract.
                unsafe {
                    let t = Tile {
                        a: input.add(r * k),
                        w: packed.as_ptr().add(panel * stride),
                        out: output.add(r * n + j0),
                        res: offset_or_null(b.residual, r * n + j0),
                        k,
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
}

/// Rows of the next tile when `left` rows remain: full tiles of `mr`; the last full tile and a
/// tail of fewer than `min_rows` rows become two tiles of about half as many rows each.
#[inline(always)]
pub(crate) fn tile_rows(left: usize, mr: usize, min_rows: usize) -> usize {
    if left == mr || left >= mr + min_rows {
        mr
    } else if left > mr {
        left.div_ceil(2)
    } else {
        left
    }
}

/// `p + off` (in floats), or null when `p` is null (an absent residual).
///
/// # Safety
/// When `p` is not null, `p + off` lies within (or one past) the buffer `p` points into.
#[inline(always)]
pub(crate) unsafe fn offset_or_null(p: *const f32, off: usize) -> *const f32 {
    if p.is_null() {
        p
    } else {
        // SAFETY: this function's contract.
        unsafe { p.add(off) }
    }
}

/// One micro-tile: rows `0..M` of `t`, `NB` registers per row, weights read from a panel of width
/// `NR`; writes only the `t.cols` columns of each row.
///
/// # Safety
/// `V`'s features must be available; `t.a` is readable for `M` rows of `t.k` floats (`t.k` apart);
/// `t.w` for `NR * t.k + NB * LANES` floats (the bias row and `k` weight rows of the panel from the
/// tile's first column on); `t.out` writable and `t.res` (when not null) readable for `M` rows of
/// `t.cols` floats (`t.n` apart); `(NB - 1) * LANES < t.cols <= NB * LANES`; `M >= 1`.
#[inline(always)]
pub(crate) unsafe fn tile<
    V: SimdF32,
    const ACT: u8,
    const M: usize,
    const NB: usize,
    const NR: usize,
>(
    t: &Tile,
) {
    let (l, k, n) = (V::LANES, t.k, t.n);
    debug_assert!((NB - 1) * l < t.cols && t.cols <= NB * l);
    // SAFETY: the features are available (contract). Weight reads: biases at w..w + NB * LANES and
    // channel kk's at w + NR * (kk + 1)..+NB * LANES, kk < k, all below w + NR * k + NB * LANES.
    // Input reads: a + i * k + kk with i < M, kk < k.
    let mut acc = unsafe {
        let mut bias = [V::zero(); NB];
        for (v, b) in bias.iter_mut().enumerate() {
            *b = V::load(t.w.add(v * l));
        }
        let mut acc = [bias; M];
        let mut w = t.w.add(NR);
        for kk in 0..k {
            let mut b = [V::zero(); NB];
            for (v, b) in b.iter_mut().enumerate() {
                *b = V::load(w.add(v * l));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let x = V::splat(*t.a.add(i * k + kk));
                for (c, &b) in row.iter_mut().zip(&b) {
                    *c = V::fma(x, b, *c);
                }
            }
            w = w.add(NR);
        }
        acc
    };
    for row in acc.iter_mut() {
        for c in row.iter_mut() {
            // SAFETY: the features are available (contract).
            *c = unsafe { V::act::<ACT>(*c) };
        }
    }
    let last = t.cols - (NB - 1) * l;
    // SAFETY: the features are available; 1 <= last <= LANES (contract).
    let mask = unsafe { V::mask_first(last) };
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row i < M of the output (and residual) is valid for columns 0..cols (contract):
        // registers before the last cover columns v * LANES..(v + 1) * LANES <= (NB - 1) * LANES <
        // cols, and the last is masked to its `last` valid columns unless they are all valid.
        unsafe {
            let o = t.out.add(i * n);
            let q = t.res.wrapping_add(i * n);
            for (v, &c) in row.iter().enumerate() {
                let mut y = c;
                if v + 1 < NB || last == l {
                    if !t.res.is_null() {
                        y = V::add(y, V::load(q.add(v * l)));
                    }
                    V::store(o.add(v * l), y);
                } else {
                    if !t.res.is_null() {
                        y = V::add(y, V::load_masked(q.add(v * l), mask));
                    }
                    V::store_masked(o.add(v * l), mask, y);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::activation::Activation;
    use crate::reference::blocks::{BlockRunner, Operands, same_bits};
    use crate::ukernel::{PointwiseFn, PointwiseGeom};

    /// `[n, k]` weights and a bias packed in panels of `nr`, as `PackedPointwise::pack` does.
    fn pack(k: usize, n: usize, nr: usize, w: &[f32], b: &[f32]) -> Vec<f32> {
        let stride = nr * (k + 1);
        let mut data = vec![0.0; n.div_ceil(nr) * stride];
        for j in 0..n {
            let base = j / nr * stride + j % nr;
            data[base] = b[j];
            for kk in 0..k {
                data[base + nr * (kk + 1)] = w[j * k + kk];
            }
        }
        data
    }

    /// Compares `f` (panel width `nr`) with the reference on edge shapes, every activation, with
    /// and without a residual, and checks that sub-blocks give the same bits as the whole.
    /// Callers check that `f`'s tier is available.
    pub(crate) fn check_against_reference(f: PointwiseFn, nr: usize) {
        let mut shapes = Vec::new();
        for p in [1, 5, 8, 13, 29] {
            for k in [1, 3, 17] {
                for n in [1, 8, 15, 16, 17, 33, 48, 70] {
                    shapes.push((p, k, n, Activation::Identity, p % 2 == 1));
                }
            }
        }
        for act in Activation::ALL {
            shapes.push((31, 113, 100, act, true));
            shapes.push((14, 40, 57, act, false));
        }
        for (p, k, n, act, residual) in shapes {
            let g = PointwiseGeom { p, k, n, act };
            let ops = Operands::random(&g, residual);
            let Operands { x, w, b, res } = &ops;
            let packed = pack(k, n, nr, w, b);
            let panels = n.div_ceil(nr);
            let runner = BlockRunner {
                g: &g,
                x,
                res: res.as_deref(),
                nr,
            };
            let what = format!("p{p} k{k} n{n} {act:?}");
            // SAFETY: callers check the tier's features; `packed` was packed for `nr` with g.k and
            // g.n.
            let got = unsafe { runner.run(f, &packed[..], 0..p, 0..panels, &what) };
            ops.assert_near_reference(&g, &got, &what);
            // SAFETY: as above.
            unsafe { runner.check_sub_blocks(f, &packed[..], &got, same_bits, &what) };
        }
    }
}
