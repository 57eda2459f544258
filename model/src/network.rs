//! The runnable network, for every family: folded weights packed once for one ISA and the
//! family's step list, run over a workspace per input shape (kept in a small pool so repeated
//! calls with the same batch allocate nothing). Here: loading and building ([`Network::load`],
//! [`Network::build`]), [`Network::forward`], [`Network::forward_features`], how a batch is split
//! over the threads ([`BatchSplit`]) and the step runner.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mobile_cnn_kernels::elementwise::Elementwise;
use mobile_cnn_kernels::layout::{nchw_to_nhwc, nhwc_to_nchw};
use mobile_cnn_kernels::{Kernels, Shape, Tensor};

use crate::error::{Error, KernelContext};
use crate::families::Arch;
use crate::families::repvit::{FusedWeights, RepVitConfig, push_repvit};
use crate::graph::{Graph, Op, Step, Vector};
use crate::load::checkpoint::StateDict;
use crate::load::params::{Params, RandomParams};
use crate::plan::{Workspace, infer_shapes, try_zeroed};

/// Workspaces kept for reuse (distinct input shapes or concurrent callers).
const POOL_LIMIT: usize = 4;

/// A network ready to run (RepViT, MobileNetV3, MobileNetV2: see [`Arch`]): folded weights
/// packed for the ISA of its [`Kernels`] handle, as a list of steps (one kernel call each) over the
/// buffers of a workspace. [`Network::forward`], [`Network::profile_into`] and
/// [`LayerBench`](crate::LayerBench) all execute the same steps.
///
/// `Send + Sync`: one model can serve several threads; each call takes a workspace from the pool
/// (or allocates one when all are busy).
#[derive(Debug)]
pub struct Network {
    arch: Arch,
    pub(crate) kernels: Kernels,
    /// The same ISA on one thread: what each group of images runs with under [`BatchSplit::Images`].
    single: Kernels,
    /// The element-wise ops (pooling, the squeeze-excite channel scale) bound once to the ISA of
    /// `kernels` (the same for `single`).
    ew: Elementwise,
    batch_split: BatchSplit,
    /// The steps over their buffers, with the feature stages marked.
    pub(crate) graph: Graph,
    pool: Mutex<Vec<Workspace>>,
    group_pool: Mutex<Vec<ImageGroups>>,
}

/// How a batch of more than one image is spread over the threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSplit {
    /// Every layer is split across all threads, one layer after another, as for one image.
    Layers,
    /// The images are cut into one group per thread (at most one per image); each group runs the
    /// whole network on one thread with its own buffers. No thread waits for another between layers.
    Images,
}

/// The buffers of [`BatchSplit::Images`] for one input shape: one group per thread.
#[derive(Debug)]
struct ImageGroups {
    input_shape: [usize; 4],
    groups: Vec<ImageGroup>,
}

/// Images `first..first + ws.input_shape[0]` of the batch, their workspace, logits and outcome.
#[derive(Debug)]
struct ImageGroup {
    first: usize,
    ws: Workspace,
    logits: Vec<f32>,
    result: Result<(), Error>,
}

/// The name the crate started with: every family runs on the same [`Network`].
pub type RepVit = Network;

/// One stage's output feature map, NCHW.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMap {
    /// Stage index (0-based, as timm's `out_indices`).
    pub stage: usize,
    /// The stage's output stride `r` (timm's `feature_info` `reduction`): RepViT `2^(stage + 2)`
    /// (4, 8, 16, 32); MobileNetV3/V2 `2^(stage + 1)` (2, 4, 8, 16, 32).
    pub reduction: usize,
    /// `[N, C_stage, H_stage, W_stage]`: `H_stage = ceil(H / r)` (each stride-2 convolution
    /// with padding `k / 2` maps `h` to `(h - 1) / 2 + 1`), likewise for `W`.
    pub shape: [usize; 4],
    /// Elements, row-major over `shape`.
    pub data: Vec<f32>,
}

