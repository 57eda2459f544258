//! Squeeze-excite: per-channel means, `gate(fc2(inner(fc1(mean))))` with biases, then a per-channel
//! scale. RepViT and timm's `SEModule` use ReLU and sigmoid; MobileNetV3 uses ReLU and hard-sigmoid.
//!
//! The squeeze can come from the depthwise kernel's fused output sums (no extra pass over the tensor)
//! or be computed here. The excite can be handed to the next pointwise convolution as a row scale of
//! its weights ([`crate::PackedPointwise::scale_rows_into`]) or applied to the tensor in place.
//!
//! The two fully connected layers are matrix-vector products (one image at a time), so they do not
//! go through the pointwise GEMM, whose tiles need many rows: the weights are stored transposed
//! (`[in][out]`) and each block of up to 128 outputs is accumulated in registers over all inputs, the
//! block's weights streamed once, compiled per ISA (AVX2, AVX-512, NEON) with fused multiply-adds.
//! At RepViT's widths this is bound by reading the weights from L2 (2 x c x c/4 floats), a few
//! microseconds at 7x7x448, well under 1 % of the block's two pointwise convolutions.

use crate::activation::{Activation, exp, relu6};
use crate::elementwise::Elementwise;
use crate::error::{Error, Result};
use crate::registry::{self, Op};
use crate::tensor::Tensor;
pub use crate::ukernel::GemvFn;
use crate::{Isa, Kernels};

/// The gate applied to `fc2`'s output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gate {
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `relu6(x + 3) / 6` (MobileNetV3).
    HardSigmoid,
}

impl Gate {
    /// The gate of one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Gate::Sigmoid => 1.0 / (1.0 + exp(-x)),
            Gate::HardSigmoid => relu6(x + 3.0) * (1.0 / 6.0),
        }
    }
}

/// timm's `make_divisible(v, divisor, min_value, round_limit)` (`timm.layers.helpers`): the nearest
/// multiple of `divisor`, `int(v + divisor / 2) // divisor * divisor`, at least `min_value`
/// (`None` or 0 means `divisor`, as Python's `min_value or divisor`), then one `divisor` more if that
/// is below `round_limit * v`. Negative or NaN `v` count as 0.
///
/// ```
/// use mobile_cnn_kernels::se::make_divisible_with;
/// assert_eq!(make_divisible_with(11.0, 8, None, 0.9), 16); // 8 would lose more than 10 %
/// assert_eq!(make_divisible_with(11.0, 8, None, 0.0), 8); // timm's SEModule: never bumped
/// ```
pub fn make_divisible_with(
    v: f64,
    divisor: usize,
    min_value: Option<usize>,
    round_limit: f64,
) -> usize {
    let d = divisor.max(1);
    let min = match min_value {
        Some(m) if m > 0 => m,
        _ => d,
    };
    let v = if v.is_nan() { 0.0 } else { v.max(0.0) };
    // `as usize` truncates like Python's int() for v >= 0 (and saturates far beyond any width).
    let mut r = ((v + d as f64 / 2.0) as usize / d * d).max(min);
    if (r as f64) < round_limit * v {
        r += d;
    }
    r
}

/// timm's default rule, `make_divisible(v, divisor)` (min_value = divisor, round_limit = 0.9): the
/// nearest multiple of `divisor`, bumped up one step if rounding down loses more than 10 %. This is
/// what MobileNetV3-style channel widths use; for the width of timm's squeeze-excite (which passes
/// `round_limit=0.`) use [`reduced_channels`].
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    make_divisible_with(v, divisor, None, 0.9)
}

/// The reduced width of timm's `SEModule` (`timm.layers.SqueezeExcite`, which RepViT builds as
/// `SqueezeExcite(c, 0.25)`): `make_divisible(c * ratio, 8, round_limit=0.)`. It differs from
/// [`make_divisible`] where rounding down loses more than 10 % (c = 44 at ratio 0.25: 8, not 16).
pub fn reduced_channels(c: usize, ratio: f64) -> usize {
    make_divisible_with(c as f64 * ratio, 8, None, 0.0)
}

/// Bytes of weights from which [`gemv_split`] shares the columns among the threads: the gate's
/// matrix-vector products stream their weights (MobileNetV3-L's 960x240 pair is 1.8 MB, about
/// 0.14 ms on one Zen 3 core, where the weights come from beyond L2), so two cores pulling halves
/// finish sooner; below 64 KiB (RepViT's 56x16 pairs) one parallel call would cost more than it
/// saves.
const GEMV_PARALLEL_BYTES: usize = 64 * 1024;

