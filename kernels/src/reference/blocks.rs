//! Test support shared by the pointwise block kernels of every tier: a kernel run on one block of
//! a call into an output NaN-filled and guarded on both sides, and the check that sub-blocks write
//! only themselves, with the bits of the whole call.

use std::ops::Range;

use super::rand_vec;
use crate::ukernel::{PointwiseBlock, PointwiseGeom};

/// The bits every output element holds before a kernel writes it (a quiet NaN).
const GUARD_BITS: u32 = 0x7fc0_beef;
/// Guard floats on each side of the output.
const GUARD: usize = 23;

/// One pointwise problem under test: its geometry, input (`[p, k]`) and residual (`[p, n]`), for
/// kernels of panel width `nr`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockRunner<'a> {
    pub(crate) g: &'a PointwiseGeom,
    pub(crate) x: &'a [f32],
    pub(crate) res: Option<&'a [f32]>,
    pub(crate) nr: usize,
}

impl BlockRunner<'_> {
    /// Runs `f` on the block `rows` x `panels` with the packed weights `packed`, into a guarded
    /// NaN-filled output; panics (naming `what`) if a guard or an element outside the block
    /// changed. Returns the whole `p * n` output (the NaN bits outside the block).
    ///
    /// # Safety
    /// `f`'s tier and precision are available on this CPU, and `packed` was packed for `f` with
    /// `g.k` and `g.n`. (The lengths of the input and the residual, and the block, are checked.)
    pub(crate) unsafe fn run<W>(
        &self,
        f: unsafe fn(PointwiseBlock<'_, W>),
        packed: W,
        rows: Range<usize>,
        panels: Range<usize>,
        what: &str,
    ) -> Vec<f32> {
        let (g, len) = (self.g, self.g.p * self.g.n);
        assert!(
            g.check(self.x.len(), len, self.res.map(<[f32]>::len))
                .is_ok()
        );
        assert!(rows.end <= g.p && panels.end <= g.n.div_ceil(self.nr));
        let mut out = vec![f32::from_bits(GUARD_BITS); len + 2 * GUARD];
        let residual = self.res.map_or(std::ptr::null(), <[f32]>::as_ptr);
        // SAFETY: the tier, the precision and the packing are the caller's contract; `check`
        // validated the lengths of the input, the output body and the residual, which are separate
        // allocations; the block lies within the problem (asserted).
        unsafe {
            f(PointwiseBlock {
                geom: g,
                input: self.x.as_ptr(),
                packed,
                residual,
                output: out.as_mut_ptr().add(GUARD),
                rows: rows.clone(),
                panels: panels.clone(),
            })
        };
        for (i, v) in out[..GUARD].iter().chain(&out[GUARD + len..]).enumerate() {
            assert_eq!(v.to_bits(), GUARD_BITS, "{what}: guard {i} overwritten");
        }
        let body = &out[GUARD..GUARD + len];
        for (i, v) in body.iter().enumerate() {
            let (row, col) = (i / g.n, i % g.n);
            if !(rows.contains(&row) && panels.contains(&(col / self.nr))) {
                assert_eq!(
                    v.to_bits(),
                    GUARD_BITS,
                    "{what}: wrote row {row} col {col} outside the block"
                );
            }
        }
        body.to_vec()
    }

    /// Runs `f` on four sub-blocks of the call whose whole output is `whole` (row and panel
    /// ranges, a single row, a single panel) and asserts that each writes only itself and, inside,
    /// values `eq` to the whole call's.
    ///
    /// # Safety
    /// As [`run`](Self::run).
    pub(crate) unsafe fn check_sub_blocks<W: Copy>(
        &self,
        f: unsafe fn(PointwiseBlock<'_, W>),
        packed: W,
        whole: &[f32],
        eq: fn(f32, f32) -> bool,
        what: &str,
    ) {
        let (p, n, nr) = (self.g.p, self.g.n, self.nr);
        let panels = n.div_ceil(nr);
        for (rows, pans) in [
            (p / 3..p, 0..panels),
            (0..p.div_ceil(2), panels / 2..panels),
            (p / 2..p / 2 + 1, panels - 1..panels),
            (1.min(p)..p, 0..1),
        ] {
            let block = format!("{what}: block {rows:?} x {pans:?}");
            // SAFETY: the caller's contract; the sub-blocks lie within the problem.
            let part = unsafe { self.run(f, packed, rows.clone(), pans.clone(), &block) };
            for (i, &v) in part.iter().enumerate() {
                if rows.contains(&(i / n)) && pans.contains(&(i % n / nr)) {
                    assert!(
                        eq(v, whole[i]),
                        "{block}: out[{i}] = {v}, whole call {}",
                        whole[i]
                    );
                }
            }
        }
    }
}

/// Random operands of a pointwise problem, drawn from a seed derived from its shape.
#[derive(Debug, Clone)]
pub(crate) struct Operands {
    /// Input `[p, k]`, in `[-2, 2)`.
    pub(crate) x: Vec<f32>,
    /// Weights `[n, k]` (PyTorch's layout), in `[-1, 1)`.
    pub(crate) w: Vec<f32>,
    /// Bias `[n]`, in `[-1, 1)`.
    pub(crate) b: Vec<f32>,
    /// Residual `[p, n]`, in `[-2, 2)`, when asked for.
    pub(crate) res: Option<Vec<f32>>,
}

impl Operands {
    /// The operands of `g`'s problem, with a residual when `residual`.
    pub(crate) fn random(g: &PointwiseGeom, residual: bool) -> Operands {
        let (p, k, n) = (g.p, g.k, g.n);
        let seed = ((p * 131 + k) * 131 + n) as u64;
        Operands {
            x: rand_vec(seed, p * k, 2.0),
            w: rand_vec(seed ^ 1, n * k, 1.0),
            b: rand_vec(seed ^ 2, n, 1.0),
            res: residual.then(|| rand_vec(seed ^ 3, p * n, 2.0)),
        }
    }

    /// Asserts that `got` (`g`'s output on these operands, with the bias) is within
    /// `1e-4 (1 + |e|) sqrt(k)` of the reference `e` everywhere (f32 kernels).
    pub(crate) fn assert_near_reference(&self, g: &PointwiseGeom, got: &[f32], what: &str) {
        let mut want = vec![0.0f32; g.p * g.n];
        super::pointwise(
            g,
            &self.x,
            &self.w,
            Some(&self.b),
            self.res.as_deref(),
            &mut want,
        )
        .unwrap();
        for (i, (&a, &e)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - e).abs() <= 1e-4 * (1.0 + e.abs()) * (g.k as f32).sqrt(),
                "{what}: out[{i}] = {a}, reference {e}"
            );
        }
    }
}

/// Same bits.
pub(crate) fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits()
}