impl Network {
    /// Packs re-parameterised RepViT weights for the ISA of `kernels` (whose thread count the model
    /// uses).
    pub fn from_fused(fw: &FusedWeights, kernels: &Kernels) -> Result<Network, Error> {
        let mut g = Graph::new();
        push_repvit(fw, kernels, &mut g)?;
        Network::from_graph(Arch::RepVit(fw.config.clone()), g, kernels)
    }

    /// Reads every parameter of `arch` from `params` (folding BatchNorm as it goes) and packs the
    /// network for the ISA of `kernels`: the one builder every family goes through.
    pub fn build(arch: Arch, params: &mut dyn Params, kernels: &Kernels) -> Result<Network, Error> {
        let mut g = Graph::new();
        arch.build(params, kernels, &mut g)?;
        Network::from_graph(arch, g, kernels)
    }

    /// A network from its steps; checks that shape inference succeeds at the family's default
    /// input size.
    fn from_graph(arch: Arch, g: Graph, kernels: &Kernels) -> Result<Network, Error> {
        let net = Network {
            arch,
            kernels: kernels.clone(),
            single: kernels.single_threaded(),
            ew: Elementwise::new(kernels).layer(|| "element-wise ops".to_string())?,
            batch_split: BatchSplit::Images,
            graph: g,
            pool: Mutex::new(Vec::new()),
            group_pool: Mutex::new(Vec::new()),
        };
        let s = net.arch.input_size();
        infer_shapes(&net.graph, net.num_classes(), [1, net.in_chans(), s, s])?;
        Ok(net)
    }

    /// Loads a timm `model.safetensors` of any family. `variant` (a timm name such as
    /// `repvit_m1_0`, `mobilenetv3_large_100`, `mobilenetv2_100`, or RepViT's short `m1_0`) is
    /// checked against the checkpoint; `None` detects family and configuration from the tensors.
    pub fn load(
        path: impl AsRef<Path>,
        variant: Option<&str>,
        kernels: &Kernels,
    ) -> Result<Network, Error> {
        Network::from_state_dict(StateDict::read(path)?, variant, kernels)
    }

    /// Builds from an in-memory state dict (timm's names), as [`Network::load`]. Rejects tensors
    /// the network does not use.
    pub fn from_state_dict(
        mut sd: StateDict,
        variant: Option<&str>,
        kernels: &Kernels,
    ) -> Result<Network, Error> {
        let arch = Arch::resolve(&sd, variant)?;
        if let Arch::RepVit(_) = arch {
            // RepViT checkpoints come in more layouts than the family builder reads (deployed
            // after `fuse()`, headless): FusedWeights detects the layout and checks every key.
            return Network::from_fused(&FusedWeights::from_state_dict(sd, variant)?, kernels);
        }
        let net = Network::build(arch, &mut sd, kernels)?;
        if let Some(key) = sd.keys().next() {
            return Err(Error::UnexpectedKey {
                path: sd.path().to_path_buf(),
                key: key.to_string(),
                shape: sd.shape(key).unwrap_or_default().to_vec(),
            });
        }
        Ok(net)
    }

    /// A RepViT of `cfg` with deterministic random weights (for benchmarks and tests): the same
    /// model as loading [`crate::families::repvit::random_state_dict`]`(cfg, seed)`.
    pub fn random(cfg: &RepVitConfig, seed: u64, kernels: &Kernels) -> Result<Network, Error> {
        Network::random_arch(Arch::RepVit(cfg.clone()), seed, kernels)
    }

    /// A network of any family with deterministic random weights ([`RandomParams`]).
    pub fn random_arch(arch: Arch, seed: u64, kernels: &Kernels) -> Result<Network, Error> {
        Network::build(arch, &mut RandomParams::new(seed), kernels)
    }

    /// The same weights run with another thread count (the ISA must stay the same).
    pub fn with_threads(mut self, threads: usize) -> Result<Network, Error> {
        self.kernels = self
            .kernels
            .clone()
            .with_threads(threads)
            .layer(|| "threads".into())?;
        self.group_pool = Mutex::new(Vec::new());
        Ok(self)
    }

