//! Shared helpers of the conformance tests: guarded buffers, tolerances and the list of kernels to
//! run. The tests themselves live in `tests/tests/`.
//!
//! Tolerance (documented once, used by every depthwise test): a kernel's output may differ from the
//! f64 reference by `2e-6 * S + 2e-6`, where `S = |bias| + sum |x * w|` is the magnitude of the
//! terms that were summed (f32 accumulation of ten terms loses at most about `10 * 2^-24 * S`; the
//! activations are at most 1.5-Lipschitz; GELU adds at most 1e-6 of approximation error).

use mobile_cnn_kernels::Precision;
use mobile_cnn_kernels::registry::{self, KernelInfo, Op};

/// Bit pattern written around every output buffer; any change means a kernel wrote out of bounds.
pub const GUARD_BITS: u32 = 0x7fc0_dead;
/// Floats of guard on each side of an output.
pub const GUARD: usize = 37;

/// The registered kernels of `op` (every precision) that this CPU can run; with `KERNELS_ISA` set,
/// only that tier's. Panics (failing the test) if `KERNELS_ISA` names a tier this CPU lacks, or if
/// some tier under test has no f32 kernel of `op`: a test that loops over this list has then
/// covered `op` on every tier this CPU has (scalar, portable, and AVX2 / AVX-512 or NEON).
pub fn kernels_under_test(op: Op) -> Vec<&'static KernelInfo> {
    let ks: Vec<_> = Precision::ALL
        .into_iter()
        .flat_map(|d| kernels_under_test_at(op, d))
        .collect();
    let only = only_isa();
    for isa in mobile_cnn_kernels::Isa::available() {
        if only.is_none_or(|o| o == isa) {
            assert!(
                ks.iter()
                    .any(|k| k.isa == isa && k.dtype() == Precision::F32),
                "no f32 kernel of {} on {isa}, which this CPU has",
                op.name()
            );
        }
    }
    ks
}

/// The tier `KERNELS_ISA` names, if set; panics if this CPU lacks it.
fn only_isa() -> Option<mobile_cnn_kernels::Isa> {
    match std::env::var("KERNELS_ISA") {
        Ok(v) if !v.trim().is_empty() => {
            Some(mobile_cnn_kernels::Isa::from_env_value(&v).unwrap_or_else(|e| panic!("{e}")))
        }
        _ => None,
    }
}

/// The registered kernels of `op` at `dtype` that this CPU can run (tier and precision); with
/// `KERNELS_ISA` set, only that tier's. May be empty (a precision this CPU has on no tier).
pub fn kernels_under_test_at(op: Op, dtype: Precision) -> Vec<&'static KernelInfo> {
    let only = only_isa();
    registry::for_op(op)
        .filter(|k| k.dtype() == dtype && k.is_available() && only.is_none_or(|i| i == k.isa))
        .collect()
}

/// An output buffer of `len` floats with NaN guards on both sides; the body is NaN-filled too, so
/// an element the kernel forgets to write fails the comparison.
#[derive(Debug)]
pub struct Guarded {
    buf: Vec<f32>,
    len: usize,
}

impl Guarded {
    /// `len` NaN floats between two guards.
    pub fn new(len: usize) -> Self {
        Guarded {
            buf: vec![f32::from_bits(GUARD_BITS); len + 2 * GUARD],
            len,
        }
    }

    /// The region the kernel may write.
    pub fn body(&mut self) -> &mut [f32] {
        &mut self.buf[GUARD..GUARD + self.len]
    }

    /// The region, read-only.
    pub fn get(&self) -> &[f32] {
        &self.buf[GUARD..GUARD + self.len]
    }

    /// Panics with `what` if any guard float changed.
    pub fn assert_guards(&self, what: &str) {
        let (head, rest) = self.buf.split_at(GUARD);
        let tail = &rest[self.len..];
        for (i, v) in head.iter().chain(tail).enumerate() {
            assert_eq!(
                v.to_bits(),
                GUARD_BITS,
                "{what}: guard float {i} overwritten"
            );
        }
    }
}

/// Copies `data` into a fresh allocation at an offset of `shift` floats, so kernels are also run on
/// inputs that are not 64-byte aligned. Returns the buffer and the range holding `data`.
pub fn shifted(data: &[f32], shift: usize) -> (Vec<f32>, std::ops::Range<usize>) {
    let mut v = vec![f32::from_bits(GUARD_BITS); data.len() + shift];
    v[shift..].copy_from_slice(data);
    (v, shift..shift + data.len())
}

