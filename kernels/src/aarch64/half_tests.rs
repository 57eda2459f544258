//! Tests of the NEON half-precision pointwise kernels, shared by both precisions: each kernel is
//! held bit for bit to its model ([`super::half_model`]) and to the f64 oracle within the bound
//! derived below, with NaN guards around the output and sub-blocks that must write only themselves.
//!
//! Error bound against the f64 oracle `y* = act(sum_k x_k w_k + b) (+ r)` for one output, with
//! `S = sum_k |x_k w_k|` and `T = sum_k (|x_k| + |w_k|)`:
//!
//! - f16 (`u = 2^-11`, `eta = 2^-25`: half the spacing of f16 subnormals): rounding `x` and `w` costs
//!   `(2u + u^2) |x w| + eta (|x| + |w|) (1 + u)` per product; the `k` fused multiply-adds, each
//!   rounded once to f16, add at most `gamma_k (1 + u)^2 S + k eta` (recursive summation,
//!   Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., sec. 4.2, with an absolute
//!   `eta` per rounding for the subnormal range). Together: `E16 = gamma_{k+2} S + eta (k + 2 + 2T)`
//!   with `gamma_m = m u / (1 - m u)`.
//! - bf16 (`u = 2^-8` for the inputs, `v = 2^-23` per round-to-odd addition, whose error is below
//!   one ulp): products `(2u + u^2) |x w|`; `ceil(k / 2)` pair sums and as many accumulations add
//!   at most `gamma'_{ceil(k/2)+1} (1 + u)^2 S` with `gamma'` on `v`. Together:
//!   `E16 = (2u + u^2 + 1.01 gamma'_{ceil(k/2)+1} (1 + u)^2) S` (inputs are normal here: no flush).
//!
//! Then the f32 epilogue: the bias add rounds (`2^-24 |acc + b|`), the activation scales the error
//! by its Lipschitz constant `L` (1; 1.5 for hard-swish; 1.13 for GELU) and adds its own evaluation
//! error (`4 * 2^-24 |y|`, plus GELU's approximation bound), the residual add rounds once more:
//! `tol = L (E + 2^-24 |acc + b|) + act_err + 2^-24 (|y| + |r|)`.

use super::half_model;
use crate::activation::{Activation, GELU_ABS_TOLERANCE, SIGMOID_REL_TOLERANCE};
use crate::isa::Precision;
use crate::reference::blocks::BlockRunner;
use crate::ukernel::{HalfPacked, PointwiseGeom, PointwiseHalfFn};

/// The precision a kernel computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Half {
    F16,
    Bf16,
}

/// One kernel under test: its function, layout and precision.
#[derive(Clone, Copy)]
pub(crate) struct Spec {
    pub name: &'static str,
    pub f: PointwiseHalfFn,
    pub nr: usize,
    pub kpack: usize,
    pub half: Half,
}

impl Spec {
    fn round(&self, x: f32) -> u16 {
        match self.half {
            Half::F16 => half_model::round_f16(x),
            Half::Bf16 => half_model::round_bf16(x),
        }
    }

    /// Whether this CPU has the feature the kernel needs (runtime detection).
    pub fn available(&self) -> bool {
        match self.half {
            Half::F16 => std::arch::is_aarch64_feature_detected!("fp16"),
            Half::Bf16 => std::arch::is_aarch64_feature_detected!("bf16"),
        }
    }

    /// The precision of the kernel's multiplies.
    fn precision(&self) -> Precision {
        match self.half {
            Half::F16 => Precision::F16,
            Half::Bf16 => Precision::Bf16,
        }
    }

    /// The bound `E` of the module header on the accumulated sum, before the epilogue.
    fn acc_bound(&self, k: usize, s: f64, t: f64) -> f64 {
        let gamma = |m: usize, u: f64| m as f64 * u / (1.0 - m as f64 * u);
        match self.half {
            Half::F16 => {
                let (u, eta) = (f64::powi(2.0, -11), f64::powi(2.0, -25));
                gamma(k + 2, u) * s + eta * (k as f64 + 2.0 + 2.0 * t)
            }
            Half::Bf16 => {
                let (u, v) = (f64::powi(2.0, -8), f64::powi(2.0, -23));
                (2.0 * u + u * u + 1.01 * gamma(k.div_ceil(2) + 1, v) * (1.0 + u) * (1.0 + u)) * s
            }
        }
    }

