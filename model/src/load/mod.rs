//! Loading: safetensors state dicts (wrapper prefixes, dtype conversion), named parameters and
//! BatchNorm folding, `.npy` arrays, and the size bounds checkpoints are read under. Nothing here
//! knows a family except the renaming of the official RepViT key names on reading.

pub mod bounds;
pub mod checkpoint;
pub mod fuse;
pub mod npy;
pub mod params;
