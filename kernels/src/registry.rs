//! The one list of every kernel in the crate. Dispatch, the conformance tests and the benchmarks all
//! read it, so a kernel that is not listed here is neither used nor tested.
//!
//! A kernel is keyed by what it is, [`KernelKey`] `{ op, dtype, isa }`: the operation, the precision
//! of its weights and multiplies ([`Precision`]), and the instruction set. The precision of an entry
//! follows from its function type (f32 kernels take `f32` weights, half-precision pointwise kernels
//! `u16` bit patterns, see [`crate::pointwise::PointwiseHalfFn`]), so an entry cannot claim a
//! precision its code does not have.
//!
//! Every op with code of its own per tier is here: depthwise k x k, pointwise (f32 and half
//! precision), the squeeze-excite gate's matrix-vector product ([`Op::Gemv`]) and the activation in
//! place ([`Op::Activation`]). Two kinds of op have no per-tier code and so no entries: the dense 3x3
//! (the stem, [`crate::Conv3x3`]) is im2col plus this registry's pointwise kernel of its tier, and
//! the memory-bound ops (add, channel scale, channel sums, pooling, the gates' sigmoid) are one body
//! over `pulp`, run at the vector level of the tier (`elementwise::vectorize`). A new tier needs
//! entries here for the ops above, its folder of kernels, and its `pulp` level in `vectorize`.
//!
//! Choosing among kernels: for each key dispatch takes the first entry. Measured speeds of the
//! chosen kernels are in `results/` (see the README for the latest record).

use std::ops::Range;

use crate::error::{Error, Result};
use crate::generic;
pub use crate::ukernel::HalfTile;
use crate::ukernel::{
    ActivationFn, DwConvFn, DwConvGeom, DwConvIo, GemvFn, PointwiseFn, PointwiseHalfFn,
};
use crate::{Isa, Precision, portable, scalar};

/// The operations the crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Depthwise `k` x `k` convolution (k = 3, 5, 7), stride 1 or 2, padding `k / 2`
    /// ([`crate::DwConv`], [`crate::registry::DwConvKernel`]).
    DwConv {
        /// Kernel size.
        k: usize,
    },
    /// Pointwise (1x1) convolution as a packed GEMM with fused epilogue ([`crate::PackedPointwise`]).
    Pointwise,
    /// Matrix-vector product with bias, the two fully connected layers of the squeeze-excite gate
    /// ([`crate::se::GemvFn`]).
    Gemv,
    /// An activation applied in place where it is not fused into a kernel's store
    /// ([`crate::elementwise::Elementwise::activation_in_place`]).
    Activation,
}

impl Op {
    /// Short name.
    pub const fn name(self) -> &'static str {
        match self {
            Op::DwConv { k: 3 } => "dwconv3x3",
            Op::DwConv { k: 5 } => "dwconv5x5",
            Op::DwConv { k: 7 } => "dwconv7x7",
            Op::DwConv { .. } => "dwconv",
            Op::Pointwise => "pointwise",
            Op::Gemv => "gemv",
            Op::Activation => "activation",
        }
    }
}

/// What a kernel is: operation, precision and instruction set. Dispatch looks kernels up by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelKey {
    /// The operation.
    pub op: Op,
    /// The precision of its weights and multiplies.
    pub dtype: Precision,
    /// The instruction set it needs.
    pub isa: Isa,
}

/// The entry point of a kernel, typed by operation.
#[derive(Clone, Copy)]
enum KernelFn {
    DwConv(DwConvFn),
    /// The block function and the panel width `nr` its packed weights use.
    Pointwise(PointwiseFn, usize),
    /// A half-precision pointwise block function and its packed layout.
    PointwiseHalf(PointwiseHalfFn, HalfTile),
    Gemv(GemvFn),
    Activation(ActivationFn),
}