    /// Packs PyTorch-layout `[n, k]` weights in the layout of `PointwiseHalfFn`: biases
    /// `[panels * nr]` f32, zero past N; per panel `[ceil(k / kpack)][nr][kpack]` rounded weights,
    /// zero past N and K.
    pub fn pack(&self, k: usize, n: usize, w: &[f32], b: Option<&[f32]>) -> (Vec<f32>, Vec<u16>) {
        let (nr, kp) = (self.nr, self.kpack);
        let panels = n.div_ceil(nr);
        let kq = k.div_ceil(kp);
        let mut bias = vec![0.0; panels * nr];
        if let Some(b) = b {
            bias[..n].copy_from_slice(b);
        }
        let mut wp = vec![0u16; panels * kq * nr * kp];
        for j in 0..n {
            for kk in 0..k {
                let (panel, lane) = (j / nr, j % nr);
                let i = panel * kq * nr * kp + (kk / kp) * nr * kp + lane * kp + kk % kp;
                wp[i] = self.round(w[j * k + kk]);
            }
        }
        (bias, wp)
    }
}

pub(crate) use crate::reference::rand_vec;

/// Same bits, or both NaN.
pub(crate) fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Lipschitz constant of each activation (GELU's slope peaks at about 1.1289, hard-swish's at 1.5,
/// SiLU's at about 1.0998, sigmoid's at 1/4).
fn lipschitz(act: Activation) -> f64 {
    match act {
        Activation::Identity | Activation::Relu | Activation::Relu6 => 1.0,
        Activation::HardSwish => 1.5,
        Activation::Gelu => 1.13,
        Activation::Silu => 1.1,
        Activation::Sigmoid => 0.25,
    }
}

/// One problem: inputs of amplitude `amp_x`, weights `amp_w`, biases 1, residual 2.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Case {
    pub p: usize,
    pub k: usize,
    pub n: usize,
    pub act: Activation,
    pub bias: bool,
    pub residual: bool,
    pub amp_x: f32,
    pub amp_w: f32,
    pub seed: u64,
}

impl Case {
    pub fn new(p: usize, k: usize, n: usize) -> Case {
        Case {
            p,
            k,
            n,
            act: Activation::Identity,
            bias: true,
            residual: false,
            amp_x: 2.0,
            amp_w: 1.0,
            seed: ((p * 131 + k) * 131 + n) as u64,
        }
    }
}

/// The data of a case: input, weights, bias, residual.
type CaseData = (Vec<f32>, Vec<f32>, Option<Vec<f32>>, Option<Vec<f32>>);

/// The inputs of a case: input, weights, bias, residual.
fn inputs(c: &Case) -> CaseData {
    let x = rand_vec(c.seed, c.p * c.k, c.amp_x);
    let w = rand_vec(c.seed ^ 1, c.n * c.k, c.amp_w);
    let b = c.bias.then(|| rand_vec(c.seed ^ 2, c.n, 1.0));
    let r = c.residual.then(|| rand_vec(c.seed ^ 3, c.p * c.n, 2.0));
    (x, w, b, r)
}

/// Checks one case: bit for bit against the model (whole call and sub-blocks) and within the
/// header's bound of the f64 oracle (skipped where the model overflows: that is f16's range, not
/// an error of the kernel).
pub(crate) fn check(spec: &Spec, c: Case) {
    let (x, w, b, r) = inputs(&c);
    check_with(spec, c, &x, &w, b.as_deref(), r.as_deref(), true);
}

