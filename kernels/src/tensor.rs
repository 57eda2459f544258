//! NHWC f32 activations in 64-byte aligned buffers.

use aligned_vec::{AVec, ConstAlign};

use crate::error::{Error, Result};

/// Alignment of every buffer the crate allocates: one cache line, one AVX-512 register.
pub const ALIGN: usize = 64;

/// A 64-byte aligned, heap-allocated `f32` buffer.
pub type AlignedBuf = AVec<f32, ConstAlign<ALIGN>>;

/// Allocates a zeroed, 64-byte aligned buffer of `len` floats.
pub fn aligned_zeros(len: usize) -> AlignedBuf {
    AVec::from_iter(ALIGN, std::iter::repeat_n(0.0f32, len))
}

/// Copies a slice into a 64-byte aligned buffer.
pub fn aligned_from_slice(data: &[f32]) -> AlignedBuf {
    AVec::from_slice(ALIGN, data)
}

/// Shape of an NHWC activation tensor: batch, height, width, channels (channels innermost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Images in the batch.
    pub n: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Channels (contiguous in memory).
    pub c: usize,
}

impl Shape {
    /// `Shape { n, h, w, c }`.
    pub const fn new(n: usize, h: usize, w: usize, c: usize) -> Shape {
        Shape { n, h, w, c }
    }

    /// Number of elements, or `None` on overflow.
    pub fn checked_len(&self) -> Option<usize> {
        self.n
            .checked_mul(self.h)?
            .checked_mul(self.w)?
            .checked_mul(self.c)
    }

    /// Number of elements. Panics only on `usize` overflow, which [`Tensor::zeros`] rules out.
    pub fn len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    /// Whether the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[n={}, h={}, w={}, c={}]",
            self.n, self.h, self.w, self.c
        )
    }
}

/// An NHWC f32 tensor whose data starts on a 64-byte boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Shape,
    data: AlignedBuf,
}

impl Tensor {
    /// A zero-filled tensor. Errors when the element count overflows `usize`.
    pub fn zeros(shape: Shape) -> Result<Tensor> {
        let len = shape
            .checked_len()
            .ok_or_else(|| Error::shape("tensor", "an element count that fits in usize", shape))?;
        Ok(Tensor {
            shape,
            data: aligned_zeros(len),
        })
    }

    /// A tensor holding a copy of `data` (NHWC order). Errors when the length does not match.
    ///
    /// ```
    /// use mobile_cnn_kernels::{Shape, Tensor};
    /// let t = Tensor::from_slice(Shape::new(1, 2, 2, 3), &[0.0; 12]).unwrap();
    /// assert_eq!(t.shape().c, 3);
    /// assert!(Tensor::from_slice(Shape::new(1, 2, 2, 3), &[0.0; 11]).is_err());
    /// ```
    pub fn from_slice(shape: Shape, data: &[f32]) -> Result<Tensor> {
        match shape.checked_len() {
            Some(len) if len == data.len() => Ok(Tensor {
                shape,
                data: aligned_from_slice(data),
            }),
            _ => Err(Error::shape(
                "tensor data",
                format!("{} elements for {shape}", shape.len()),
                data.len(),
            )),
        }
    }

    /// Converts from NCHW (PyTorch's layout) to NHWC.
    pub fn from_nchw(shape: Shape, nchw: &[f32]) -> Result<Tensor> {
        let mut t = Tensor::zeros(shape)?;
        if nchw.len() != t.data.len() {
            return Err(Error::shape(
                "NCHW data",
                format!("{} elements for {shape}", shape.len()),
                nchw.len(),
            ));
        }
        let Shape { n, h, w, c } = shape;
        for b in 0..n {
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        t.data[((b * h + y) * w + x) * c + ch] =
                            nchw[((b * c + ch) * h + y) * w + x];
                    }
                }
            }
        }
        Ok(t)
    }

    /// Copies the data out in NCHW (PyTorch's layout).
    pub fn to_nchw(&self) -> Vec<f32> {
        let Shape { n, h, w, c } = self.shape;
        let mut out = vec![0.0; self.data.len()];
        for b in 0..n {
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        out[((b * c + ch) * h + y) * w + x] =
                            self.data[((b * h + y) * w + x) * c + ch];
                    }
                }
            }
        }
        out
    }

    /// The shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The elements in NHWC order.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The elements in NHWC order, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Reinterprets the same elements under another shape with the same element count.
    pub fn reshape(&mut self, shape: Shape) -> Result<()> {
        if shape.checked_len() != Some(self.data.len()) {
            return Err(Error::shape(
                "reshape",
                format!("{} elements", self.data.len()),
                shape,
            ));
        }
        self.shape = shape;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned() {
        for len in [1, 3, 17, 1000] {
            assert_eq!(aligned_zeros(len).as_ptr() as usize % ALIGN, 0);
            let t = Tensor::zeros(Shape::new(1, len, 1, 3)).unwrap();
            assert_eq!(t.as_slice().as_ptr() as usize % ALIGN, 0);
        }
    }

    #[test]
    fn nchw_round_trip() {
        let s = Shape::new(2, 3, 4, 5);
        let v: Vec<f32> = (0..s.len()).map(|i| i as f32).collect();
        let t = Tensor::from_nchw(s, &v).unwrap();
        assert_eq!(t.to_nchw(), v);
        // element (b=1, c=2, y=1, x=3) lands at NHWC index ((1*3+1)*4+3)*5+2
        assert_eq!(
            t.as_slice()[((3 + 1) * 4 + 3) * 5 + 2],
            v[((5 + 2) * 3 + 1) * 4 + 3]
        );
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert!(Tensor::from_slice(Shape::new(1, 1, 1, 2), &[1.0]).is_err());
        assert!(Tensor::from_nchw(Shape::new(1, 1, 1, 2), &[1.0]).is_err());
        assert!(Tensor::zeros(Shape::new(usize::MAX, 2, 1, 1)).is_err());
        let mut t = Tensor::zeros(Shape::new(1, 2, 2, 2)).unwrap();
        assert!(t.reshape(Shape::new(1, 1, 1, 8)).is_ok());
        assert!(t.reshape(Shape::new(1, 1, 1, 9)).is_err());
    }
}

/// A raw `*mut f32` that may be moved to the worker threads of [`crate::Kernels`]' thread pool
/// (for outputs split into disjoint blocks, rows or bands across threads). Holding or sending one
/// is harmless; dereferencing it stays `unsafe`, and each caller argues there that the threads
/// touch disjoint elements.
#[derive(Debug, Clone, Copy)]
pub struct SendPtr(pub *mut f32);
// SAFETY: the wrapper only carries the address; every dereference is an `unsafe` operation whose
// caller guarantees that no two threads access the same elements (see the uses in conv.rs,
// pointwise.rs and the model crate's banded depthwise).
unsafe impl Send for SendPtr {}
// SAFETY: as above; shared use only copies the pointer.
unsafe impl Sync for SendPtr {}
impl SendPtr {
    /// The pointer.
    pub fn get(self) -> *mut f32 {
        self.0
    }
}