/// One registered kernel.
#[derive(Clone, Copy)]
pub struct KernelInfo {
    /// The operation it computes.
    pub op: Op,
    /// The instruction set it needs.
    pub isa: Isa,
    /// Unique name: operation, tile and ISA, e.g. `dwconv3x3_c16_avx512`.
    pub name: &'static str,
    func: KernelFn,
}

impl std::fmt::Debug for KernelInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelInfo")
            .field("op", &self.op)
            .field("isa", &self.isa)
            .field("name", &self.name)
            .finish()
    }
}

impl KernelInfo {
    /// The precision of the kernel's weights and multiplies (given by its function type).
    pub fn dtype(&self) -> Precision {
        match self.func {
            KernelFn::DwConv(_)
            | KernelFn::Pointwise(..)
            | KernelFn::Gemv(_)
            | KernelFn::Activation(_) => Precision::F32,
            KernelFn::PointwiseHalf(_, t) => t.dtype,
        }
    }

    /// What the kernel is: its registry key.
    pub fn key(&self) -> KernelKey {
        KernelKey {
            op: self.op,
            dtype: self.dtype(),
            isa: self.isa,
        }
    }

    /// Whether this CPU can run the kernel: its tier, and its precision on that tier.
    pub fn is_available(&self) -> bool {
        self.dtype().is_available_on(self.isa)
    }

    /// The error for a request of `what` (e.g. "a depthwise kernel") from this entry.
    fn not_a(&self, what: &str) -> Error {
        Error::param("kernel", format!("{} is not {what}", self.name))
    }

    /// The typed depthwise handle, or an error if this entry is another op.
    pub fn dwconv(&self) -> Result<DwConvKernel> {
        match (self.func, self.op) {
            (KernelFn::DwConv(f), Op::DwConv { k }) => Ok(DwConvKernel { info: *self, k, f }),
            _ => Err(self.not_a("a depthwise kernel")),
        }
    }

    /// The matrix-vector function, or an error if this entry is another op.
    pub(crate) fn gemv_fn(&self) -> Result<GemvFn> {
        match self.func {
            KernelFn::Gemv(f) => Ok(f),
            _ => Err(self.not_a("a matrix-vector kernel")),
        }
    }

    /// The in-place activation function, or an error if this entry is another op.
    pub(crate) fn activation_fn(&self) -> Result<ActivationFn> {
        match self.func {
            KernelFn::Activation(f) => Ok(f),
            _ => Err(self.not_a("an activation kernel")),
        }
    }

    /// The pointwise block function, or an error if this entry is another op.
    pub(crate) fn pointwise_fn(&self) -> Result<PointwiseEntry> {
        match self.func {
            KernelFn::Pointwise(f, nr) => Ok(PointwiseEntry::F32(f, nr)),
            KernelFn::PointwiseHalf(f, t) => Ok(PointwiseEntry::Half(f, t)),
            _ => Err(self.not_a("a pointwise kernel")),
        }
    }

    /// Output channels per packed panel of a pointwise kernel (`None` for other ops).
    pub fn nr(&self) -> Option<usize> {
        match self.func {
            KernelFn::Pointwise(_, nr) => Some(nr),
            KernelFn::PointwiseHalf(_, t) => Some(t.nr),
            _ => None,
        }
    }
}

/// A pointwise entry's function and layout.
#[derive(Clone, Copy)]
pub(crate) enum PointwiseEntry {
    /// f32 weights, panel width.
    F32(PointwiseFn, usize),
    /// Half-precision weights and their layout.
    Half(PointwiseHalfFn, HalfTile),
}

/// A depthwise kernel from the registry, callable safely on raw slices.
#[derive(Debug, Clone, Copy)]
pub struct DwConvKernel {
    /// The registry entry.
    pub info: KernelInfo,
    k: usize,
    f: DwConvFn,
}

impl DwConvKernel {
    /// Kernel size this kernel computes.
    pub fn kernel_size(&self) -> usize {
        self.k
    }