    /// The same weights with batches of more than one image spread over the threads as `split`
    /// says. The default is [`BatchSplit::Images`]; the results are bitwise the same either way.
    pub fn with_batch_split(mut self, split: BatchSplit) -> Network {
        self.batch_split = split;
        self
    }

    /// How batches of more than one image are spread over the threads.
    pub fn batch_split(&self) -> BatchSplit {
        self.batch_split
    }

    /// The RepViT configuration (`None` for the other families; see [`Network::arch`]).
    pub fn config(&self) -> Option<&RepVitConfig> {
        match &self.arch {
            Arch::RepVit(c) => Some(c),
            _ => None,
        }
    }

    /// The architecture (family and configuration).
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// The architecture's name (timm's, e.g. `mobilenetv3_large_100`; RepViT's short `m1_0`).
    pub fn name(&self) -> &str {
        self.arch.name()
    }

    /// Input channels.
    pub fn in_chans(&self) -> usize {
        self.arch.in_chans()
    }

    /// The kernels handle (ISA and threads) the model runs with.
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// Classifier outputs per image (0 for a headless model).
    pub fn num_classes(&self) -> usize {
        self.arch.num_classes()
    }

    /// Outputs per image of [`Network::forward`]: the class count, or for a headless model
    /// (`num_classes == 0`) the width of the pooled features `C_last`.
    pub fn num_outputs(&self) -> usize {
        match self.arch.num_classes() {
            0 => self.arch.family().features(),
            n => n,
        }
    }

    /// Checks an NCHW input shape against the model.
    pub(crate) fn check_input(&self, len: usize, shape: [usize; 4]) -> Result<(), Error> {
        let [n, c, h, w] = shape;
        let bad = |expected: String, found: String| {
            Err(Error::Input {
                what: "input batch".into(),
                expected,
                found,
            })
        };
        if c != self.arch.in_chans() || n == 0 || h == 0 || w == 0 {
            return bad(
                format!(
                    "NCHW shape [N >= 1, {}, H >= 1, W >= 1]",
                    self.arch.in_chans()
                ),
                format!("shape {shape:?}"),
            );
        }
        let want = n
            .checked_mul(c)
            .and_then(|v| v.checked_mul(h))
            .and_then(|v| v.checked_mul(w));
        if want != Some(len) {
            return bad(
                format!(
                    "{} elements for NCHW shape {shape:?}",
                    want.map_or("too many".into(), |v| v.to_string())
                ),
                format!("{len} elements"),
            );
        }
        Ok(())
    }

    /// Logits `[n, classes]` (row-major) of an NCHW f32 batch of shape `[n, c, h, w]`; for a
    /// headless model the pooled features `[n, C_last]` (see [`Network::num_outputs`]).
    pub fn forward(&self, input: &[f32], shape: [usize; 4]) -> Result<Vec<f32>, Error> {
        self.check_input(input.len(), shape)?;
        let len = shape[0].saturating_mul(self.num_outputs());
        let mut out = try_zeroed("logits", len, shape)?;
        self.forward_into(input, shape, &mut out)?;
        Ok(out)
    }

    /// As [`Network::forward`], into `out` (`n * classes` floats). Allocates nothing once a workspace
    /// for this input shape exists.
    pub fn forward_into(
        &self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut [f32],
    ) -> Result<(), Error> {
        self.check_input(input.len(), shape)?;
        self.check_output(out.len(), shape)?;
        if self.batch_split == BatchSplit::Images && shape[0] > 1 && self.kernels.threads() > 1 {
            return self.forward_image_groups(input, shape, out);
        }
        let mut ws = self.take_workspace(shape)?;
        let r = self.run(&self.kernels, &mut ws, input, out, None);
        self.give_back(ws);
        r
    }

