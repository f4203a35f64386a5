//! The decode step as a user kernel: its access list, its check (dtypes
//! and shapes against the model's configuration), its FLOPs, and two
//! implementations of one function, [`Weights::forward`] on host slices:
//! for CPU units, and for the candle backend's LPU unit as a
//! [`HostKernel`] that works on the unit's own memory node.

use std::sync::Arc;

use super::{Config, DecodeStep, Weights};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernel::{Arg, ArgMeta, HostKernel, Kernel, Mode};
use crate::unit::UnitKind;

const NAME: &str = "decode";

impl DecodeStep {
    /// The step as a kernel: arguments token ids (`u32 [n]`, R), the KV
    /// cache (`f32` of [`Config::cache_shape`]; W at position 0, RW after)
    /// and the logits (`f32 [vocab]`, W). It runs on CPU units and on LPU
    /// units.
    pub fn kernel(&self) -> Result<Kernel> {
        let modes = if self.position == 0 {
            [Mode::Read, Mode::Write, Mode::Write]
        } else {
            [Mode::Read, Mode::ReadWrite, Mode::Write]
        };
        let (checked, counted) = (self.weights.clone(), self.weights.clone());
        let position = self.position;
        let forward = Arc::new(Forward {
            weights: self.weights.clone(),
            position,
        });
        let on_cpu = forward.clone();
        Kernel::define(NAME, &modes)
            .check(move |args| check(&checked.config, position, args))
            .flops(move |shapes| flops(&counted, position, shapes))
            .cpu(move |args| on_cpu.run(args))
            .backend(
                "candle",
                HostKernel::new(&[UnitKind::Lpu], move |args| forward.run(args)),
            )
            .build()
    }
}

/// The step's function on host slices.
struct Forward {
    weights: Arc<Weights>,
    position: usize,
}

impl Forward {
    fn run(&self, args: &mut [Arg<'_>]) -> Result<()> {
        let [tokens, cache, logits] = args else {
            return Err(shape_error("a decode step takes three arguments".into()));
        };
        self.weights.forward(
            tokens.as_slice::<u32>()?,
            self.position,
            cache.as_mut_slice::<f32>()?,
            logits.as_mut_slice::<f32>()?,
        )
    }
}

fn shape_error(what: String) -> Error {
    Error::Shape {
        kernel: NAME.into(),
        what,
    }
}

/// Matrix products, plus attention over the cache.
fn flops(weights: &Weights, position: usize, shapes: &[&[usize]]) -> f64 {
    let c = &weights.config;
    let tokens = shapes[0].iter().product::<usize>() as f64;
    let attended = position as f64 + (tokens + 1.0) / 2.0;
    2.0 * tokens * weights.parameters() as f64
        + 4.0 * tokens * attended * (c.layers * c.heads * c.head_dim) as f64
}

fn check(c: &Config, position: usize, args: &[ArgMeta<'_>]) -> Result<()> {
    for (i, (a, want)) in args
        .iter()
        .zip([DType::U32, DType::F32, DType::F32])
        .enumerate()
    {
        if a.dtype != want {
            return Err(Error::DType {
                kernel: NAME.into(),
                arg: i,
                name: None,
                got: a.dtype,
                expected: want.to_string(),
            });
        }
    }
    let s = |i: usize| args[i].shape;
    for (i, what) in [(0, "the token ids"), (2, "the logits")] {
        if s(i).len() != 1 {
            return Err(shape_error(format!(
                "{what} must have rank 1, got shape {:?}",
                s(i)
            )));
        }
    }
    let tokens = s(0)[0];
    let cache = s(1);
    let context = cache.get(3).copied().unwrap_or(0);
    if tokens == 0 {
        return Err(shape_error("a decode step needs at least one token".into()));
    }
    if cache != c.cache_shape(context) {
        return Err(shape_error(format!(
            "the KV cache must be [layers {}, 2, KV heads {}, context, head size {}], got {cache:?}",
            c.layers, c.kv_heads, c.head_dim
        )));
    }
    if position + tokens > context {
        return Err(shape_error(format!(
            "{tokens} tokens at position {position} do not fit a cache of {context} positions"
        )));
    }
    if s(2) != [c.vocab] {
        return Err(shape_error(format!(
            "the logits must be [{}], got {:?}",
            c.vocab,
            s(2)
        )));
    }
    Ok(())
}