    /// Checks the ISA, the kernel size and every length against `geom` and the band, then computes
    /// the flat output rows `rows` into `output`, which holds exactly those rows (layouts and band
    /// contract in [`DwConvGeom`]). Writes nothing outside `output` and `sums`.
    #[allow(clippy::too_many_arguments)]
    pub fn run_rows(
        &self,
        geom: &DwConvGeom,
        rows: Range<usize>,
        input: &[f32],
        weights: &[f32],
        bias: &[f32],
        output: &mut [f32],
        sums: Option<&mut [f32]>,
    ) -> Result<()> {
        self.info.isa.check("the API")?;
        if geom.k != self.k {
            return Err(Error::param(
                "dwconv kernel size k",
                format!(
                    "{} computes k = {}, the geometry has k = {}",
                    self.info.name, self.k, geom.k
                ),
            ));
        }
        let io = DwConvIo {
            input,
            weights,
            bias,
            output,
            sums,
        };
        geom.check_io(&rows, &io)?;
        // SAFETY: the ISA was checked available, `geom.k` is this kernel's size, and `check_io`
        // validated the geometry, the band and every length: the whole contract of `DwConvFn`.
        unsafe { (self.f)(geom, rows, io) };
        Ok(())
    }

    /// [`run_rows`](Self::run_rows) over the whole tensor (`output` is `[n, oh, ow, c]`).
    pub fn run(
        &self,
        geom: &DwConvGeom,
        input: &[f32],
        weights: &[f32],
        bias: &[f32],
        output: &mut [f32],
        sums: Option<&mut [f32]>,
    ) -> Result<()> {
        let rows = if geom.stride == 1 || geom.stride == 2 {
            0..geom.rows()
        } else {
            0..0
        };
        self.run_rows(geom, rows, input, weights, bias, output, sums)
    }
}

