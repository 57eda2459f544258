//! Portable kernels: plain Rust, no intrinsics, structured like the SIMD ones (row by row, border
//! columns split from the interior) so that the compiler can vectorise the channel loops.

pub(crate) mod dwconv;
pub(crate) mod pointwise;
