//! Images to the network's input, as timm's eval transform prepares them for RepViT.
//!
//! timm's `create_transform(**resolve_data_config({}, model=repvit))` is
//! `Resize(235, bicubic) -> CenterCrop(224) -> ToTensor -> Normalize(ImageNet mean, std)` on a PIL
//! RGB image (`235 = floor(224 / crop_pct)`, `crop_pct = 0.95`). This module reproduces it:
//!
//! - the shorter side goes to 235 and the longer to `floor(235 * long / short)` (torchvision's rule);
//! - resampling is PIL's bicubic (`a = -0.5`, support widened by the scale when downscaling, i.e.
//!   antialiased), separable, horizontal pass first, with PIL's 8-bit fixed-point coefficients and
//!   rounding to 8 bits after each pass; a side that keeps its size is not resampled;
//! - the crop offset is `round((resized - 224) / 2)` with Python's round-half-to-even;
//! - `v / 255`, then `(v - mean) / std` in f32, channel-major (CHW) like `ToTensor`.
//!
//! Only the 224 x 224 window that survives the crop is computed; each output pixel depends only on
//! its own coordinates, so this gives the same numbers as resizing the whole image first.

use std::path::Path;

use crate::error::{Error, read_file};

/// ImageNet mean per RGB channel (timm's `IMAGENET_DEFAULT_MEAN`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation per RGB channel (timm's `IMAGENET_DEFAULT_STD`).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The ImageNet-1k class names in class-index order, one per line, from timm's tables
/// (`model/tools/imagenet_classes.py`).
pub const IMAGENET_CLASSES: &str = include_str!("imagenet_classes.txt");

/// The name of ImageNet-1k class `index` (`None` beyond 999).
pub fn imagenet_class(index: usize) -> Option<&'static str> {
    IMAGENET_CLASSES.lines().nth(index)
}

/// An 8-bit RGB image, rows top to bottom, pixels interleaved `RGBRGB...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes.
    pub data: Vec<u8>,
}

impl Rgb8 {
    /// Wraps `data` (`height * width * 3` bytes).
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Rgb8, Error> {
        let img = Rgb8 {
            width,
            height,
            data,
        };
        img.check()?;
        Ok(img)
    }

    /// The fields are public: an error unless they describe a non-empty image.
    fn check(&self) -> Result<(), Error> {
        let (w, h) = (self.width, self.height);
        let want = w.checked_mul(h).and_then(|n| n.checked_mul(3));
        if w == 0 || h == 0 || want != Some(self.data.len()) {
            return Err(Error::Input {
                what: "RGB image".into(),
                expected: format!(
                    "width >= 1, height >= 1 and width * height * 3 bytes ({w} x {h})"
                ),
                found: format!("{} bytes", self.data.len()),
            });
        }
        Ok(())
    }

    /// Decodes a JPEG or PNG file and converts it to RGB (grey replicated, alpha dropped, as PIL's
    /// `convert("RGB")` does). EXIF orientation is not applied (neither timm nor PIL apply it).
    ///
    /// A JPEG that ends before its end-of-image marker (cut off in a download or a copy) is an
    /// error naming the file, as PIL's "image file is truncated"; [`Rgb8::open_with`] can accept
    /// it. 16-bit PNGs are reduced to 8 bits by rounding (`round(v16 / 257)`, the `image` crate's
    /// conversion), which maps 0..=65535 onto 0..=255 evenly. PIL (hence timm) keeps the high byte
    /// (`v16 >> 8`) of 16-bit RGB(A), at most one level from ours, and clips 16-bit greyscale to
    /// 255, which turns almost every pixel white: we keep the rounding, which preserves the
    /// picture, and document the difference (README, `classify --help`).
    pub fn open(path: impl AsRef<Path>) -> Result<Rgb8, Error> {
        Rgb8::open_with(path, false)
    }