/// Deterministic pseudo-random floats in `[-amp, amp)` (the kernel crate's generator).
pub use mobile_cnn_kernels::reference::rand_vec;

/// One pointwise test problem, shared by the f32 and bf16 pointwise tests (one case table): `p`
/// rows (pixels), `k` input and `n` output channels, the epilogue, the seed of the random operands,
/// the misalignment of the input (`shift` floats) and the threads.
#[derive(Debug, Clone)]
pub struct PointwiseCase {
    pub p: usize,
    pub k: usize,
    pub n: usize,
    pub act: mobile_cnn_kernels::Activation,
    pub bias: bool,
    pub residual: bool,
    pub seed: u64,
    pub shift: usize,
    pub threads: usize,
    /// Replaces the random input when set (`p * k` values).
    pub input: Option<Vec<f32>>,
    /// Replaces the random weights when set (`n * k` values).
    pub weights: Option<Vec<f32>>,
}

impl PointwiseCase {
    /// `p x k -> n`, identity, with bias, no residual, aligned, one thread, random operands.
    pub fn new(p: usize, k: usize, n: usize) -> PointwiseCase {
        PointwiseCase {
            p,
            k,
            n,
            act: mobile_cnn_kernels::Activation::Identity,
            bias: true,
            residual: false,
            seed: (p * 31 + k * 7 + n) as u64,
            shift: 0,
            threads: 1,
            input: None,
            weights: None,
        }
    }

    /// The input: the given one, else `p * k` random floats in `[-2, 2)`.
    pub fn input(&self) -> Vec<f32> {
        self.input
            .clone()
            .unwrap_or_else(|| rand_vec(self.seed, self.p * self.k, 2.0))
    }

    /// The weights (`[n][k]`): the given ones, else random floats in `[-1, 1)`.
    pub fn weights(&self) -> Vec<f32> {
        self.weights
            .clone()
            .unwrap_or_else(|| rand_vec(self.seed ^ 1, self.n * self.k, 1.0))
    }

    /// The bias (`n` random floats in `[-1, 1)`), when the case has one.
    pub fn bias_vec(&self) -> Option<Vec<f32>> {
        self.bias.then(|| rand_vec(self.seed ^ 2, self.n, 1.0))
    }

    /// The residual (`p * n` random floats in `[-2, 2)`), when the case has one.
    pub fn residual_vec(&self) -> Option<Vec<f32>> {
        self.residual
            .then(|| rand_vec(self.seed ^ 3, self.p * self.n, 2.0))
    }

    /// Every activation with and without bias and residual, on a 10 x 19 -> 37 problem.
    pub fn every_epilogue() -> Vec<PointwiseCase> {
        mobile_cnn_kernels::Activation::ALL
            .into_iter()
            .flat_map(|act| {
                [(false, false), (true, false), (false, true), (true, true)].map(
                    |(bias, residual)| PointwiseCase {
                        act,
                        bias,
                        residual,
                        ..PointwiseCase::new(10, 19, 37)
                    },
                )
            })
            .collect()
    }

    /// Inputs 1 to 7 floats past an aligned address, with a residual, on a 7 x 21 -> 33 problem.
    pub fn unaligned() -> Vec<PointwiseCase> {
        (1..8)
            .map(|shift| PointwiseCase {
                shift,
                residual: true,
                ..PointwiseCase::new(7, 21, 33)
            })
            .collect()
    }
}

