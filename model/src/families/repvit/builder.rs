//! RepViT's builder: the steps of re-parameterised weights ([`FusedWeights`]), packed for one ISA,
//! appended to a [`Graph`].

use mobile_cnn_kernels::linear::Linear;
use mobile_cnn_kernels::se::{Gate, SqueezeExcite};
use mobile_cnn_kernels::{Activation, DwConv, Kernels};

use super::weights::{BlockWeights, FusedWeights};
use crate::error::{Error, KernelContext};
use crate::families::family::{depthwise, pack, push_conv3x3};
use crate::graph::{Graph, Op, Vector};
use crate::load::params::Folded;

fn dw(k: &Kernels, name: &str, f: &Folded, stride: usize) -> Result<DwConv, Error> {
    depthwise(k, name, f, stride, Activation::Identity)
}

/// The buffers one stage's blocks run over.
#[derive(Debug, Clone, Copy)]
struct StageBufs {
    /// The running activation (block input and output).
    x: usize,
    /// The token mixer's output, residual of the channel mixer.
    t: usize,
    /// The channel mixer's hidden activation.
    hidden: usize,
}

/// Appends a block's steps: `x <- t + pw2(gelu(pw1(t)))` with `t = se(dw(x))`.
fn push_block(
    k: &Kernels,
    steps: &mut Graph,
    name: &str,
    b: &BlockWeights,
    sb: StageBufs,
) -> Result<(), Error> {
    steps.push(
        format!("{name}.token_mixer"),
        Op::Dw {
            conv: dw(k, &format!("{name}.token_mixer"), &b.dw, 1)?,
            src: sb.x,
            dst: sb.t,
            sums: b.se.is_some(),
        },
    );
    if let Some(s) = &b.se {
        let se = SqueezeExcite::new(
            k.isa(),
            s.c,
            s.r,
            &s.fc1.weight,
            &s.fc1.bias,
            &s.fc2.weight,
            &s.fc2.bias,
            Activation::Relu,
            Gate::Sigmoid,
        )
        .layer(|| format!("{name}.se"))?;
        steps.push(format!("{name}.se"), Op::Se { se, t: sb.t });
    }
    let n1 = format!("{name}.channel_mixer.conv1");
    let pw = pack(k, &n1, &b.pw1)?;
    steps.push(
        n1,
        Op::Pw {
            pw,
            act: Activation::Gelu,
            src: sb.t,
            dst: sb.hidden,
            residual: None,
        },
    );
    let n2 = format!("{name}.channel_mixer.conv2");
    let pw = pack(k, &n2, &b.pw2)?;
    steps.push(
        n2,
        Op::Pw {
            pw,
            act: Activation::Identity,
            src: sb.hidden,
            dst: sb.x,
            residual: Some(sb.t),
        },
    );
    Ok(())
}

/// Appends RepViT's steps for re-parameterised weights `fw` (packed for the ISA of `k`) to `g`.
pub(crate) fn push_repvit(fw: &FusedWeights, k: &Kernels, g: &mut Graph) -> Result<(), Error> {
    let cfg = &fw.config;
    let stem_out = g.buf();
    let mut stage_bufs = Vec::with_capacity(fw.stages.len());
    let mut down_bufs = Vec::with_capacity(fw.stages.len());
    for i in 0..cfg.embed_dim.len() {
        down_bufs.push((i > 0).then(|| g.buf()));
        stage_bufs.push(StageBufs {
            x: g.buf(),
            t: g.buf(),
            hidden: g.buf(),
        });
    }
    if stage_bufs.len() != fw.stages.len() || stage_bufs.is_empty() {
        return Err(Error::Config {
            reason: format!(
                "{} stage widths for {} stages of weights",
                stage_bufs.len(),
                fw.stages.len()
            ),
        });
    }

    let stem = |g: &mut Graph, name: &str, f: &Folded, act, src, dst| {
        push_conv3x3(k, g, name, f, (2, act), (src, dst))
    };
    stem(
        g,
        "stem.conv1",
        &fw.stem1,
        Activation::Gelu,
        Graph::INPUT,
        stem_out,
    )?;
    stem(
        g,
        "stem.conv2",
        &fw.stem2,
        Activation::Identity,
        stem_out,
        stage_bufs[0].x,
    )?;
    for (i, sw) in fw.stages.iter().enumerate() {
        let cur = stage_bufs[i];
        if let Some(d) = &sw.downsample {
            let name = format!("stages.{i}.downsample");
            let (Some(p), Some(down)) = (i.checked_sub(1).map(|j| stage_bufs[j]), down_bufs[i])
            else {
                return Err(Error::Config {
                    reason: format!("stage {i}: a downsample needs a previous stage"),
                });
            };
            push_block(k, g, &format!("{name}.pre_block"), &d.pre_block, p)?;
            let sname = format!("{name}.spatial_downsample");
            let conv = dw(k, &sname, &d.spatial, 2)?;
            g.push(
                sname,
                Op::Dw {
                    conv,
                    src: p.x,
                    dst: down,
                    sums: false,
                },
            );
            let pws = [
                (
                    "channel_downsample",
                    &d.channel,
                    Activation::Identity,
                    down,
                    cur.t,
                    None,
                ),
                (
                    "ffn.conv1",
                    &d.ffn1,
                    Activation::Gelu,
                    cur.t,
                    cur.hidden,
                    None,
                ),
                (
                    "ffn.conv2",
                    &d.ffn2,
                    Activation::Identity,
                    cur.hidden,
                    cur.x,
                    Some(cur.t),
                ),
            ];
            for (suffix, f, act, src, dst, residual) in pws {
                let n = format!("{name}.{suffix}");
                let pw = pack(k, &n, f)?;
                g.push(
                    n,
                    Op::Pw {
                        pw,
                        act,
                        src,
                        dst,
                        residual,
                    },
                );
            }
        }
        for (j, b) in sw.blocks.iter().enumerate() {
            push_block(k, g, &format!("stages.{i}.blocks.{j}"), b, cur)?;
        }
        g.end_stage(cur.x, 4 << i);
    }
    let last = stage_bufs[stage_bufs.len() - 1].x;
    // Headless (timm's `num_classes=0`): the pooled features are the output.
    let headless = fw.head.cout == 0;
    g.push(
        "global_pool",
        Op::Pool {
            src: last,
            to_out: headless,
        },
    );
    if headless {
        return Ok(());
    }
    let head = Linear::new(
        k.isa(),
        fw.head.cin,
        fw.head.cout,
        &fw.head.weight,
        Some(&fw.head.bias),
    )
    .layer(|| "head".into())?;
    g.push(
        "head",
        Op::Head {
            linear: head,
            src: Vector::Pooled,
        },
    );
    Ok(())
}
