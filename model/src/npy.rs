//! A minimal `.npy` reader and writer for little-endian f32, C order (what `numpy.save` writes for
//! a `float32` array): enough for image batches in and logits out.

use std::path::Path;

use crate::error::Error;

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

/// The value of `'key': value` in a numpy header dict (up to the next `,` outside parentheses).
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// Parses `.npy` bytes; `path` only names the source in errors.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Array, Error> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(
            path,
            "a .npy file (magic \\x93NUMPY)",
            format!("{} bytes without the magic", bytes.len()),
        ));
    }
    let (hlen, hstart) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => {
            return Err(bad(
                path,
                "npy format version 1, 2 or 3",
                format!("version {v}"),
            ));
        }
    };
    let header = bytes
        .get(hstart..hstart + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| {
            bad(
                path,
                "a complete UTF-8 header",
                "a truncated or invalid header",
            )
        })?;
    let descr =
        field(header, "descr").ok_or_else(|| bad(path, "a 'descr' field", header.trim()))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    if descr != "<f4" {
        return Err(bad(
            path,
            "dtype '<f4' (little-endian float32)",
            format!("'{descr}'"),
        ));
    }
    if field(header, "fortran_order") != Some("False") {
        return Err(bad(path, "C order (fortran_order False)", header.trim()));
    }
    let shape_txt =
        field(header, "shape").ok_or_else(|| bad(path, "a 'shape' field", header.trim()))?;
    let shape = shape_txt
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| bad(path, "a shape of integers", shape_txt))?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(path, "a shape that fits in memory", shape_txt))?;
    let body = &bytes[hstart + hlen..];
    if count.checked_mul(4) != Some(body.len()) {
        return Err(bad(
            path,
            &format!("{} data bytes for shape {shape:?}", count.saturating_mul(4)),
            format!("{} bytes", body.len()),
        ));
    }
    let data = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Array { shape, data })
}

/// Reads a float32 `.npy` file.
pub fn read(path: impl AsRef<Path>) -> Result<Array, Error> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })?;
    parse(path, &bytes)
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
        let mut f8 = good.clone();
        let at = f8.windows(3).position(|w| w == b"<f4").unwrap();
        f8[at + 2] = b'8';
        assert!(parse(p, &f8).unwrap_err().to_string().contains("'<f8'"));
        assert!(
            parse(p, b"not an npy file")
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
    }
}