    /// [`BatchSplit::Images`]: one group of images per thread, each run start to end on one thread.
    fn forward_image_groups(
        &self,
        input: &[f32],
        shape: [usize; 4],
        out: &mut [f32],
    ) -> Result<(), Error> {
        let [n, c, h, w] = shape;
        let mut groups = {
            let mut pool = self.group_pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.iter()
                .position(|g| g.input_shape == shape)
                .map(|i| pool.swap_remove(i))
        };
        if groups.is_none() {
            let count = self.kernels.threads().min(n);
            let mut gs = Vec::with_capacity(count);
            for g in 0..count {
                let (first, end) = (n * g / count, n * (g + 1) / count);
                gs.push(ImageGroup {
                    first,
                    ws: Workspace::new(&self.graph, self.num_classes(), [end - first, c, h, w])?,
                    logits: try_zeroed(
                        "logits",
                        (end - first).saturating_mul(self.num_outputs()),
                        shape,
                    )?,
                    result: Ok(()),
                });
            }
            groups = Some(ImageGroups {
                input_shape: shape,
                groups: gs,
            });
        }
        let mut groups = groups.expect("made above");
        let img = c * h * w;
        self.kernels
            .for_each_mut(&mut groups.groups, |_, _, g: &mut ImageGroup| {
                let count = g.ws.input_shape[0];
                let x = &input[g.first * img..(g.first + count) * img];
                g.result = self.run(&self.single, &mut g.ws, x, &mut g.logits, None);
            });
        let classes = self.num_outputs();
        let mut r = Ok(());
        for g in &mut groups.groups {
            let res = std::mem::replace(&mut g.result, Ok(()));
            if r.is_ok() {
                r = res;
            }
            out[g.first * classes..g.first * classes + g.logits.len()].copy_from_slice(&g.logits);
        }
        let mut pool = self.group_pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() >= POOL_LIMIT {
            pool.remove(0);
        }
        pool.push(groups);
        r
    }

    pub(crate) fn take_workspace(&self, shape: [usize; 4]) -> Result<Workspace, Error> {
        {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = pool.iter().position(|w| w.input_shape == shape) {
                return Ok(pool.swap_remove(i));
            }
        }
        Workspace::new(&self.graph, self.num_classes(), shape)
    }

