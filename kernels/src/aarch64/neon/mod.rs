//! NEON kernels (4 f32 lanes).

pub(crate) mod act;
pub(crate) mod dwconv;
pub(crate) mod pointwise;
