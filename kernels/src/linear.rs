//! Fully connected layer with bias (a classifier head): `y[b] = W x[b] + bias` for a batch of rows,
//! run on the pointwise GEMM of the ISA in use (one GEMM row per batch item).

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::pointwise::PackedPointwise;
use crate::{Isa, Kernels};

/// A linear layer ready to run.
///
/// ```
/// use mobile_cnn_kernels::{Kernels, linear::Linear};
/// let k = Kernels::new().unwrap();
/// let fc = Linear::new(k.isa(), 2, 1, &[1.0, -1.0], Some(&[0.5])).unwrap();
/// let mut y = [0.0; 2];
/// fc.run(&k, &[3.0, 1.0, 0.0, 2.0], &mut y).unwrap(); // a batch of two rows
/// assert_eq!(y, [2.5, -1.5]);
/// ```
#[derive(Debug, Clone)]
pub struct Linear {
    packed: PackedPointwise,
}

impl Linear {
    /// From PyTorch-layout weights `[out, in]` and an optional bias `[out]`, packed for `isa`.
    pub fn new(
        isa: Isa,
        inputs: usize,
        outputs: usize,
        weights: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Self> {
        Ok(Linear {
            packed: PackedPointwise::pack(isa, inputs, outputs, weights, bias)?,
        })
    }

    /// Input features.
    pub fn inputs(&self) -> usize {
        self.packed.k()
    }

    /// Output features.
    pub fn outputs(&self) -> usize {
        self.packed.n()
    }

    /// `x` is `[batch, inputs]`, `y` is `[batch, outputs]`.
    pub fn run(&self, kernels: &Kernels, x: &[f32], y: &mut [f32]) -> Result<()> {
        let k = self.inputs();
        if x.is_empty() || !x.len().is_multiple_of(k) {
            return Err(Error::shape(
                "linear input [batch, in]",
                format!("a non-zero multiple of {k} elements"),
                x.len(),
            ));
        }
        self.packed
            .run_slices(kernels, x.len() / k, x, y, Activation::Identity, None)
    }
}