    pub(crate) fn give_back(&self, ws: Workspace) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() >= POOL_LIMIT {
            pool.remove(0);
        }
        pool.push(ws);
    }

    /// The feature maps of `stages` (indices into the stages, 0-based, as timm's `out_indices`;
    /// any order, repeats allowed) for an NCHW f32 batch of shape `[n, c, h, w]`, any `h, w >= 1`:
    /// one NCHW [`FeatureMap`] per requested stage, in the order asked, as timm's
    /// `features_only=True` model returns them. The stages are timm's `feature_info` entries
    /// ([`Network::stage_reductions`] gives their strides):
    /// - RepViT: 4 stages, stride 4, 8, 16, 32, `embed_dim[i]` channels (also timm's
    ///   `forward_intermediates(x, indices=stages, intermediates_only=True, stop_early=True)`).
    /// - MobileNetV3-Large and MobileNetV2: 5 stages, stride 2, 4, 8, 16, 32: the outputs of
    ///   `blocks.0`, `blocks.1`, `blocks.2`, `blocks.4`, `blocks.6` (V3-Large's `blocks.6` is the
    ///   1x1 ConvBnAct to 960 channels; V2's is the last inverted residual, 320 channels; neither
    ///   includes `conv_head`).
    /// - MobileNetV3-Small: 5 stages, stride 2, 4, 8, 16, 32: the stem (`bn1` after its
    ///   activation, since `blocks.0` has stride 2), `blocks.0`, `blocks.1`, `blocks.3`,
    ///   `blocks.5` (the ConvBnAct to 576 channels).
    ///
    /// The steps after the last stage asked are not run.
    ///
    /// Errors: a model without feature stages, a stage index `>=` the number of stages, no stage
    /// asked, or a bad input shape.
    pub fn forward_features(
        &self,
        input: &[f32],
        shape: [usize; 4],
        stages: &[usize],
    ) -> Result<Vec<FeatureMap>, Error> {
        self.check_input(input.len(), shape)?;
        let nstages = self.graph.stage_out.len();
        if nstages == 0 {
            return Err(Error::Input {
                what: "feature stages".into(),
                expected: "a model with feature stages".into(),
                found: format!("{} marks no stage ends", self.name()),
            });
        }
        let Some(&last) = stages.iter().max() else {
            return Err(Error::Input {
                what: "feature stages".into(),
                expected: format!("at least one stage index below {nstages}"),
                found: "none".into(),
            });
        };
        if last >= nstages {
            return Err(Error::Input {
                what: "feature stages".into(),
                expected: format!("stage indices below {nstages} (the model's stage count)"),
                found: format!("{stages:?}"),
            });
        }
        let mut ws = self.take_workspace(shape)?;
        let mut maps: Vec<Option<FeatureMap>> = vec![None; nstages];
        let mut r = Ok(());
        for (i, step) in self.graph.steps[..=self.graph.stage_out[last].0]
            .iter()
            .enumerate()
        {
            r = self.exec(&self.kernels, step, &mut ws, input, &mut []);
            if r.is_err() {
                break;
            }
            if let Some(s) = self.graph.stage_out.iter().position(|&(end, _)| end == i)
                && stages.contains(&s)
            {
                let t = &ws.bufs[ws.slot[self.graph.stage_out[s].1]];
                match feature_map(s, self.graph.stage_reduction[s], t, shape) {
                    Ok(m) => maps[s] = Some(m),
                    Err(e) => {
                        r = Err(e);
                        break;
                    }
                }
            }
        }
        self.give_back(ws);
        r?;
        Ok(stages.iter().filter_map(|&s| maps[s].clone()).collect())
    }

    /// How many stages [`Network::forward_features`] can return (4 for the published RepViT
    /// variants, 5 for the MobileNets: timm's `feature_info` entries).
    pub fn num_stages(&self) -> usize {
        self.graph.stage_out.len()
    }

    /// The output stride of each stage of [`Network::forward_features`] (timm's
    /// `feature_info.reduction()`): `[4, 8, 16, 32]` for RepViT, `[2, 4, 8, 16, 32]` for the
    /// MobileNets.
    pub fn stage_reductions(&self) -> &[usize] {
        &self.graph.stage_reduction
    }

    /// Checks `out` against the batch of `shape`.
    pub(crate) fn check_output(&self, len: usize, shape: [usize; 4]) -> Result<(), Error> {
        let want = shape[0] * self.num_outputs();
        if len != want {
            return Err(Error::Input {
                what: "logits buffer".into(),
                expected: format!(
                    "{want} elements ({} images x {} outputs)",
                    shape[0],
                    self.num_outputs()
                ),
                found: format!("{len} elements"),
            });
        }
        Ok(())
    }

    /// Runs one step on `ws` with the threads of `k`.
    ///
    /// Which steps split across threads (the per-layer rule): a step is split when its one-thread
    /// time is well above the cost of one parallel call. The kernels' pool threads spin between
    /// calls (`pool.rs`), so a call costs about a microsecond (`pool_overhead` in the kernels
    /// bench), and each thread takes the same contiguous share of every step, so splitting also
    /// keeps each core on the rows it wrote in the step before. Measured on M1.0 at 224x224 (Zen 3,
    /// AVX2, `repvit bench --layers-at 1,2`; results/amd-epyc-zen3-2026-11-30): every pointwise
    /// layer (30 us or more on one thread) gains 1.9-2.0x from a second thread, the stem
    /// convolutions 1.7-2.0x, the input transpose (0.1 ms) 1.6x, the channel scale of squeeze-excite
    /// 1.2-1.6x (split above 2^14 elements in `scale_channels_in_place`); these split. So do the
    /// squeeze-excite gate's matrix-vector products above 64 KiB of weights (`se.rs`; MobileNetV3-L
    /// at two threads 4.0 -> 3.8 ms). The global pool (3 us) runs on the calling thread.
    ///
    /// Depthwise steps always run in row bands chosen from the shape
    /// ([`DwConv::run_bands`](mobile_cnn_kernels::DwConv::run_bands), about
    /// [`DW_BAND_MACS`](mobile_cnn_kernels::dwconv::DW_BAND_MACS) each), so the squeeze-excite sums come out the same whatever runs them;
    /// the bands are shared among the threads when the step has at least [`DW_PARALLEL_MACS`](crate::DW_PARALLEL_MACS)
    /// multiply-adds. The depthwise steps run at about 40 multiply-adds per ns on one thread
    /// (stride 2 at about 10), so 100k multiply-adds are 2.5 us or more. With rayon's pool (a wake-up
    /// per call, blocks to whichever thread came first) the threshold was 300k and the unsplit steps
    /// ran slower at two threads than at one, reading half of their input from the other core's
    /// cache; with the spinning pool and contiguous shares, 28x28x112 stride 2 and 7x7x448 (about
    /// 200k) gain 1.2-1.6x split.
    ///
    /// Under [`BatchSplit::Images`] every step of a group runs on that group's thread alone.
    #[inline]
    pub(crate) fn exec(
        &self,
        k: &Kernels,
        step: &Step,
        ws: &mut Workspace,
        input: &[f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        let ctx = || step.name.clone();
        let disjoint = |e| Error::Config {
            reason: format!("{}: overlapping buffers ({e})", step.name),
        };
        match &step.op {
            Op::ToNhwc => {
                // NCHW -> NHWC (a copy; no arithmetic), one contiguous run of output pixels per
                // thread (`layout::nchw_to_nhwc`): about 0.1 ms on one core at 224x224, so it
                // splits whenever there are threads.
                let dst = ws.bufs[ws.slot[Graph::INPUT]].as_mut_slice();
                nchw_to_nhwc(k, input, ws.input_shape, dst).layer(ctx)
            }
            Op::Conv { conv, src, dst, .. } => {
                let [x, y] = ws
                    .bufs
                    .get_disjoint_mut([ws.slot[*src], ws.slot[*dst]])
                    .map_err(disjoint)?;
                conv.run(k, x, y, &mut ws.conv_scratch).layer(ctx)
            }
            Op::Dw {
                conv,
                src,
                dst,
                sums,
            } => {
                let [x, y] = ws
                    .bufs
                    .get_disjoint_mut([ws.slot[*src], ws.slot[*dst]])
                    .map_err(disjoint)?;
                // The kernel crate's threaded depthwise: row bands shared among the threads,
                // the squeeze-excite sums reduced in band order (the same bits for any thread
                // count); the workspace holds the sums and the per-band partials (`plan.rs`).
                let sums = if *sums {
                    let nc = x.shape().n * x.shape().c;
                    let partials = conv.band_partials_len(x.shape()).layer(ctx)?;
                    let short = || Error::Config {
                        reason: format!("{}: workspace too small for the channel sums", step.name),
                    };
                    Some((
                        ws.sums.get_mut(..nc).ok_or_else(short)?,
                        ws.dw_partials.get_mut(..partials).ok_or_else(short)?,
                    ))
                } else {
                    None
                };
                conv.run_bands(k, x, y, sums).layer(ctx)
            }
            Op::Se { se, t } => {
                let t = &mut ws.bufs[ws.slot[*t]];
                let s = t.shape();
                let nc = s.n * s.c;
                let scale = &mut ws.scale[..nc];
                se.scale_from_sums(k, &ws.sums[..nc], s.h * s.w, scale, &mut ws.se_scratch)
                    .layer(ctx)?;
                self.ew.scale_channels_in_place(k, t, scale).layer(ctx)
            }
            Op::Pw {
                pw,
                act,
                src,
                dst,
                residual: Some(r),
            } => {
                let [x, y, r] = ws
                    .bufs
                    .get_disjoint_mut([ws.slot[*src], ws.slot[*dst], ws.slot[*r]])
                    .map_err(disjoint)?;
                pw.run(k, x, y, *act, Some(r)).layer(ctx)
            }
            Op::Pw {
                pw,
                act,
                src,
                dst,
                residual: None,
            } => {
                let [x, y] = ws
                    .bufs
                    .get_disjoint_mut([ws.slot[*src], ws.slot[*dst]])
                    .map_err(disjoint)?;
                pw.run(k, x, y, *act, None).layer(ctx)
            }
            Op::Pool { src, to_out } => {
                let dst = if *to_out { out } else { &mut ws.pooled };
                self.ew
                    .global_avg_pool(&ws.bufs[ws.slot[*src]], dst)
                    .layer(ctx)
            }
            Op::PooledPw { pw, act, to_out } => {
                let n = ws.input_shape[0];
                let dst = if *to_out { out } else { &mut ws.head };
                pw.run_slices(k, n, &ws.pooled, dst, *act, None).layer(ctx)
            }
            Op::Head { linear, src } => {
                let x = match src {
                    Vector::Pooled => &ws.pooled,
                    Vector::Head => &ws.head,
                };
                linear.run(k, x, out).layer(ctx)
            }
        }
    }

    /// Every step in order; with `times`, each step's wall time.
    pub(crate) fn run(
        &self,
        k: &Kernels,
        ws: &mut Workspace,
        input: &[f32],
        out: &mut [f32],
        times: Option<&mut [Duration]>,
    ) -> Result<(), Error> {
        match times {
            None => {
                for step in &self.graph.steps {
                    self.exec(k, step, ws, input, out)?;
                }
            }
            Some(times) => {
                for (step, t) in self.graph.steps.iter().zip(times.iter_mut()) {
                    let t0 = Instant::now();
                    self.exec(k, step, ws, input, out)?;
                    *t = t0.elapsed();
                }
            }
        }
        Ok(())
    }
}

