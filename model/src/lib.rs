//! RepViT ("RepViT: Revisiting Mobile CNN From ViT Perspective", CVPR 2024) composed from
//! `mobile-cnn-kernels`. This crate holds configuration, loading and re-parameterisation; all the
//! arithmetic of inference lives in the kernel crate.
//!
//! ```
//! use mobile_cnn_kernels::Kernels;
//! use repvit::{Config, RepVit};
//! let k = Kernels::new().unwrap();
//! // A small custom RepViT with random weights; `RepVit::load` reads timm's `model.safetensors`.
//! let cfg = Config::custom(&[16, 32], &[1, 1], false, 10, true).unwrap();
//! let model = RepVit::random(&cfg, 7, &k).unwrap();
//! let logits = model.forward(&vec![0.5; 2 * 3 * 32 * 32], [2, 3, 32, 32]).unwrap();
//! assert_eq!(logits.len(), 2 * 10);
//! // Wrong input shapes are errors, not panics.
//! assert!(model.forward(&vec![0.5; 100], [2, 3, 32, 32]).is_err());
//! ```

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod fuse;
pub mod model;
pub mod npy;
pub mod official;
pub mod preprocess;
pub mod weights;

pub use checkpoint::StateDict;
pub use config::{Config, VARIANTS, Variant};
pub use error::Error;
pub use model::{
    BatchSplit, DistinctLayer, FeatureMap, LayerBench, LayerInfo, LayerKind, RepVit,
    distinct_layers,
};
pub use weights::{FusedWeights, Layout};
