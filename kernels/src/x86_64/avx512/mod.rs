//! AVX-512F kernels (16 f32 lanes).
