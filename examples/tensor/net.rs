//! The network of the `tensor` example, shared with its test: a small
//! convolutional front end (conv 3x3, ReLU, 2x2 max pooling) on a batch of
//! images, one task per image, then an MLP (two GELU hidden layers and a
//! softmax) on row tiles of the batch, one task per tile and layer. Every
//! task may run on any unit that has the kernel.

use xpu::{DType, Kernel, Placement, Runtime, TaskOptions, Tensor, UnaryOp};

/// Sizes of one forward pass.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub batch: usize,
    /// Image side (square, 3 channels).
    pub side: usize,
    pub hidden: usize,
    pub classes: usize,
    /// Rows of the batch per MLP task.
    pub tile: usize,
}

/// Deterministic weights in [-scale, scale].
fn weights(rt: &Runtime, shape: &[usize], seed: usize, scale: f32) -> xpu::Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0) * scale)
        .collect();
    rt.tensor(shape, data)
}

/// Class probabilities, `[batch, classes]` flattened, with every task on
/// `placement`.
pub fn forward(rt: &Runtime, s: Shape, placement: Placement) -> xpu::Result<Vec<f32>> {
    let on = TaskOptions::default().on(placement);
    let (filters, pooled) = (8, s.side / 2);
    let features = filters * pooled * pooled;
    let conv_w = weights(rt, &[filters, 3, 3, 3], 1, 0.3)?;
    let layers = [
        weights(rt, &[features, s.hidden], 2, 0.05)?,
        weights(rt, &[s.hidden, s.hidden], 3, 0.05)?,
        weights(rt, &[s.hidden, s.classes], 4, 0.05)?,
    ];
    // Front end: one image per task chain, written into its row of x.
    let mut rows = Vec::with_capacity(s.batch);
    for b in 0..s.batch {
        let image = weights(rt, &[1, 3, s.side, s.side], 10 + b, 1.0)?;
        let conv = rt.empty(&[1, filters, s.side, s.side], DType::F32);
        let relu = rt.empty(&[1, filters, s.side, s.side], DType::F32);
        let pool = rt.empty(&[1, filters, pooled, pooled], DType::F32);
        rt.submit_with(
            &Kernel::Conv2d {
                stride: 1,
                padding: 1,
            },
            &[image.read(), conv_w.read(), conv.write()],
            on.clone(),
        )?;
        rt.submit_with(
            &Kernel::Unary(UnaryOp::Relu),
            &[conv.read(), relu.write()],
            on.clone(),
        )?;
        rt.submit_with(
            &Kernel::Pool2d {
                op: xpu::PoolOp::Max,
                window: 2,
                stride: 2,
            },
            &[relu.read(), pool.write()],
            on.clone(),
        )?;
        rows.push(pool);
    }
    // Gather the pooled features of each tile's images into [tile, features].
    let mut probabilities = Vec::new();
    for tile in rows.chunks(s.tile) {
        let x = rt.empty(&[tile.len(), features], DType::F32);
        let gather = Kernel::custom(
            "gather_rows",
            &vec![xpu::Mode::Read; tile.len()]
                .into_iter()
                .chain([xpu::Mode::Write])
                .collect::<Vec<_>>(),
            |args| {
                let (inputs, out) = args.split_at_mut(args.len() - 1);
                let rows: Vec<Vec<f32>> = inputs
                    .iter()
                    .map(|a| a.as_f32().map(<[f32]>::to_vec))
                    .collect::<xpu::Result<_>>()?;
                for (dst, src) in out[0].as_f32_mut()?.chunks_mut(rows[0].len()).zip(&rows) {
                    dst.copy_from_slice(src);
                }
                Ok(())
            },
        );
        let mut accesses: Vec<xpu::Access> = tile.iter().map(Tensor::read).collect();
        accesses.push(x.write());
        rt.submit_with(&gather, &accesses, TaskOptions::default())?;
        let mut h = x;
        for (i, w) in layers.iter().enumerate() {
            let width = w.shape()[1];
            let z = rt.empty(&[tile.len(), width], DType::F32);
            rt.submit_with(
                &Kernel::gemm(),
                &[h.read(), w.read(), z.write()],
                on.clone(),
            )?;
            let a = rt.empty(&[tile.len(), width], DType::F32);
            let activation = if i + 1 < layers.len() {
                Kernel::Unary(UnaryOp::Gelu)
            } else {
                Kernel::Softmax
            };
            rt.submit_with(&activation, &[z.read(), a.write()], on.clone())?;
            h = a;
        }
        probabilities.push(h);
    }
    let mut out = Vec::with_capacity(s.batch * s.classes);
    for p in &probabilities {
        out.extend(rt.read::<f32>(p)?);
    }
    Ok(out)
}
