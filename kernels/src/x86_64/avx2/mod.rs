//! AVX2+FMA kernels (8 f32 lanes).