/// `y = bias + x . wt` (`wt` `[x.len()][y.len()]`) with the threads of `kernels`: one contiguous
/// window of columns (a multiple of 8) per thread when the weights are large enough. Results are the
/// same bits for any split (see `generic::gemv_cols`).
fn gemv_split(kernels: &Kernels, gemv: GemvFn, x: &[f32], wt: &[f32], bias: &[f32], y: &mut [f32]) {
    let n = y.len();
    let parts = if wt.len() * 4 >= GEMV_PARALLEL_BYTES {
        kernels.threads()
    } else {
        1
    };
    let window = n.div_ceil(parts.max(1)).next_multiple_of(8).max(8);
    kernels.for_each_chunk_mut(y, window, |_, i, win| {
        // SAFETY: `gemv` is the registry's kernel for the tier of a `SqueezeExcite` that `apply`
        // checked against `kernels` (available on this CPU); the lengths were checked at `new`
        // (`wt` is `[x.len()][n]`, `bias` `[n]`) and the window lies inside the n columns.
        unsafe { gemv(x, wt, n, bias, win, i * window) }
    });
}

/// A squeeze-excite module ready to run.
///
/// ```
/// use mobile_cnn_kernels::{Activation, Kernels, Shape, Tensor, se::{Gate, SqueezeExcite}};
/// let k = Kernels::new().unwrap();
/// // c = 2, r = 1: fc1 sums the two means, fc2 maps it back with weights 0 and a bias of 0,
/// // so the gate is sigmoid(0) = 0.5 on both channels.
/// let se = SqueezeExcite::new(k.isa(), 2, 1, &[1.0, 1.0], &[0.0], &[0.0, 0.0], &[0.0, 0.0],
///     Activation::Relu, Gate::Sigmoid).unwrap();
/// let mut t = Tensor::from_slice(Shape::new(1, 1, 2, 2), &[2.0, 4.0, 6.0, 8.0]).unwrap();
/// se.apply(&k, &mut t, &mut Vec::new()).unwrap();
/// assert_eq!(t.as_slice(), &[1.0, 2.0, 3.0, 4.0]);
/// ```
#[derive(Debug, Clone)]
pub struct SqueezeExcite {
    isa: Isa,
    /// The registry's matrix-vector kernel for `isa`, bound at construction.
    gemv: GemvFn,
    /// The activation kernel and SIMD level of `isa` (inner activation, gate, sums, scale), bound
    /// at construction.
    ew: Elementwise,
    c: usize,
    r: usize,
    /// fc1 transposed: `[c][r]`.
    w1t: Vec<f32>,
    b1: Vec<f32>,
    /// fc2 transposed: `[r][c]`.
    w2t: Vec<f32>,
    b2: Vec<f32>,
    inner: Activation,
    gate: Gate,
}

/// `[rows, cols]` to `[cols, rows]`.
fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = w[i * cols + j];
        }
    }
    t
}