/// [`check`] on given data; `oracle` false skips the f64 comparison (for NaN and infinity inputs).
pub(crate) fn check_with(
    spec: &Spec,
    c: Case,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    r: Option<&[f32]>,
    oracle: bool,
) {
    let (p, k, n) = (c.p, c.k, c.n);
    let g = PointwiseGeom {
        p,
        k,
        n,
        act: c.act,
    };
    assert!(
        spec.available(),
        "{}: run without its CPU feature",
        spec.name
    );
    let (bias, weights) = spec.pack(k, n, w, b);
    let packed = HalfPacked {
        bias: &bias,
        weights: &weights,
    };
    let panels = n.div_ceil(spec.nr);
    let what = format!("{} {c:?}", spec.name);
    let run = BlockRunner {
        g: &g,
        x,
        res: r,
        nr: spec.nr,
    };
    // SAFETY: the kernel's CPU feature was just asserted available (runtime detection); `packed`
    // was packed by `Spec::pack` for this kernel's layout with g.k and g.n.
    let got = unsafe { run.run(spec.f, packed, 0..p, 0..panels, &what) };
    let mut want = vec![0.0f32; p * n];
    half_model::pointwise(spec.precision(), &g, x, w, b, r, &mut want);
    for (i, (&a, &e)) in got.iter().zip(&want).enumerate() {
        assert!(
            same(a, e),
            "{what}: out[{i}] (row {}, col {}) = {a:e} ({:#010x}), model {e:e} ({:#010x})",
            i / n,
            i % n,
            a.to_bits(),
            e.to_bits()
        );
    }
    if oracle {
        for row in 0..p {
            for j in 0..n {
                let (mut acc, mut s, mut t) = (0.0f64, 0.0f64, 0.0f64);
                for kk in 0..k {
                    let (xv, wv) = (f64::from(x[row * k + kk]), f64::from(w[j * k + kk]));
                    acc += xv * wv;
                    s += (xv * wv).abs();
                    t += xv.abs() + wv.abs();
                }
                let pre = acc + b.map_or(0.0, |b| f64::from(b[j]));
                let y = f64::from(c.act.apply(pre as f32));
                let res = r.map_or(0.0, |r| f64::from(r[row * n + j]));
                let exact = y + res;
                let u32_ = f64::powi(2.0, -24);
                // The approximation's own error (it differs between two nearby inputs by up to
                // twice this beyond the Lipschitz term).
                let gelu = match c.act {
                    Activation::Gelu => f64::from(GELU_ABS_TOLERANCE),
                    Activation::Silu | Activation::Sigmoid => {
                        f64::from(SIGMOID_REL_TOLERANCE) * y.abs() + 1e-35
                    }
                    _ => 0.0,
                };
                let e = spec.acc_bound(k, s, t);
                // The oracle's own f32 activation: its input rounding and evaluation error count
                // on both sides.
                let tol = lipschitz(c.act) * (e + 2.0 * u32_ * pre.abs())
                    + 2.0 * (4.0 * u32_ * y.abs() + gelu)
                    + u32_ * (y.abs() + res.abs());
                let gotv = f64::from(got[row * n + j]);
                if !want[row * n + j].is_finite() {
                    continue;
                }
                assert!(
                    (gotv - exact).abs() <= tol,
                    "{what}: out[{row}][{j}] = {gotv:e}, f64 oracle {exact:e}, |diff| {:e} > tol {tol:e}",
                    (gotv - exact).abs()
                );
            }
        }
    }
    // SAFETY: as above.
    unsafe { run.check_sub_blocks(spec.f, packed, &got, same, &what) };
}

/// Every edge class of the tiles: rows around the row tile (8), input channels around the K step
/// and the pair, output channels around the panel width.
pub(crate) fn every_edge_class(spec: &Spec) {
    let nr = spec.nr;
    for p in [1, 2, 3, 7, 8, 9, 15, 16, 17, 23] {
        for k in [1, 2, 3, 4, 5, 7, 8, 9, 11, 16, 17] {
            for n in [1, 3, nr - 1, nr, nr + 1, 2 * nr + 1] {
                let mut c = Case::new(p, k, n);
                c.residual = p % 2 == 1;
                c.bias = k % 3 != 0;
                check(spec, c);
            }
        }
    }
}

