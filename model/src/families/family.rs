//! What a family is to the shared runner ([`Family`]), and the step constructors every family
//! builds its layers with.

use mobile_cnn_kernels::{Activation, DwConv, Kernels, PackedPointwise};

use crate::error::{Error, KernelContext};
use crate::graph::Graph;
use crate::load::params::{Folded, Params};
use crate::preprocess::EvalTransform;

/// What a network family provides to the shared runner.
pub trait Family {
    /// The architecture's name (timm's where it has one).
    fn name(&self) -> &str;
    /// Input channels.
    fn in_chans(&self) -> usize;
    /// Classifier outputs.
    fn num_classes(&self) -> usize;
    /// timm's eval transform of the family's pretrained configurations.
    fn eval_transform(&self) -> EvalTransform;
    /// Reads every parameter from `p` under timm's names, folds BatchNorm, and appends the steps
    /// (weights packed for the ISA of `k`) to `g`.
    fn build(&self, p: &mut dyn Params, k: &Kernels, g: &mut Graph) -> Result<(), Error>;
}

/// Packs a pointwise layer at the precision of `k` (weights rounded once, here, at load). Only
/// the pointwise layers take `k.precision()`: the stem, depthwise, squeeze-excite, pooling and the
/// head stay f32, and so do biases, activations between layers and accumulators.
pub(crate) fn pack(k: &Kernels, name: &str, f: &Folded) -> Result<PackedPointwise, Error> {
    PackedPointwise::pack_precision(
        k.isa(),
        k.precision(),
        f.cin,
        f.cout,
        &f.weight,
        Some(&f.bias),
    )
    .layer(|| name.to_string())
}

/// A folded depthwise `[c, 1, k, k]` convolution (`k` from the weight length), padding `k / 2`.
pub(crate) fn depthwise(
    k: &Kernels,
    name: &str,
    f: &Folded,
    stride: usize,
    act: Activation,
) -> Result<DwConv, Error> {
    let taps = f.weight.len() / f.cout.max(1);
    let size = (1..=taps).find(|s| s * s == taps).unwrap_or(0);
    DwConv::create(k, f.cout, size, &f.weight, &f.bias, stride, act).layer(|| name.to_string())
}