static REGISTRY: &[KernelInfo] = &[
    KernelInfo {
        op: Op::DwConv { k: 3 },
        isa: Isa::Scalar,
        name: "dwconv3x3_c1_scalar",
        func: KernelFn::DwConv(scalar::dwconv::dwconv3x3_c1_scalar),
    },
    KernelInfo {
        op: Op::DwConv { k: 5 },
        isa: Isa::Scalar,
        name: "dwconv5x5_c1_scalar",
        func: KernelFn::DwConv(scalar::dwconv::dwconv5x5_c1_scalar),
    },
    KernelInfo {
        op: Op::DwConv { k: 7 },
        isa: Isa::Scalar,
        name: "dwconv7x7_c1_scalar",
        func: KernelFn::DwConv(scalar::dwconv::dwconv7x7_c1_scalar),
    },
    KernelInfo {
        op: Op::Pointwise,
        isa: Isa::Scalar,
        name: "pointwise_4x8_scalar",
        func: KernelFn::Pointwise(scalar::pointwise::pointwise_4x8_scalar, 8),
    },
    KernelInfo {
        op: Op::Pointwise,
        isa: Isa::Scalar,
        name: "pointwise_bf16_4x8_scalar",
        func: KernelFn::PointwiseHalf(
            scalar::pointwise::pointwise_bf16_4x8_scalar,
            HalfTile {
                nr: scalar::pointwise::BF16_NR,
                kpack: 2,
                dtype: Precision::Bf16,
            },
        ),
    },
    KernelInfo {
        op: Op::DwConv { k: 3 },
        isa: Isa::Portable,
        name: "dwconv3x3_c4_portable",
        func: KernelFn::DwConv(portable::dwconv::dwconv3x3_c4_portable),
    },
    KernelInfo {
        op: Op::DwConv { k: 5 },
        isa: Isa::Portable,
        name: "dwconv5x5_c4_portable",
        func: KernelFn::DwConv(portable::dwconv::dwconv5x5_c4_portable),
    },
    KernelInfo {
        op: Op::DwConv { k: 7 },
        isa: Isa::Portable,
        name: "dwconv7x7_c4_portable",
        func: KernelFn::DwConv(portable::dwconv::dwconv7x7_c4_portable),
    },
    KernelInfo {
        op: Op::Pointwise,
        isa: Isa::Portable,
        name: "pointwise_4x8_portable",
        func: KernelFn::Pointwise(
            portable::pointwise::pointwise_4x8_portable,
            portable::pointwise::NR,
        ),
    },
    // x86_64 pointwise entries
    #[cfg(target_arch = "x86_64")]
    KernelInfo {
        op: Op::Pointwise,
        isa: Isa::Avx512,
        name: "pointwise_8x32_avx512",
        func: KernelFn::Pointwise(crate::x86_64::avx512::pointwise::pointwise_8x32_avx512, 32),
    },
    #[cfg(target_arch = "x86_64")]
    KernelInfo {
        op: Op::Pointwise,
        isa: Isa::Avx512,
        name: "pointwise_bf16_8x32_avx512bf16",
        func: KernelFn::PointwiseHalf(
            crate::x86_64::avx512::pointwise_bf16::pointwise_bf16_8x32_avx512bf16,
            HalfTile {
                nr: crate::x86_64::avx512::pointwise_bf16::NR,
                kpack: 2,
                dtype: Precision::Bf16,
            },
        ),
    },
    #[cfg(target_arch = "x86_64")]
    KernelInfo {
        op: Op::Pointwise,
        isa: Isa::Avx2,
        name: "pointwise_6x16_avx2",
        func: KernelFn::Pointwise(crate::x86_64::avx2::pointwise::pointwise_6x16_avx2, 16),
    },
    // aarch64 pointwise entries
    #[cfg(target_arch = "aarch64")]
    KernelInfo {
        op: Op::Pointwise,
        isa: Isa::Neon,
        name: "pointwise_8x8_neon",
        func: KernelFn::Pointwise(crate::aarch64::neon::pointwise::pointwise_8x8_neon, 8),
    },
    // FEAT_FP16: f16 arithmetic (`fmla v.8h`), f16 accumulation.
    #[cfg(target_arch = "aarch64")]
    KernelInfo {
        op: Op::Pointwise,
        isa: Isa::Neon,
        name: "pointwise_f16_8x16_neonfp16",
        func: KernelFn::PointwiseHalf(
            crate::aarch64::pointwise_f16::pointwise_f16_8x16_neonfp16,
            HalfTile {
                nr: crate::aarch64::pointwise_f16::NR,
                kpack: 1,
                dtype: Precision::F16,
            },
        ),
    },
    // FEAT_BF16: `bfdot` on bf16 pairs, f32 accumulation.
    #[cfg(target_arch = "aarch64")]
    KernelInfo {
        op: Op::Pointwise,
        isa: Isa::Neon,
        name: "pointwise_bf16_8x8_neonbf16",
        func: KernelFn::PointwiseHalf(
            crate::aarch64::pointwise_bf16::pointwise_bf16_8x8_neonbf16,
            HalfTile {
                nr: crate::aarch64::pointwise_bf16::NR,
                kpack: crate::aarch64::pointwise_bf16::KPACK,
                dtype: Precision::Bf16,
            },
        ),
    },
    // x86_64 dwconv3x3 entries
    #[cfg(target_arch = "x86_64")]
    KernelInfo {
        op: Op::DwConv { k: 3 },
        isa: Isa::Avx512,
        name: "dwconv3x3_c32_avx512",
        func: KernelFn::DwConv(crate::x86_64::avx512::dwconv::dwconv3x3_c32_avx512),
    },
    #[cfg(target_arch = "x86_64")]
    KernelInfo {
        op: Op::DwConv { k: 3 },
        isa: Isa::Avx2,
        name: "dwconv3x3_c8_avx2",
        func: KernelFn::DwConv(crate::x86_64::avx2::dwconv::dwconv3x3_c8_avx2),
    },
    #[cfg(target_arch = "x86_64")]
    KernelInfo {
        op: Op::DwConv { k: 5 },
        isa: Isa::Avx512,
        name: "dwconv5x5_c16_avx512",
        func: KernelFn::DwConv(crate::x86_64::avx512::dwconv::dwconv5x5_c16_avx512),
    },
    #[cfg(target_arch = "x86_64")]
    KernelInfo {
        op: Op::DwConv { k: 7 },
        isa: Isa::Avx512,
        name: "dwconv7x7_c16_avx512",
        func: KernelFn::DwConv(crate::x86_64::avx512::dwconv::dwconv7x7_c16_avx512),
    },
    #[cfg(target_arch = "x86_64")]
    KernelInfo {
        op: Op::DwConv { k: 5 },
        isa: Isa::Avx2,
        name: "dwconv5x5_c8_avx2",
        func: KernelFn::DwConv(crate::x86_64::avx2::dwconv::dwconv5x5_c8_avx2),
    },
    #[cfg(target_arch = "x86_64")]
    KernelInfo {
        op: Op::DwConv { k: 7 },
        isa: Isa::Avx2,
        name: "dwconv7x7_c8_avx2",
        func: KernelFn::DwConv(crate::x86_64::avx2::dwconv::dwconv7x7_c8_avx2),
    },
    // aarch64 dwconv entries
    #[cfg(target_arch = "aarch64")]
    KernelInfo {
        op: Op::DwConv { k: 3 },
        isa: Isa::Neon,
        name: "dwconv3x3_c8_neon",
        func: KernelFn::DwConv(crate::aarch64::neon::dwconv::dwconv3x3_c8_neon),
    },
    #[cfg(target_arch = "aarch64")]
    KernelInfo {
        op: Op::DwConv { k: 5 },
        isa: Isa::Neon,
        name: "dwconv5x5_c8_neon",
        func: KernelFn::DwConv(crate::aarch64::neon::dwconv::dwconv5x5_c8_neon),
    },
    #[cfg(target_arch = "aarch64")]
    KernelInfo {
        op: Op::DwConv { k: 7 },
        isa: Isa::Neon,
        name: "dwconv7x7_c8_neon",
        func: KernelFn::DwConv(crate::aarch64::neon::dwconv::dwconv7x7_c8_neon),
    },
    // Matrix-vector products of the squeeze-excite gate (one body, `generic::gemv_body`, per tier).
    KernelInfo {
        op: Op::Gemv,
        isa: Isa::Scalar,
        name: "gemv_c64_scalar",
        func: KernelFn::Gemv(generic::gemv_c64_scalar),
    },
    KernelInfo {
        op: Op::Gemv,
        isa: Isa::Portable,
        name: "gemv_c64_portable",
        func: KernelFn::Gemv(generic::gemv_c64_portable),
    },
    #[cfg(target_arch = "x86_64")]
    KernelInfo {
        op: Op::Gemv,
        isa: Isa::Avx2,
        name: "gemv_c64_avx2",
        func: KernelFn::Gemv(generic::gemv_c64_avx2),
    },
    #[cfg(target_arch = "x86_64")]
    KernelInfo {
        op: Op::Gemv,
        isa: Isa::Avx512,
        name: "gemv_c128_avx512",
        func: KernelFn::Gemv(generic::gemv_c128_avx512),
    },
    #[cfg(target_arch = "aarch64")]
    KernelInfo {
        op: Op::Gemv,
        isa: Isa::Neon,
        name: "gemv_c64_neon",
        func: KernelFn::Gemv(generic::gemv_c64_neon),
    },
    // Activations in place (the vector activations of each tier's fused epilogues).
    KernelInfo {
        op: Op::Activation,
        isa: Isa::Scalar,
        name: "activation_scalar",
        func: KernelFn::Activation(generic::activation_scalar),
    },
    KernelInfo {
        op: Op::Activation,
        isa: Isa::Portable,
        name: "activation_c4_portable",
        func: KernelFn::Activation(portable::activation_c4_portable),
    },
    #[cfg(target_arch = "x86_64")]
    KernelInfo {
        op: Op::Activation,
        isa: Isa::Avx2,
        name: "activation_c8_avx2",
        func: KernelFn::Activation(crate::x86_64::activation_c8_avx2),
    },
    #[cfg(target_arch = "x86_64")]
    KernelInfo {
        op: Op::Activation,
        isa: Isa::Avx512,
        name: "activation_c16_avx512",
        func: KernelFn::Activation(crate::x86_64::activation_c16_avx512),
    },
    #[cfg(target_arch = "aarch64")]
    KernelInfo {
        op: Op::Activation,
        isa: Isa::Neon,
        name: "activation_c4_neon",
        func: KernelFn::Activation(crate::aarch64::neon::act::activation_c4_neon),
    },
];