/// Stage `stage`'s output `t` (NHWC) as an NCHW [`FeatureMap`] of output stride `reduction`, for
/// NCHW input `input`.
fn feature_map(
    stage: usize,
    reduction: usize,
    t: &Tensor,
    input: [usize; 4],
) -> Result<FeatureMap, Error> {
    let Shape { n, h, w, c } = t.shape();
    let mut data = try_zeroed("feature map", t.as_slice().len(), input)?;
    nhwc_to_nchw(t.as_slice(), t.shape(), &mut data).layer(|| "feature map".to_string())?;
    Ok(FeatureMap {
        stage,
        reduction,
        shape: [n, c, h, w],
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Network>();
    }

    /// A workspace that cannot fit (here beyond any address space) is refused with its size and
    /// the input shape before any buffer is made.
    #[test]
    fn a_workspace_that_cannot_fit_is_an_error() {
        let k = Kernels::with_isa(mobile_cnn_kernels::Isa::Scalar).unwrap();
        let m = Network::random_arch(Arch::named("mobilenetv3_small_100").unwrap(), 1, &k).unwrap();
        let shape = [1_000_000_000, 3, 224, 224];
        let e = Workspace::new(&m.graph, m.num_classes(), shape).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, Error::OutOfMemory { bytes: Some(_), .. }),
            "{msg}"
        );
        assert!(
            msg.contains("activation workspace") && msg.contains("[1000000000, 3, 224, 224]"),
            "{msg}"
        );
    }

    #[test]
    fn a_model_without_feature_stages_says_so() {
        let k = Kernels::with_isa(mobile_cnn_kernels::Isa::Scalar).unwrap();
        let arch = Arch::named("mobilenetv3_small_100").unwrap();
        let mut m = Network::random_arch(arch, 1, &k).unwrap();
        assert_eq!(m.num_stages(), 5);
        m.graph.stage_out.clear();
        m.graph.stage_reduction.clear();
        let e = m
            .forward_features(&[0.0; 3 * 8 * 8], [1, 3, 8, 8], &[0])
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("marks no stage ends"), "{msg}");
        assert!(!msg.contains("below 0"), "{msg}");
    }
}
