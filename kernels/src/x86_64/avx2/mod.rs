//! AVX2+FMA kernels (8 f32 lanes).

pub(crate) mod act;
pub(crate) mod dwconv;
pub(crate) mod pointwise;
mod vector;
