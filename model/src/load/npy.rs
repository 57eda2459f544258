//! `.npy` arrays in and out. Reading (via the `npyz` crate) accepts what numpy users have:
//! float32, float64 (what `np.random` gives) and float16, little- or big-endian, C or Fortran
//! order; everything is converted to float32 in C order, and [`read_converting`] says what was
//! converted. Writing produces little-endian float32 in C order (what `numpy.save` writes for a
//! `float32` array).
//!
//! Errors name the file and what was expected and found: a bad magic or version, a header that
//! does not fit in the file, an unparsable header, a dtype that is not a float of 2, 4 or 8 bytes,
//! an element count that overflows or does not match the data bytes, and float64 values beyond
//! float32's range (they would silently become infinities).

use std::path::Path;

use npyz::{DType, Endianness, NpyFile, Order, TypeChar};

use crate::error::{Error, read_file};

const MAGIC: &[u8] = b"\x93NUMPY";

/// An f32 array: shape and elements in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements, row-major.
    pub data: Vec<f32>,
}

fn bad(path: &Path, expected: &str, found: impl Into<String>) -> Error {
    Error::Input {
        what: format!("{} (npy)", path.display()),
        expected: expected.to_string(),
        found: found.into(),
    }
}

/// Checks the fixed prefix (magic, version, header length) so that the header lies inside the
/// file before `npyz` allocates for it; returns the offset of the data.
fn check_prefix(path: &Path, bytes: &[u8]) -> Result<(usize, usize), Error> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(
            path,
            "a .npy file (magic \\x93NUMPY)",
            format!("{} bytes without the magic", bytes.len()),
        ));
    }
    let (hlen, hstart): (usize, usize) = match (bytes[6], bytes[7]) {
        (1, 0) => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        (2 | 3, 0) if bytes.len() >= 12 => {
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (usize::try_from(n).unwrap_or(usize::MAX), 12)
        }
        (major, minor) => {
            return Err(bad(
                path,
                "npy format version 1.0, 2.0 or 3.0",
                format!("version {major}.{minor} ({} bytes)", bytes.len()),
            ));
        }
    };
    match hstart.checked_add(hlen) {
        Some(end) if end <= bytes.len() => Ok((hstart, end)),
        _ => Err(bad(
            path,
            "a header within the file",
            format!(
                "a {hlen}-byte header declared in a {}-byte file (truncated?)",
                bytes.len()
            ),
        )),
    }
}

/// The deepest bracket nesting the header of an array of numbers needs: the header dict, the
/// `shape` tuple, and (for dtypes we refuse later with a clear message) a structured `descr`'s list
/// of field tuples with a subarray shape.
const MAX_HEADER_NESTING: usize = 4;

/// How deep `(`, `[` and `{` nest in `text`, outside quoted strings. `py_literal`'s parser (which
/// `npyz` also uses) backtracks exponentially on deep nesting: fuzzing found a 190-byte file with
/// 16 `[` that took 30 s to refuse (results/fuzz.md), so the depth is checked first.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' | '[' | '{' => {
                    depth += 1;
                    max = max.max(depth);
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    max
}

/// The element count of the header's `shape`, checked: `npyz` multiplies without checking.
fn checked_count(path: &Path, header: &[u8]) -> Result<(Vec<usize>, usize), Error> {
    let text =
        std::str::from_utf8(header).map_err(|_| bad(path, "a UTF-8 header", "invalid UTF-8"))?;
    let depth = nesting_depth(text);
    if depth > MAX_HEADER_NESTING {
        return Err(bad(
            path,
            &format!("a header dict nesting brackets at most {MAX_HEADER_NESTING} deep"),
            format!("{depth} levels"),
        ));
    }
    let value: py_literal::Value = text
        .trim_end()
        .parse()
        .map_err(|e| bad(path, "a Python dict literal header", format!("{e}")))?;
    let py_literal::Value::Dict(items) = value else {
        return Err(bad(path, "a Python dict literal header", text.trim()));
    };
    let shape = items
        .iter()
        .find(|(k, _)| k.as_string().is_some_and(|k| k == "shape"))
        .map(|(_, v)| v)
        .ok_or_else(|| bad(path, "a 'shape' entry in the header", text.trim()))?;
    let dims = match shape {
        py_literal::Value::Tuple(d) | py_literal::Value::List(d) => d,
        _ => return Err(bad(path, "a shape tuple", format!("{shape}"))),
    };
    let dims = dims
        .iter()
        .map(|d| match d {
            py_literal::Value::Integer(i) => usize::try_from(i).ok(),
            _ => None,
        })
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| bad(path, "a shape of non-negative integers", format!("{shape}")))?;
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| {
            bad(
                path,
                "a shape whose element count fits in memory",
                format!("{dims:?}"),
            )
        })?;
    Ok((dims, count))
}

