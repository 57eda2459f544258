//! timm's channel-width rules (`timm.layers.helpers.make_divisible`), which the families use to
//! derive squeeze-excite widths: a network rule, not a kernel's.

/// timm's `make_divisible(v, divisor, min_value, round_limit)` (`timm.layers.helpers`): the nearest
/// multiple of `divisor`, `int(v + divisor / 2) // divisor * divisor`, at least `min_value`
/// (`None` or 0 means `divisor`, as Python's `min_value or divisor`), then one `divisor` more if that
/// is below `round_limit * v`. Negative or NaN `v` count as 0.
///
/// ```
/// use repvit::families::widths::make_divisible_with;
/// assert_eq!(make_divisible_with(11.0, 8, None, 0.9), 16); // 8 would lose more than 10 %
/// assert_eq!(make_divisible_with(11.0, 8, None, 0.0), 8); // timm's SEModule: never bumped
/// ```
pub fn make_divisible_with(
    v: f64,
    divisor: usize,
    min_value: Option<usize>,
    round_limit: f64,
) -> usize {
    let d = divisor.max(1);
    let min = match min_value {
        Some(m) if m > 0 => m,
        _ => d,
    };
    let v = if v.is_nan() { 0.0 } else { v.max(0.0) };
    // `as usize` truncates like Python's int() for v >= 0 (and saturates far beyond any width).
    let mut r = ((v + d as f64 / 2.0) as usize / d * d).max(min);
    if (r as f64) < round_limit * v {
        r += d;
    }
    r
}

/// timm's default rule, `make_divisible(v, divisor)` (min_value = divisor, round_limit = 0.9): the
/// nearest multiple of `divisor`, bumped up one step if rounding down loses more than 10 %. This is
/// what MobileNetV3-style channel widths use; for the width of timm's squeeze-excite (which passes
/// `round_limit=0.`) use [`reduced_channels`].
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    make_divisible_with(v, divisor, None, 0.9)
}

/// The reduced width of timm's `SEModule` (`timm.layers.SqueezeExcite`, which RepViT builds as
/// `SqueezeExcite(c, 0.25)`): `make_divisible(c * ratio, 8, round_limit=0.)`. It differs from
/// [`make_divisible`] where rounding down loses more than 10 % (c = 44 at ratio 0.25: 8, not 16).
pub fn reduced_channels(c: usize, ratio: f64) -> usize {
    make_divisible_with(c as f64 * ratio, 8, None, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by timm 1.0.31 (`timm.layers.helpers.make_divisible`), see the comments.
    #[test]
    fn make_divisible_matches_timm() {
        // (c, make_divisible(c * 0.25, 8, round_limit=0.), make_divisible(c * 0.25, 8)) for c in
        // ...: the SE width RepViT gets (round_limit 0), and timm's default round_limit=0.9.
        #[rustfmt::skip]
        let widths = [
            (1, 8, 8), (3, 8, 8), (8, 8, 8), (12, 8, 8), (20, 8, 8), (24, 8, 8),
            (28, 8, 8), (36, 8, 16), (40, 8, 16), (44, 8, 16), (48, 16, 16), (52, 16, 16),
            (56, 16, 16), (60, 16, 16), (64, 16, 16), (72, 16, 24), (76, 16, 24), (80, 24, 24),
            (84, 24, 24), (88, 24, 24), (96, 24, 24), (100, 24, 24), (112, 32, 32), (120, 32, 32),
            (128, 32, 32), (136, 32, 32), (152, 40, 40), (160, 40, 40), (176, 48, 48), (192, 48, 48),
            (200, 48, 48), (224, 56, 56), (232, 56, 56), (256, 64, 64), (320, 80, 80), (384, 96, 96),
            (448, 112, 112), (512, 128, 128), (640, 160, 160), (1000, 248, 248), (1280, 320, 320),
        ];
        for (c, r0, r9) in widths {
            assert_eq!(reduced_channels(c, 0.25), r0, "reduced_channels({c})");
            assert_eq!(
                make_divisible_with(c as f64 * 0.25, 8, None, 0.0),
                r0,
                "c = {c}"
            );
            assert_eq!(
                make_divisible(c as f64 * 0.25, 8),
                r9,
                "make_divisible({c} / 4)"
            );
        }
        // [(v, make_divisible(v, 8)) for v in ...]: fractional values.
        for (v, want) in [
            (0.5, 8),
            (3.9, 8),
            (4.0, 8),
            (11.0, 16),
            (13.9, 16),
            (19.9, 24),
            (20.0, 24),
            (35.0, 32),
            (36.0, 40),
            (43.9, 40),
            (100.0, 104),
            (7.2, 8),
        ] {
            assert_eq!(make_divisible(v, 8), want, "make_divisible({v}, 8)");
        }
        // min_value: make_divisible(3, 8, min_value=16) == 16; min_value=0 is falsy, so divisor.
        assert_eq!(make_divisible_with(3.0, 8, Some(16), 0.9), 16);
        assert_eq!(make_divisible_with(3.0, 8, Some(0), 0.9), 8);
        assert_eq!(make_divisible_with(f64::NAN, 8, None, 0.9), 8);
    }
}
