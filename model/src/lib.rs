//! RepViT ("RepViT: Revisiting Mobile CNN From ViT Perspective", CVPR 2024), MobileNetV3-Large/
//! -Small and MobileNetV2 composed from `mobile-cnn-kernels`, all run by one [`Network`]. This
//! crate holds configuration, loading and re-parameterisation (BatchNorm folded at load); all the
//! arithmetic of inference lives in the kernel crate. Each family ([`Family`]: [`Config`] for
//! RepViT, [`MobileNetConfig`]) appends its steps to a [`Graph`]; [`Network::load`] detects the
//! family and configuration from a timm checkpoint's tensors (or checks a named one).
//!
//! Precision: a model is built for the [`Kernels`](mobile_cnn_kernels::Kernels) it is given, tier
//! and precision. With `Kernels::with_precision(Precision::Bf16)` (or `KERNELS_PRECISION=bf16`,
//! `repvit --precision bf16`) the pointwise layers are packed at load with bf16 weights and run
//! with bf16-rounded inputs and f32 accumulation; the stem, depthwise convolutions,
//! squeeze-excite, pooling, the head, biases and the activations between layers stay f32.
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
pub mod family;
pub mod fuse;
pub mod mobilenet;
pub mod model;
pub mod npy;
pub mod official;
pub mod preprocess;
pub mod weights;

pub use checkpoint::StateDict;
pub use config::{Config, VARIANTS, Variant};
pub use error::Error;
pub use family::{Arch, Family};
pub use mobilenet::{MobileNetConfig, MobileNetKind};
pub use model::{
    BatchSplit, DistinctLayer, FeatureMap, Graph, LayerBench, LayerInfo, LayerKind, Network,
    RepVit, distinct_layers,
};
pub use weights::{FusedWeights, Layout};
