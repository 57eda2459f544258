//! AVX-512F kernels (16 f32 lanes).

pub(crate) mod act;
pub(crate) mod dwconv;
pub(crate) mod pointwise;
pub(crate) mod pointwise_bf16;
mod vector;