/// Every registered kernel, including those this CPU cannot run.
pub fn all() -> &'static [KernelInfo] {
    REGISTRY
}

/// The kernels of `op`, including those this CPU cannot run.
pub fn for_op(op: Op) -> impl Iterator<Item = &'static KernelInfo> {
    REGISTRY.iter().filter(move |k| k.op == op)
}

/// The f32 kernel dispatch uses for `op` on `isa`.
pub fn find(op: Op, isa: Isa) -> Result<&'static KernelInfo> {
    for_op(op)
        .find(|k| k.isa == isa && k.dtype() == Precision::F32)
        .ok_or(Error::NoKernel {
            op: op.name(),
            isa: isa.name(),
        })
}

/// The kernel dispatch uses for `key` (registered, whether or not this CPU can run it).
pub fn find_key(key: KernelKey) -> Result<&'static KernelInfo> {
    REGISTRY
        .iter()
        .find(|k| k.key() == key)
        .ok_or(Error::NoKernelAt {
            op: key.op.name(),
            precision: key.dtype.name(),
            isa: key.isa.name(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_names_say_their_dtype() {
        for k in all() {
            let d = k.dtype();
            if d != Precision::F32 {
                assert!(
                    k.name
                        .starts_with(&format!("{}_{}_", k.op.name(), d.name())),
                    "{}",
                    k.name
                );
            }
        }
    }

    #[test]
    fn every_entry_is_found_by_its_key() {
        for k in all() {
            assert_eq!(find_key(k.key()).unwrap().key(), k.key());
        }
        let e = find_key(KernelKey {
            op: Op::DwConv { k: 3 },
            dtype: Precision::F16,
            isa: Isa::Scalar,
        })
        .unwrap_err();
        assert!(e.to_string().contains("f16"), "{e}");
    }

    #[test]
    fn names_are_unique_and_say_their_isa() {
        let mut names: Vec<_> = all().iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all().len());
        for k in all() {
            // A half-precision kernel may end with the tier plus the CPU feature it needs, as
            // XNNPACK names them (`..._neonfp16`, `..._neonbf16`, `..._avx512bf16`).
            let isa = k.isa.name();
            let with_feature = match k.dtype().feature_on(k.isa) {
                Some(f) if f.starts_with(isa) => f.to_string(),
                Some(f) => format!("{isa}{f}"),
                None => isa.to_string(),
            };
            assert!(
                k.name.starts_with(k.op.name())
                    && (k.name.ends_with(isa) || k.name.ends_with(&with_feature)),
                "{}",
                k.name
            );
        }
    }

    #[test]
    fn every_op_has_a_kernel_on_every_available_isa() {
        // The ops come from the registry itself, so an op added later is covered without editing
        // this test; the named ones must be among them.
        let mut ops: Vec<Op> = Vec::new();
        for k in all() {
            if !ops.contains(&k.op) {
                ops.push(k.op);
            }
        }
        for op in [
            Op::DwConv { k: 3 },
            Op::DwConv { k: 5 },
            Op::DwConv { k: 7 },
            Op::Pointwise,
            Op::Gemv,
            Op::Activation,
        ] {
            assert!(ops.contains(&op), "{} not registered", op.name());
        }
        for isa in Isa::available() {
            for &op in &ops {
                assert!(find(op, isa).is_ok(), "{} on {isa}", op.name());
            }
        }
    }
}