    /// As [`Rgb8::open`]; `allow_truncated` accepts a JPEG without its end-of-image marker (the
    /// decoder fills what is missing).
    pub fn open_with(path: impl AsRef<Path>, allow_truncated: bool) -> Result<Rgb8, Error> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        Rgb8::decode_with(path, &bytes, allow_truncated)
    }

    /// Decodes JPEG or PNG `bytes`; `path` only names the source in errors. A truncated JPEG is an
    /// error (see [`Rgb8::open`]).
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Rgb8, Error> {
        Rgb8::decode_with(path, bytes, false)
    }

    /// As [`Rgb8::decode`]; `allow_truncated` accepts a JPEG without its end-of-image marker.
    pub fn decode_with(path: &Path, bytes: &[u8], allow_truncated: bool) -> Result<Rgb8, Error> {
        // The decoders' messages may span lines; the error stays one line.
        let bad = |found: String| Error::Input {
            what: path.display().to_string(),
            expected: "a decodable JPEG or PNG image".into(),
            found: found.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        let img = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| bad(e.to_string()))?;
        if img.format().is_none() {
            return Err(bad(format!(
                "{} bytes in no known image format",
                bytes.len()
            )));
        }
        let jpeg = img.format() == Some(image::ImageFormat::Jpeg);
        let img = img.decode().map_err(|e| bad(e.to_string()))?;
        if jpeg
            && !allow_truncated
            && let JpegEnd::Truncated(at) = jpeg_end(bytes)
        {
            return Err(Error::Input {
                what: path.display().to_string(),
                expected: "a complete JPEG (ending with its end-of-image marker; \
                           --allow-truncated accepts it)"
                    .into(),
                found: format!("a JPEG truncated at byte {at} of {}", bytes.len()),
            });
        }
        let rgb = img.to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        Rgb8::new(w, h, rgb.into_raw()).map_err(|_| bad(format!("a {w} x {h} image")))
    }
}

/// Whether a JPEG's marker structure reaches its end-of-image marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JpegEnd {
    /// The EOI marker (`FF D9`) was reached.
    Complete,
    /// The data ended (at this byte offset) inside a segment or the entropy-coded data.
    Truncated(usize),
}

/// Walks a JPEG's markers (ITU-T T.81 annex B): length-prefixed segments, and after each
/// start-of-scan the entropy-coded data up to the next marker (`FF` followed by a byte other than
/// `00`, a stuffed `FF`, or `D0..=D7`, the restart markers). An embedded EXIF thumbnail's EOI sits
/// inside an APP1 segment and is skipped with it. Not a JPEG (no SOI): `Complete` (the decoder
/// judges).
fn jpeg_end(b: &[u8]) -> JpegEnd {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return JpegEnd::Complete;
    }
    let mut i = 2usize;
    loop {
        // A marker: one or more FF fill bytes, then the code.
        while i < b.len() && b[i] != 0xFF {
            i += 1;
        }
        while i < b.len() && b[i] == 0xFF {
            i += 1;
        }
        let Some(&code) = b.get(i) else {
            return JpegEnd::Truncated(b.len());
        };
        i += 1;
        match code {
            0xD9 => return JpegEnd::Complete,
            // Standalone markers: TEM, RSTn (SOI again is not valid; the decoder reports it).
            0x01 | 0xD0..=0xD8 => continue,
            _ => {
                let Some(len) = b.get(i..i + 2) else {
                    return JpegEnd::Truncated(b.len());
                };
                i += usize::from(u16::from_be_bytes([len[0], len[1]]));
                if i > b.len() {
                    return JpegEnd::Truncated(b.len());
                }
                if code == 0xDA {
                    // Entropy-coded data up to the next marker.
                    loop {
                        match (b.get(i), b.get(i + 1)) {
                            (Some(0xFF), Some(&n)) if n != 0 && !(0xD0..=0xD7).contains(&n) => {
                                break;
                            }
                            (Some(_), Some(_)) => i += 1,
                            _ => return JpegEnd::Truncated(b.len()),
                        }
                    }
                }
            }
        }
    }
}