/// Runs every kernel of `kernels` on one 196 x 112 -> 224 GELU problem at 1, 2 and 3 threads and
/// asserts the three outputs are the same bits.
pub fn pointwise_threads_give_identical_bits(kernels: &[&'static KernelInfo]) {
    use mobile_cnn_kernels::{Activation, Kernels, PackedPointwise};
    let (p, k, n) = (196, 112, 224);
    for &kernel in kernels {
        let input = rand_vec(5, p * k, 1.0);
        let w = rand_vec(6, n * k, 1.0);
        let packed = PackedPointwise::pack_for(kernel, k, n, &w, None).unwrap();
        let mut outs = Vec::new();
        for threads in [1, 2, 3] {
            let ks = Kernels::with_isa(kernel.isa)
                .unwrap()
                .with_threads(threads)
                .unwrap();
            let mut out = vec![0.0f32; p * n];
            packed
                .run_slices(&ks, p, &input, &mut out, Activation::Gelu, None)
                .unwrap();
            outs.push(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
        assert!(outs[0] == outs[1] && outs[1] == outs[2], "{}", kernel.name);
    }
}

/// The unit roundoff of f32, `2^-24`: one rounding moves a value by at most `U * |value|`.
pub const U: f64 = 1.0 / (1u64 << 24) as f64;

/// Largest slope of each activation (its Lipschitz constant), for propagating errors through it:
/// GELU's derivative peaks at about 1.1289 (x ~ 1.41), hard-swish's at 1.5 (x = 3).
pub fn lipschitz(act: mobile_cnn_kernels::Activation) -> f64 {
    use mobile_cnn_kernels::Activation as A;
    match act {
        A::Identity | A::Relu | A::Relu6 => 1.0,
        A::HardSwish => 1.5,
        A::Gelu => 1.13,
        // SiLU's derivative peaks at about 1.0998 (x ~ 2.4); sigmoid's at 1/4 (x = 0).
        A::Silu => 1.1,
        A::Sigmoid => 0.25,
    }
}

/// Absolute error an f32 evaluation of `act` at `y` may add beyond the propagated input error: the
/// approximation's own bound (GELU's absolute one; sigmoid's and SiLU's relative one, which covers
/// the `exp` and its roundings) plus a few roundings of the result.
pub fn act_eval_error(act: mobile_cnn_kernels::Activation, y: f64) -> f64 {
    use mobile_cnn_kernels::Activation as A;
    use mobile_cnn_kernels::activation::{GELU_ABS_TOLERANCE, SIGMOID_REL_TOLERANCE};
    let approx = match act {
        A::Gelu => GELU_ABS_TOLERANCE as f64,
        A::Silu | A::Sigmoid => SIGMOID_REL_TOLERANCE as f64 * y.abs() + 1e-35,
        _ => 0.0,
    };
    approx + 4.0 * U * y.abs()
}

/// The tier handles to test: every tier this CPU has (the scalar one included), or only the one
/// `KERNELS_ISA` names (panicking if this CPU lacks it).
pub fn tiers_under_test() -> Vec<mobile_cnn_kernels::Kernels> {
    use mobile_cnn_kernels::{Isa, Kernels};
    let isas = match std::env::var("KERNELS_ISA") {
        Ok(v) if !v.trim().is_empty() => {
            vec![Isa::from_env_value(&v).unwrap_or_else(|e| panic!("{e}"))]
        }
        _ => Isa::available(),
    };
    assert!(isas.contains(&Isa::Scalar) || isas.len() == 1);
    isas.into_iter()
        .map(|i| Kernels::with_isa(i).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// `|got - want| <= tol`, false when either is NaN (so a NaN result fails).
pub fn within(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol
}

/// Tolerance of a pointwise kernel of precision `dtype` against the f32 reference, where
/// `mag = |bias| + sum_k |x_k w_k|` is the magnitude of what was summed over `k` input channels.
///
/// - f32: `1.2e-7 * k * mag + 2e-6` (an f32 sum of k products loses at most `k * 2^-23 * mag`).
/// - bf16: rounding inputs and weights to 8 significant bits costs `(2^-7 + 2^-16) * mag`; the sum
///   is accumulated in f32 (round to nearest, or round to odd on NEON's `bfdot`: under one f32 ulp
///   per step), as the f32 term; times 1.5, the largest slope of an activation.
/// - f16 (f16 accumulation, NEON `fmla v.8h`): `gamma_{k+2} * mag` with `gamma_m = m u / (1 - m u)`,
///   `u = 2^-11` (Higham, *Accuracy and Stability of Numerical Algorithms*, sec. 4.2, counting the
///   rounding of both operands), plus `2^-25` per rounding in the subnormal range (`k + 2` of them,
///   and `|x| + |w| <= 3` per product for the conformance data), times 1.5.
pub fn pointwise_tolerance(dtype: mobile_cnn_kernels::Precision, k: usize, mag: f32) -> f32 {
    use mobile_cnn_kernels::Precision;
    let f32_tol = 1.2e-7 * k as f32 * mag + 2e-6;
    match dtype {
        Precision::F32 => f32_tol,
        Precision::Bf16 => 1.5 * (f32::powi(2.0, -7) + f32::powi(2.0, -16)) * mag + 1.5 * f32_tol,
        Precision::F16 => {
            let ku = (k + 2) as f32 * f32::powi(2.0, -11);
            let eta = f32::powi(2.0, -25) * (k as f32 + 2.0 + 6.0 * k as f32);
            1.5 * (ku / (1.0 - ku) * mag + eta) + f32_tol
        }
    }
}