impl SqueezeExcite {
    /// Builds the module from PyTorch-layout weights: `fc1` `[r, c]` (a `[r, c, 1, 1]` convolution)
    /// with bias `[r]`, `fc2` `[c, r]` with bias `[c]`, for `isa` (the tier the module must be run
    /// with; an error if this CPU lacks it).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        isa: Isa,
        c: usize,
        r: usize,
        fc1_w: &[f32],
        fc1_b: &[f32],
        fc2_w: &[f32],
        fc2_b: &[f32],
        inner: Activation,
        gate: Gate,
    ) -> Result<Self> {
        let isa = isa.check("squeeze-excite")?;
        if c == 0 || r == 0 {
            return Err(Error::shape(
                "se widths",
                "c, r >= 1",
                format!("c={c} r={r}"),
            ));
        }
        let cr = c.checked_mul(r);
        if cr != Some(fc1_w.len()) {
            return Err(Error::shape(
                "se fc1 weights [r, c]",
                format!("{r} x {c} elements"),
                fc1_w.len(),
            ));
        }
        if fc1_b.len() != r {
            return Err(Error::shape("se fc1 bias [r]", r, fc1_b.len()));
        }
        if cr != Some(fc2_w.len()) {
            return Err(Error::shape(
                "se fc2 weights [c, r]",
                format!("{c} x {r} elements"),
                fc2_w.len(),
            ));
        }
        if fc2_b.len() != c {
            return Err(Error::shape("se fc2 bias [c]", c, fc2_b.len()));
        }
        let gemv = registry::find(Op::Gemv, isa)?.gemv_fn()?;
        Ok(SqueezeExcite {
            isa,
            gemv,
            ew: Elementwise::for_isa(isa)?,
            c,
            r,
            w1t: transpose(fc1_w, r, c),
            b1: fc1_b.to_vec(),
            w2t: transpose(fc2_w, c, r),
            b2: fc2_b.to_vec(),
            inner,
            gate,
        })
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.c
    }

    /// Reduced width.
    pub fn reduced(&self) -> usize {
        self.r
    }

    /// Floats of scratch [`SqueezeExcite::scale_from_sums`] uses (for any batch size).
    pub fn gate_scratch_len(&self) -> usize {
        self.c + self.r
    }

    /// Floats of scratch [`SqueezeExcite::apply`] uses for a batch of `n` images.
    pub fn apply_scratch_len(&self, n: usize) -> usize {
        2 * n * self.c + self.gate_scratch_len()
    }

    /// From per-image channel sums `[n, c]` over `pixels` pixels, writes the per-image channel scales
    /// `[n, c]`. `scratch` is grown as needed and reused (no allocation in steady state). The two
    /// matrix-vector products share their columns among `kernels`' threads when their weights
    /// exceed 64 KiB (`GEMV_PARALLEL_BYTES`); the bits do not depend on the thread count.
    pub fn scale_from_sums(
        &self,
        kernels: &Kernels,
        sums: &[f32],
        pixels: usize,
        scale: &mut [f32],
        scratch: &mut Vec<f32>,
    ) -> Result<()> {
        let need = self.gate_scratch_len();
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        self.gate_into(kernels, sums, pixels, scale, &mut scratch[..need])
    }

    fn gate_into(
        &self,
        kernels: &Kernels,
        sums: &[f32],
        pixels: usize,
        scale: &mut [f32],
        scratch: &mut [f32],
    ) -> Result<()> {
        if kernels.isa() != self.isa {
            return Err(Error::param(
                "se weights",
                format!(
                    "built for {}, but the kernels in use are {}",
                    self.isa,
                    kernels.isa()
                ),
            ));
        }
        if sums.is_empty() || !sums.len().is_multiple_of(self.c) {
            return Err(Error::shape(
                "se channel sums [n, c]",
                format!("a non-zero multiple of {} elements", self.c),
                sums.len(),
            ));
        }
        if scale.len() != sums.len() {
            return Err(Error::shape("se scale [n, c]", sums.len(), scale.len()));
        }
        if pixels == 0 {
            return Err(Error::param("se pixels", "expected at least 1, found 0"));
        }
        let (mean, hidden) = scratch.split_at_mut(self.c);
        let inv = 1.0 / pixels as f32;
        for (s, out) in sums
            .chunks_exact(self.c)
            .zip(scale.chunks_exact_mut(self.c))
        {
            for (m, &v) in mean.iter_mut().zip(s) {
                *m = v * inv;
            }
            gemv_split(kernels, self.gemv, mean, &self.w1t, &self.b1, hidden);
            self.ew.activation_in_place(self.inner, hidden);
            gemv_split(kernels, self.gemv, hidden, &self.w2t, &self.b2, out);
            match self.gate {
                Gate::Sigmoid => self.ew.map_in_place(out, |v| Gate::Sigmoid.apply(v)),
                Gate::HardSigmoid => self.ew.map_in_place(out, |v| Gate::HardSigmoid.apply(v)),
            }
        }
        Ok(())
    }

    /// Squeeze-excite on a tensor in place: channel means, gate, scale. `scratch` (at least
    /// [`SqueezeExcite::apply_scratch_len`] floats once grown) is reused, so steady-state calls
    /// allocate nothing.
    pub fn apply(&self, kernels: &Kernels, t: &mut Tensor, scratch: &mut Vec<f32>) -> Result<()> {
        let s = t.shape();
        if s.c != self.c {
            return Err(Error::shape("se input channels", self.c, s.c));
        }
        if s.n == 0 {
            return Err(Error::shape("se input", "n >= 1", s));
        }
        let need = self.apply_scratch_len(s.n);
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        let (sums, rest) = scratch[..need].split_at_mut(s.n * s.c);
        let (scale, gate_scratch) = rest.split_at_mut(s.n * s.c);
        self.ew.channel_sums(t, sums)?;
        self.gate_into(kernels, sums, s.h * s.w, scale, gate_scratch)?;
        self.ew.scale_channels_in_place(kernels, t, scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by timm 1.0.31 (`timm.layers.helpers.make_divisible`), see the comments.
    #[test]
    fn make_divisible_matches_timm() {
        // [(c, make_divisible(c * 0.25, 8, round_limit=0.)) for c in ...]: the SE width RepViT gets.
        let se_round0 = [
            (1, 8),
            (3, 8),
            (8, 8),
            (12, 8),
            (20, 8),
            (24, 8),
            (28, 8),
            (36, 8),
            (40, 8),
            (44, 8),
            (48, 16),
            (52, 16),
            (56, 16),
            (60, 16),
            (64, 16),
            (72, 16),
            (76, 16),
            (80, 24),
            (84, 24),
            (88, 24),
            (96, 24),
            (100, 24),
            (112, 32),
            (120, 32),
            (128, 32),
            (136, 32),
            (152, 40),
            (160, 40),
            (176, 48),
            (192, 48),
            (200, 48),
            (224, 56),
            (232, 56),
            (256, 64),
            (320, 80),
            (384, 96),
            (448, 112),
            (512, 128),
            (640, 160),
            (1000, 248),
            (1280, 320),
        ];
        // [(c, make_divisible(c * 0.25, 8)) for c in ...]: timm's default round_limit=0.9.
        let default_limit = [
            (1, 8),
            (3, 8),
            (8, 8),
            (12, 8),
            (20, 8),
            (24, 8),
            (28, 8),
            (36, 16),
            (40, 16),
            (44, 16),
            (48, 16),
            (52, 16),
            (56, 16),
            (60, 16),
            (64, 16),
            (72, 24),
            (76, 24),
            (80, 24),
            (84, 24),
            (88, 24),
            (96, 24),
            (100, 24),
            (112, 32),
            (120, 32),
            (128, 32),
            (136, 32),
            (152, 40),
            (160, 40),
            (176, 48),
            (192, 48),
            (200, 48),
            (224, 56),
            (232, 56),
            (256, 64),
            (320, 80),
            (384, 96),
            (448, 112),
            (512, 128),
            (640, 160),
            (1000, 248),
            (1280, 320),
        ];
        for ((c, r0), (c2, r9)) in se_round0.into_iter().zip(default_limit) {
            assert_eq!(c, c2);
            assert_eq!(reduced_channels(c, 0.25), r0, "reduced_channels({c})");
            assert_eq!(
                make_divisible_with(c as f64 * 0.25, 8, None, 0.0),
                r0,
                "c = {c}"
            );
            assert_eq!(
                make_divisible(c as f64 * 0.25, 8),
                r9,
                "make_divisible({c} / 4)"
            );
        }
        // [(v, make_divisible(v, 8)) for v in ...]: fractional values.
        for (v, want) in [
            (0.5, 8),
            (3.9, 8),
            (4.0, 8),
            (11.0, 16),
            (13.9, 16),
            (19.9, 24),
            (20.0, 24),
            (35.0, 32),
            (36.0, 40),
            (43.9, 40),
            (100.0, 104),
            (7.2, 8),
        ] {
            assert_eq!(make_divisible(v, 8), want, "make_divisible({v}, 8)");
        }
        // min_value: make_divisible(3, 8, min_value=16) == 16; min_value=0 is falsy, so divisor.
        assert_eq!(make_divisible_with(3.0, 8, Some(16), 0.9), 16);
        assert_eq!(make_divisible_with(3.0, 8, Some(0), 0.9), 8);
        assert_eq!(make_divisible_with(f64::NAN, 8, None, 0.9), 8);
    }

    #[test]
    fn gates() {
        assert_eq!(Gate::Sigmoid.apply(0.0), 0.5);
        assert!((Gate::Sigmoid.apply(2.0) - 0.880_797_1).abs() < 1e-6);
        assert_eq!(Gate::HardSigmoid.apply(-4.0), 0.0);
        assert_eq!(Gate::HardSigmoid.apply(0.0), 0.5);
        assert_eq!(Gate::HardSigmoid.apply(4.0), 1.0);
    }
}
