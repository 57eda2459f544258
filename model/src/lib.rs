//! RepViT ("RepViT: Revisiting Mobile CNN From ViT Perspective", CVPR 2024), MobileNetV3-Large/
//! -Small and MobileNetV2 composed from `mobile-cnn-kernels`, all run by one [`Network`]. This
//! crate holds configuration, loading and re-parameterisation (BatchNorm folded at load); all the
//! arithmetic of inference lives in the kernel crate. Each family ([`Family`]: [`RepVitConfig`] for
//! RepViT, [`MobileNetConfig`]) appends its steps to a [`Graph`]; [`Network::load`] detects the
//! family and configuration from a timm checkpoint's tensors (or checks a named one).
//!
//! Precision: a model is built for the [`Kernels`](mobile_cnn_kernels::Kernels) it is given, tier
//! and precision. With `Kernels::with_precision(Precision::Bf16)` (or `KERNELS_PRECISION=bf16`,
//! `repvit --precision bf16`) the pointwise layers are packed at load with bf16 weights and run
//! with bf16-rounded inputs and f32 accumulation; the stem, depthwise convolutions,
//! squeeze-excite, pooling, the head, biases and the activations between layers stay f32.
//!
//! Layout: [`graph`] (the step list, a precision per tensor), [`plan`] (shape inference, buffer
//! slots, the workspace; allocation failures are errors), [`network`] (loading, forward, the
//! runner), [`inspect`] (per-layer table and timing), [`load`] (state dicts, parameters,
//! BatchNorm folding, npy), [`families`] (RepViT, the MobileNets), [`cores`] (where the pool's threads
//! run). The threaded depthwise (row bands, squeeze-excite sums in band order) and the NCHW <->
//! NHWC copies are the kernel crate's (`DwConv::run_bands`, `layout`): this crate holds no
//! `unsafe`.
//!
//! ```
//! use mobile_cnn_kernels::Kernels;
//! use repvit::{RepVitConfig, RepVit};
//! let k = Kernels::new().unwrap();
//! // A small custom RepViT with random weights; `RepVit::load` reads timm's `model.safetensors`.
//! let cfg = RepVitConfig::custom(&[16, 32], &[1, 1], false, 10, true).unwrap();
//! let model = RepVit::random(&cfg, 7, &k).unwrap();
//! let logits = model.forward(&vec![0.5; 2 * 3 * 32 * 32], [2, 3, 32, 32]).unwrap();
//! assert_eq!(logits.len(), 2 * 10);
//! // Wrong input shapes are errors, not panics.
//! assert!(model.forward(&vec![0.5; 100], [2, 3, 32, 32]).is_err());
//! ```

#![forbid(unsafe_code)]

pub mod cores;
pub mod error;
pub mod families;
pub mod graph;
pub mod inspect;
pub mod load;
pub mod network;
pub mod plan;
pub mod preprocess;

pub use error::Error;
pub use families::mobilenet::{MobileNetConfig, MobileNetKind};
pub use families::repvit::{FusedWeights, Layout, RepVitConfig, VARIANTS, Variant};
pub use families::{Arch, Family, all_names};
pub use graph::{Graph, TensorPrecision};
pub use inspect::{DistinctLayer, LayerBench, LayerInfo, LayerKind, bench_input, distinct_layers};
pub use load::checkpoint::StateDict;
pub use load::npy;
pub use mobile_cnn_kernels::dwconv::DW_PARALLEL_MACS;
pub use network::{BatchSplit, FeatureMap, Network, RepVit};