/// timm's eval transform for an ImageNet model: aspect-preserving bicubic resize of the shorter
/// side to `floor(size / crop_pct)`, center crop `size x size`, normalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalTransform {
    /// Output height and width (224).
    pub size: usize,
    /// Fraction of the resized shorter side kept by the crop (0.95 for RepViT).
    pub crop_pct: f64,
    /// Per-channel mean subtracted after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel divisor after subtracting the mean.
    pub std: [f32; 3],
}

impl Default for EvalTransform {
    /// RepViT's (every timm `repvit_*` pretrained config): 224, crop_pct 0.95, ImageNet mean/std.
    fn default() -> Self {
        EvalTransform {
            size: 224,
            crop_pct: 0.95,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

/// PIL's bicubic kernel (`a = -0.5`).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Fixed-point fraction bits of PIL's 8-bit resampling coefficients.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Resampling weights along one axis, for output positions `start..start + len` of an
/// `in_size -> out_size` resize.
#[derive(Debug)]
struct Axis {
    /// Per output position: first input index and number of taps.
    bounds: Vec<(usize, usize)>,
    /// `ksize` fixed-point weights per output position (unused taps are 0).
    weights: Vec<i32>,
    ksize: usize,
}

impl Axis {
    fn new(in_size: usize, out_size: usize, start: usize, len: usize) -> Axis {
        if in_size == out_size {
            // PIL skips the pass; the identity weights give the same bytes.
            return Axis {
                bounds: (start..start + len).map(|i| (i, 1)).collect(),
                weights: vec![1 << PRECISION_BITS; len],
                ksize: 1,
            };
        }
        let scale = in_size as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = 2.0 * filter_scale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(len);
        let mut weights = vec![0i32; len * ksize];
        let mut w = vec![0f64; ksize];
        for (j, out) in (start..start + len).enumerate() {
            let center = (out as f64 + 0.5) * scale;
            // `as` truncates toward zero, like PIL's `(int)` casts.
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = hi.saturating_sub(lo).min(ksize);
            let mut total = 0.0;
            for (t, wt) in w[..n].iter_mut().enumerate() {
                *wt = bicubic(((lo + t) as f64 - center + 0.5) / filter_scale);
                total += *wt;
            }
            let row = &mut weights[j * ksize..j * ksize + n];
            for (fixed, &wt) in row.iter_mut().zip(&w[..n]) {
                let wt = if total != 0.0 { wt / total } else { wt };
                let f = wt * f64::from(1u32 << PRECISION_BITS);
                *fixed = if f < 0.0 {
                    (f - 0.5) as i32
                } else {
                    (f + 0.5) as i32
                };
            }
            bounds.push((lo, n));
        }
        Axis {
            bounds,
            weights,
            ksize,
        }
    }

    /// Input indices `lo..hi` that the positions read.
    fn span(&self) -> (usize, usize) {
        let lo = self.bounds.iter().map(|b| b.0).min().unwrap_or(0);
        let hi = self.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(0);
        (lo, hi)
    }

    /// Weighted sum of `n` taps read by `px(tap)`, rounded and clipped to 8 bits as PIL does.
    fn apply(&self, j: usize, px: impl Fn(usize) -> u8) -> u8 {
        let (lo, n) = self.bounds[j];
        let k = &self.weights[j * self.ksize..j * self.ksize + n];
        let mut acc: i64 = 1 << (PRECISION_BITS - 1);
        for (t, &w) in k.iter().enumerate() {
            acc += i64::from(px(lo + t)) * i64::from(w);
        }
        (acc >> PRECISION_BITS).clamp(0, 255) as u8
    }
}

/// Python's `round(x / 2)` for an integer `x >= 0` (half to even).
fn half_round_even(x: usize) -> usize {
    let (q, r) = (x / 2, x % 2);
    if r == 1 && q % 2 == 1 { q + 1 } else { q }
}

impl EvalTransform {
    fn check(&self) -> Result<(), Error> {
        let ok = self.size >= 1
            && self.crop_pct > 0.0
            && self.crop_pct <= 1.0
            && self.std.iter().all(|s| s.is_finite() && *s != 0.0)
            && self.mean.iter().all(|m| m.is_finite());
        if ok {
            Ok(())
        } else {
            Err(Error::Config {
                reason: format!(
                    "eval transform: expected size >= 1, 0 < crop_pct <= 1, finite mean and non-zero std, found {self:?}"
                ),
            })
        }
    }

    /// The side the shorter image side is resized to: `floor(size / crop_pct)` (235 for RepViT).
    pub fn scale_size(&self) -> usize {
        (self.size as f64 / self.crop_pct).floor() as usize
    }

    /// `(width, height)` of the resized image, before the crop (torchvision's `Resize(int)`: the
    /// shorter side becomes `scale_size`, the longer `floor(scale_size * long / short)`).
    pub fn resized_dims(&self, width: usize, height: usize) -> (usize, usize) {
        let s = self.scale_size();
        let long_of = |long: usize, short: usize| {
            (s as u128 * long as u128 / short.max(1) as u128).min(usize::MAX as u128) as usize
        };
        if width <= height {
            (s, long_of(height, width))
        } else {
            (long_of(width, height), s)
        }
    }

    /// `(left, top)` of the center crop in the resized image (torchvision's `CenterCrop`).
    pub fn crop_offset(&self, width: usize, height: usize) -> (usize, usize) {
        let (w, h) = self.resized_dims(width, height);
        (
            half_round_even(w.saturating_sub(self.size)),
            half_round_even(h.saturating_sub(self.size)),
        )
    }

    /// The cropped, resized 8-bit image (`size x size`), before normalisation.
    pub fn resize_crop(&self, img: &Rgb8) -> Result<Rgb8, Error> {
        self.check()?;
        img.check()?;
        let n = self.size;
        let (rw, rh) = self.resized_dims(img.width, img.height);
        let (left, top) = self.crop_offset(img.width, img.height);
        let xs = Axis::new(img.width, rw, left, n);
        let ys = Axis::new(img.height, rh, top, n);
        let (y0, y1) = ys.span();
        // Horizontal pass over the input rows the vertical pass reads: [y1 - y0][n][3].
        let mut tmp = vec![0u8; (y1 - y0) * n * 3];
        for (r, out_row) in tmp.chunks_exact_mut(n * 3).enumerate() {
            let row = &img.data[(y0 + r) * img.width * 3..(y0 + r + 1) * img.width * 3];
            for (j, px) in out_row.chunks_exact_mut(3).enumerate() {
                for (c, v) in px.iter_mut().enumerate() {
                    *v = xs.apply(j, |x| row[x * 3 + c]);
                }
            }
        }
        let mut out = vec![0u8; n * n * 3];
        for (i, out_row) in out.chunks_exact_mut(n * 3).enumerate() {
            for (j, px) in out_row.chunks_exact_mut(3).enumerate() {
                for (c, v) in px.iter_mut().enumerate() {
                    *v = ys.apply(i, |y| tmp[((y - y0) * n + j) * 3 + c]);
                }
            }
        }
        Rgb8::new(n, n, out)
    }

    /// The network input for one image: `[3, size, size]` f32, normalised.
    pub fn apply(&self, img: &Rgb8) -> Result<Vec<f32>, Error> {
        let crop = self.resize_crop(img)?;
        let plane = self.size * self.size;
        let mut out = vec![0f32; 3 * plane];
        for (p, px) in crop.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                // As torchvision: `to(float32) / 255`, then `sub_(mean).div_(std)`, all in f32.
                out[c * plane + p] = (f32::from(px[c]) / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        Ok(out)
    }

    /// Decodes and prepares every image into one NCHW batch `[N, 3, size, size]`.
    pub fn batch<P: AsRef<Path>>(&self, paths: &[P]) -> Result<(Vec<f32>, [usize; 4]), Error> {
        self.batch_with(paths, false)
    }

    /// As [`EvalTransform::batch`]; `allow_truncated` accepts truncated JPEGs (see
    /// [`Rgb8::open_with`]).
    pub fn batch_with<P: AsRef<Path>>(
        &self,
        paths: &[P],
        allow_truncated: bool,
    ) -> Result<(Vec<f32>, [usize; 4]), Error> {
        if paths.is_empty() {
            return Err(Error::Input {
                what: "image list".into(),
                expected: "at least one image".into(),
                found: "none".into(),
            });
        }
        let mut data = Vec::with_capacity(paths.len() * 3 * self.size * self.size);
        for p in paths {
            data.extend(self.apply(&Rgb8::open_with(p, allow_truncated)?)?);
        }
        Ok((data, [paths.len(), 3, self.size, self.size]))
    }
}

/// Softmax of one row of logits, in f64 for the sums.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits
        .iter()
        .map(|&l| (f64::from(l) - f64::from(max)).exp())
        .collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / total) as f32).collect()
}

/// The `k` largest probabilities of one row of logits, as `(class index, probability)`, largest
/// first (ties: lower index first).
pub fn top_k(logits: &[f32], k: usize) -> Vec<(usize, f32)> {
    let p = softmax(logits);
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx.into_iter().map(|i| (i, p[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_offsets_follow_torchvision() {
        let t = EvalTransform::default();
        assert_eq!(t.scale_size(), 235);
        assert_eq!(t.resized_dims(300, 260), (271, 235));
        assert_eq!(t.resized_dims(48, 64), (235, 313));
        assert_eq!(t.resized_dims(235, 235), (235, 235));
        // (235 - 224) / 2 = 5.5 rounds to 6; (271 - 224) / 2 = 23.5 rounds to 24;
        // (313 - 224) / 2 = 44.5 rounds to 44.
        assert_eq!(t.crop_offset(300, 260), (24, 6));
        assert_eq!(t.crop_offset(48, 64), (6, 44));
        assert_eq!(half_round_even(0), 0);
        assert_eq!(half_round_even(3), 2);
        assert_eq!(half_round_even(5), 2);
        assert_eq!(half_round_even(8), 4);
    }

    #[test]
    fn kernel_weights_sum_to_one_and_identity_is_exact() {
        for (i, o) in [(300, 271), (48, 235), (1000, 235), (7, 235)] {
            let a = Axis::new(i, o, 0, o);
            for j in 0..o {
                let (_, n) = a.bounds[j];
                let s: i64 = a.weights[j * a.ksize..j * a.ksize + n]
                    .iter()
                    .map(|&w| i64::from(w))
                    .sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= 8,
                    "{i}->{o} [{j}]: {s}"
                );
            }
        }
        let img = Rgb8::new(235, 235, (0..235 * 235 * 3).map(|i| i as u8).collect()).unwrap();
        let t = EvalTransform::default();
        let c = t.resize_crop(&img).unwrap();
        for y in 0..224 {
            for x in 0..224 * 3 {
                assert_eq!(
                    c.data[y * 224 * 3 + x],
                    img.data[(y + 6) * 235 * 3 + 18 + x]
                );
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = Rgb8::new(97, 413, [10u8, 128, 250].repeat(97 * 413)).unwrap();
        let x = EvalTransform::default().apply(&img).unwrap();
        for (c, v) in [10u8, 128, 250].into_iter().enumerate() {
            let want = (f32::from(v) / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            assert!(
                x[c * 224 * 224..(c + 1) * 224 * 224]
                    .iter()
                    .all(|&g| g == want)
            );
        }
    }

    #[test]
    fn top_k_orders_probabilities() {
        let t = top_k(&[0.0, 3.0, 1.0, 3.0, -2.0], 3);
        assert_eq!(t.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 3, 2]);
        let p = softmax(&[0.0, 3.0, 1.0, 3.0, -2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((t[0].1 - p[1]).abs() == 0.0 && t[0].1 > 0.4);
        assert_eq!(top_k(&[1.0, 2.0], 5).len(), 2);
    }

    #[test]
    fn class_names() {
        assert_eq!(IMAGENET_CLASSES.lines().count(), 1000);
        assert_eq!(imagenet_class(0), Some("tench, Tinca tinca"));
        assert_eq!(imagenet_class(281), Some("tabby, tabby cat"));
        assert_eq!(imagenet_class(1000), None);
    }
}