/// Every activation with and without residual, on shapes with long K.
pub(crate) fn every_activation_and_residual(spec: &Spec) {
    for act in Activation::ALL {
        for residual in [false, true] {
            for (p, k, n) in [
                (13, 19, 37),
                (8, 64, 16),
                (5, 113, 12),
                (24, 7, 7),
                (9, 300, 20),
            ] {
                let mut c = Case::new(p, k, n);
                c.act = act;
                c.residual = residual;
                check(spec, c);
            }
        }
    }
}

/// Magnitudes at the ends of the precision's range: f16 subnormal products and sums, f16 overflow
/// to infinity (checked against the model only where it overflows), large bf16 magnitudes.
pub(crate) fn range_extremes(spec: &Spec) {
    for (amp_x, amp_w) in [(1e-3, 1e-3), (3e-4, 2e-2), (300.0, 300.0), (1e10, 1e10)] {
        for (p, k, n) in [(9, 13, 17), (16, 40, 33)] {
            let mut c = Case::new(p, k, n);
            c.amp_x = amp_x;
            c.amp_w = amp_w;
            c.bias = false;
            check(spec, c);
        }
    }
}

/// NaN and infinities in the input give what the model gives (NaN where it has NaN).
pub(crate) fn nan_and_inf_inputs(spec: &Spec) {
    let c = Case::new(9, 10, 2 * spec.nr + 3);
    let (mut x, w, b, _) = inputs(&c);
    x[3] = f32::NAN;
    x[25] = f32::INFINITY;
    x[60] = f32::NEG_INFINITY;
    for act in Activation::ALL {
        let c = Case { act, ..c };
        check_with(spec, c, &x, &w, b.as_deref(), None, false);
    }
}

/// Random problems for proptest: any size around the tiles, any epilogue, a few magnitudes.
pub(crate) fn arb_case() -> impl proptest::strategy::Strategy<Value = Case> {
    use proptest::prelude::*;
    (
        1usize..40,
        1usize..140,
        1usize..50,
        0usize..Activation::ALL.len(),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![(2.0f32, 1.0f32), (0.05, 0.05), (8.0, 4.0)]),
        any::<u64>(),
    )
        .prop_map(|(p, k, n, a, bias, residual, (amp_x, amp_w), seed)| Case {
            p,
            k,
            n,
            act: Activation::ALL[a],
            bias,
            residual,
            amp_x,
            amp_w,
            seed,
        })
}

/// The tests of one half-precision kernel: `kernel_tests!(SPEC)` defines them for the [`Spec`]
/// `SPEC` in scope. On a CPU without the kernel's feature (checked against the emulated core in
/// `crate::aarch64::tests`) each says it did not run the kernel.
macro_rules! kernel_tests {
    ($spec:ident) => {
        /// Whether the kernel can run here.
        fn runs_here() -> bool {
            let ok = $spec.available();
            if !ok {
                eprintln!("{}: not run, this CPU lacks the feature", $spec.name);
            }
            ok
        }

        #[test]
        fn equals_the_model_on_every_edge_class() {
            if runs_here() {
                $crate::aarch64::half_tests::every_edge_class(&$spec);
            }
        }

        #[test]
        fn every_activation_and_residual() {
            if runs_here() {
                $crate::aarch64::half_tests::every_activation_and_residual(&$spec);
            }
        }

        #[test]
        fn magnitudes_at_the_ends_of_the_range() {
            if runs_here() {
                $crate::aarch64::half_tests::range_extremes(&$spec);
            }
        }

        #[test]
        fn nan_and_inf_inputs_propagate_as_in_the_model() {
            if runs_here() {
                $crate::aarch64::half_tests::nan_and_inf_inputs(&$spec);
            }
        }

        proptest::proptest! {
            #![proptest_config(proptest::prelude::ProptestConfig {
                cases: 48,
                ..proptest::prelude::ProptestConfig::default()
            })]
            #[test]
            fn random_problems_match_the_model_and_the_oracle(
                c in $crate::aarch64::half_tests::arb_case()
            ) {
                if runs_here() {
                    $crate::aarch64::half_tests::check(&$spec, c);
                }
            }
        }
    };
}
pub(crate) use kernel_tests;
