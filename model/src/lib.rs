//! RepViT ("RepViT: Revisiting Mobile CNN From ViT Perspective", CVPR 2024) composed from
//! `mobile-cnn-kernels`. This crate holds configuration, loading and re-parameterisation; all the
//! arithmetic of inference lives in the kernel crate.

pub mod fuse;