/// Fortran-order elements (first index fastest) of `shape` rearranged into C order.
fn fortran_to_c(shape: &[usize], f: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(f.len());
    if f.is_empty() {
        return out;
    }
    // Fortran strides: 1, d0, d0*d1, ... (no overflow: their product is the element count).
    let mut strides = vec![1usize; shape.len()];
    for i in 1..shape.len() {
        strides[i] = strides[i - 1] * shape[i - 1];
    }
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..f.len() {
        let off: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.push(f[off]);
        // Advance the C-order multi-index (last axis fastest).
        for ax in (0..shape.len()).rev() {
            idx[ax] += 1;
            if idx[ax] < shape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    out
}

/// Parses `.npy` bytes into float32 C order; `path` only names the source in errors.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Array, Error> {
    parse_converting(path, bytes).map(|(a, _)| a)
}

/// As [`parse`], and a description of the conversion made (`None`: the file held little-endian
/// float32 in C order already), e.g. `"converted float64 (big-endian, Fortran order) to float32,
/// C order"`.
pub fn parse_converting(path: &Path, bytes: &[u8]) -> Result<(Array, Option<String>), Error> {
    let (hstart, data_start) = check_prefix(path, bytes)?;
    let (shape, count) = checked_count(path, &bytes[hstart..data_start])?;
    let npy = NpyFile::new(bytes).map_err(|e| bad(path, "a valid npy header", e.to_string()))?;
    let dtype = npy.dtype();
    let DType::Plain(ts) = &dtype else {
        return Err(bad(
            path,
            "a plain float dtype",
            format!("dtype {}", dtype.descr()),
        ));
    };
    let size = ts.size_field();
    if ts.type_char() != TypeChar::Float || !matches!(size, 2 | 4 | 8) {
        return Err(bad(
            path,
            "dtype float32, float64 or float16 ('<f4', '<f8', '<f2', either byte order)",
            format!("'{ts}'"),
        ));
    }
    let body = bytes.len() - data_start;
    let want = count.checked_mul(size as usize);
    if want != Some(body) {
        return Err(bad(
            path,
            &format!(
                "{} data bytes for shape {shape:?} of '{ts}'",
                want.map_or("too many".into(), |w| w.to_string())
            ),
            format!("{body} bytes"),
        ));
    }
    let order = npy.order();
    let read_err = |e: std::io::Error| bad(path, "readable data", e.to_string());
    let mut data: Vec<f32> = match size {
        4 => npy.into_vec::<f32>().map_err(read_err)?,
        2 => npy
            .into_vec::<half::f16>()
            .map_err(read_err)?
            .into_iter()
            .map(half::f16::to_f32)
            .collect(),
        _ => {
            let wide = npy.into_vec::<f64>().map_err(read_err)?;
            if let Some((i, v)) = wide
                .iter()
                .enumerate()
                .find(|(_, v)| v.is_finite() && v.abs() > f64::from(f32::MAX))
            {
                return Err(bad(
                    path,
                    "float64 values within float32's range",
                    format!("{v:e} at flat index {i}"),
                ));
            }
            wide.into_iter().map(|v| v as f32).collect()
        }
    };
    let big = ts.endianness() == Endianness::Big && size > 1;
    let fortran = order == Order::Fortran && shape.len() > 1;
    if fortran {
        data = fortran_to_c(&shape, &data);
    }
    let note = (size != 4 || big || fortran).then(|| {
        let name = match size {
            2 => "float16",
            4 => "float32",
            _ => "float64",
        };
        let mut how = Vec::new();
        if big {
            how.push("big-endian");
        }
        if fortran {
            how.push("Fortran order");
        }
        format!(
            "converted {name}{} to float32, C order",
            if how.is_empty() {
                String::new()
            } else {
                format!(" ({})", how.join(", "))
            }
        )
    });
    Ok((Array { shape, data }, note))
}

/// Reads a `.npy` file (any float dtype, byte order and memory order; see the module docs).
pub fn read(path: impl AsRef<Path>) -> Result<Array, Error> {
    let path = path.as_ref();
    parse(path, &read_file(path)?)
}

/// As [`read`], with the conversion note of [`parse_converting`].
pub fn read_converting(path: impl AsRef<Path>) -> Result<(Array, Option<String>), Error> {
    let path = path.as_ref();
    parse_converting(path, &read_file(path)?)
}

/// Encodes a float32 array as `.npy` (version 1.0) bytes.
pub fn encode(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Pad with spaces so that magic + version + length + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes a float32 `.npy` file. Errors when `data` does not hold `shape`'s element count.
pub fn write(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<(), Error> {
    let path = path.as_ref();
    if shape.iter().product::<usize>() != data.len() {
        return Err(bad(
            path,
            &format!(
                "{} elements for shape {shape:?}",
                shape.iter().product::<usize>()
            ),
            format!("{}", data.len()),
        ));
    }
    std::fs::write(path, encode(shape, data)).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        action: "write",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_depth_counts_brackets_outside_strings() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        assert_eq!(nesting_depth(header), 2);
        assert_eq!(nesting_depth("{'a': '[[[(', \"b\": \"{{\\\"((\"}"), 1);
        assert_eq!(nesting_depth("[[[[[{'shape': (3,)}]]]]]"), 7);
        assert_eq!(nesting_depth("{'descr': [('a', '<f4', (2,))]}"), 4);
        assert_eq!(nesting_depth("))]]{"), 1);
    }

    #[test]
    fn round_trip_and_errors() {
        let p = Path::new("x.npy");
        for shape in [vec![3], vec![2, 3], vec![1, 2, 1, 2], vec![]] {
            let n = shape.iter().product::<usize>();
            let data: Vec<f32> = (0..n).map(|i| i as f32 - 1.5).collect();
            let bytes = encode(&shape, &data);
            assert_eq!(bytes.len() % 4, 0);
            assert_eq!(
                parse(p, &bytes).unwrap(),
                Array {
                    shape: shape.clone(),
                    data
                }
            );
        }
        let good = encode(&[2, 2], &[1.0; 4]);
        assert!(
            parse(p, &good[..good.len() - 1])
                .unwrap_err()
                .to_string()
                .contains("data bytes")
        );
        let mut i8 = good.clone();
        let at = i8.windows(3).position(|w| w == b"<f4").unwrap();
        i8[at + 1] = b'i';
        assert!(parse(p, &i8).unwrap_err().to_string().contains("'<i4'"));
        assert!(
            parse(p, b"not an npy file")
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
    }
}
