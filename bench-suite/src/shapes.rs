//! The activation shapes of RepViT at 224x224 input, as plain data, for kernel benchmarks.

/// Resolution and channels of each stage of every RepViT variant at 224x224 (stages 1 to 4 run at
/// 56, 28, 14 and 7 pixels square). Channels from the paper's configs (M0.9/M1: 48..384, M1.0:
/// 56..448, M1.1/M1.5/M2/M3: 64..512, M2.3: 80..640).
pub const STAGE_CHANNELS: [(usize, [usize; 4]); 4] = [
    (56, [48, 56, 64, 80]),
    (28, [96, 112, 128, 160]),
    (14, [192, 224, 256, 320]),
    (7, [384, 448, 512, 640]),
];

/// Depthwise 3x3 shapes as (stride, input height = width, channels): every stride-1 token mixer,
/// and every stride-2 spatial downsample (the input of stage i at the width of stage i).
pub fn dwconv_shapes() -> Vec<(usize, usize, usize)> {
    let mut v = Vec::new();
    for (hw, cs) in STAGE_CHANNELS {
        for c in cs {
            v.push((1, hw, c));
        }
    }
    for (hw, cs) in &STAGE_CHANNELS[..3] {
        for c in cs {
            v.push((2, *hw, *c));
        }
    }
    v
}

/// Pointwise (1x1) shapes as (P pixels, K input channels, N output channels), deduplicated, in the
/// order stage by stage: every channel mixer (C -> 2C, 2C -> C at the stage's resolution) and every
/// downsample's channel projection (C_(i-1) -> C_i at stage i's resolution) of M0.9 to M2.3.
pub fn pointwise_shapes() -> Vec<(usize, usize, usize)> {
    let mut v = Vec::new();
    for (s, (hw, cs)) in STAGE_CHANNELS.iter().enumerate() {
        for (vi, &c) in cs.iter().enumerate() {
            let p = hw * hw;
            if s > 0 {
                v.push((p, STAGE_CHANNELS[s - 1].1[vi], c));
            }
            v.push((p, c, 2 * c));
            v.push((p, 2 * c, c));
        }
    }
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(*s));
    v
}
