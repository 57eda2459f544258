//! NEON kernels (4 f32 lanes).
