//! Squeeze-excite: per-channel means, `gate(fc2(inner(fc1(mean))))` with biases, then a per-channel
//! scale. RepViT and timm's `SEModule` use ReLU and sigmoid; MobileNetV3 uses ReLU and hard-sigmoid.
//!
//! The squeeze can come from the depthwise kernel's fused output sums (no extra pass over the tensor)
//! or be computed here. The excite can be handed to the next pointwise convolution as a row scale of
//! its weights ([`crate::PackedPointwise::scale_rows_into`]) or applied to the tensor in place. The two
//! fully connected layers run on the pointwise GEMM of the ISA in use, one row per image.

use crate::activation::{Activation, exp, relu6};
use crate::elementwise::{channel_sums, scale_channels_in_place};
use crate::error::{Error, Result};
use crate::pointwise::PackedPointwise;
use crate::tensor::Tensor;
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
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Gate::Sigmoid => 1.0 / (1.0 + exp(-x)),
            Gate::HardSigmoid => relu6(x + 3.0) * (1.0 / 6.0),
        }
    }
}

/// The rounding timm and MobileNetV3 use for the reduced width: `make_divisible(c * ratio, 8)`,
/// i.e. the nearest multiple of `divisor` (at least `divisor`), bumped up one step if that loses
/// more than 10 % of the value.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut r = (((v + d / 2.0) / d).floor() * d).max(d);
    if r < 0.9 * v {
        r += d;
    }
    r as usize
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
    c: usize,
    r: usize,
    fc1: PackedPointwise,
    fc2: PackedPointwise,
    inner: Activation,
    gate: Gate,
}

impl SqueezeExcite {
    /// Builds the module from PyTorch-layout weights: `fc1` `[r, c]` (a `[r, c, 1, 1]` convolution)
    /// with bias `[r]`, `fc2` `[c, r]` with bias `[c]`, packed for `isa`.
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
        let fc1 = PackedPointwise::pack(isa, c, r, fc1_w, Some(fc1_b))
            .map_err(|e| rename(e, "se fc1"))?;
        let fc2 = PackedPointwise::pack(isa, r, c, fc2_w, Some(fc2_b))
            .map_err(|e| rename(e, "se fc2"))?;
        Ok(SqueezeExcite {
            c,
            r,
            fc1,
            fc2,
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

    /// From per-image channel sums `[n, c]` over `pixels` pixels, writes the per-image channel scales
    /// `[n, c]`. `scratch` is grown as needed and reused (no allocation in steady state).
    pub fn scale_from_sums(
        &self,
        kernels: &Kernels,
        sums: &[f32],
        pixels: usize,
        scale: &mut [f32],
        scratch: &mut Vec<f32>,
    ) -> Result<()> {
        if sums.is_empty() || !sums.len().is_multiple_of(self.c) {
            return Err(Error::shape(
                "se channel sums [n, c]",
                format!("a multiple of {} elements", self.c),
                sums.len(),
            ));
        }
        if scale.len() != sums.len() {
            return Err(Error::shape("se scale [n, c]", sums.len(), scale.len()));
        }
        if pixels == 0 {
            return Err(Error::param("se pixels", "expected at least 1, found 0"));
        }
        let n = sums.len() / self.c;
        scratch.resize(n * (self.c + self.r), 0.0);
        let (mean, hidden) = scratch.split_at_mut(n * self.c);
        let inv = 1.0 / pixels as f32;
        for (m, s) in mean.iter_mut().zip(sums) {
            *m = s * inv;
        }
        let single = kernels.clone().with_threads(1)?;
        self.fc1
            .run_slices(&single, n, mean, hidden, self.inner, None)?;
        self.fc2
            .run_slices(&single, n, hidden, scale, Activation::Identity, None)?;
        for v in scale.iter_mut() {
            *v = self.gate.apply(*v);
        }
        Ok(())
    }

    /// Squeeze-excite on a tensor in place: channel means, gate, scale.
    pub fn apply(&self, kernels: &Kernels, t: &mut Tensor, scratch: &mut Vec<f32>) -> Result<()> {
        let s = t.shape();
        if s.c != self.c {
            return Err(Error::shape("se input channels", self.c, s.c));
        }
        let mut sums = vec![0.0; s.n * s.c];
        channel_sums(kernels, t, &mut sums)?;
        let mut scale = vec![0.0; s.n * s.c];
        self.scale_from_sums(kernels, &sums, s.h * s.w, &mut scale, scratch)?;
        scale_channels_in_place(kernels, t, &scale)
    }
}

fn rename(e: Error, what: &'static str) -> Error {
    match e {
        Error::Shape {
            expected, found, ..
        } => Error::Shape {
            what,
            expected,
            found,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_timm_for_repvit_widths() {
        let want = [
            (48, 16),
            (56, 16),
            (64, 16),
            (80, 24),
            (96, 24),
            (112, 32),
            (128, 32),
            (160, 40),
            (192, 48),
            (224, 56),
            (256, 64),
            (320, 80),
            (384, 96),
            (448, 112),
            (512, 128),
            (640, 160),
        ];
        for (c, r) in want {
            assert_eq!(make_divisible(c as f64 * 0.25, 8), r, "c = {c}");
        }
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
