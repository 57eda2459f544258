//! Size bounds for what a checkpoint's shapes may say: far beyond any published model, and small
//! enough that products of a few of them with an image size fit in `usize`. Sizes read off a file
//! are refused above them before anything is allocated for them.

/// Widths read off a checkpoint (channels, input channels, hidden widths) are refused above this:
/// 16x the widest published RepViT layer (`m2_3`'s 1280-wide channel mixers), and small enough that
/// every product of a few of them with an image size fits in `usize`.
pub const MAX_WIDTH: usize = 1 << 16;
/// Class counts read off a checkpoint are refused above this (ImageNet-22k has 21,841).
pub const MAX_CLASSES: usize = 1 << 20;
/// Channel-mixer expansion ratios read off a checkpoint are refused above this (RepViT uses 2).
pub const MAX_MLP_RATIO: usize = 64;
