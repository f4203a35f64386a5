//! What one tiny GPU task costs, beside what wgpu itself needs for it.
//!
//! - `tiny/xpu`: relu on 256 f32 elements as an xpu task on the first GPU
//!   unit (independent tasks, 64 outputs in turn), per task, submission to
//!   device completion.
//! - `tiny/raw-wgpu`: the same shader dispatched by a minimal wgpu loop on
//!   the same adapter: bind group made once, then per dispatch an encoder,
//!   a compute pass, one dispatch and a submission.
//! - `chain/xpu`: 1,000 relus in a chain (each reads the last one's output)
//!   on the GPU unit, per task.
//! - `chain/raw-wgpu`: the same 1,000 dispatches recorded by hand into one
//!   encoder and submitted once, per dispatch.
//!
//! Without a GPU unit it says so and measures nothing.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use xpu::{DType, Kernel, Placement, Runtime, TaskOptions, UnaryOp, UnitKind};

const ELEMENTS: usize = 256;
const CHAIN: usize = 1000;

/// The unary shader as the crate's build script composed it.
const UNARY_WGSL: &str = include_str!(concat!(env!("OUT_DIR"), "/shaders/unary.wgsl"));

/// One adapter opened the way xpu opens its first GPU unit, the relu
/// pipeline, and two buffers bound both ways (x to y, y to x).
struct Raw {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    forward: wgpu::BindGroup,
    backward: wgpu::BindGroup,
}

impl Raw {
    fn open() -> Option<Raw> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
        if adapters.is_empty() {
            adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::SECONDARY));
        }
        let adapter = adapters.into_iter().next()?;
        let (device, queue) =
            pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).ok()?;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("unary"),
            source: wgpu::ShaderSource::Wgsl(UNARY_WGSL.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("unary"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let storage = || {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: (ELEMENTS * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        let (x, y) = (storage(), storage());
        let params: [u32; 4] = [ELEMENTS as u32, UnaryOp::Relu.code(), 1, 0];
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        queue.write_buffer(&uniform, 0, bytemuck::cast_slice(&params));
        let layout = pipeline.get_bind_group_layout(0);
        let bind = |from: &wgpu::Buffer, to: &wgpu::Buffer| {
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: from.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: to.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: uniform.as_entire_binding(),
                    },
                ],
            })
        };
        let (forward, backward) = (bind(&x, &y), bind(&y, &x));
        Some(Raw {
            device,
            queue,
            pipeline,
            forward,
            backward,
        })
    }

    fn record(&self, encoder: &mut wgpu::CommandEncoder, i: usize) {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(
            0,
            if i.is_multiple_of(2) {
                &self.forward
            } else {
                &self.backward
            },
            &[],
        );
        pass.dispatch_workgroups(1, 1, 1);
    }

    fn wait(&self) {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("poll");
    }

    /// `n` dispatches, one submission each, then a wait.
    fn one_by_one(&self, n: u64) -> Duration {
        let start = Instant::now();
        for i in 0..n as usize {
            let mut encoder = self.device.create_command_encoder(&Default::default());
            self.record(&mut encoder, i);
            self.queue.submit([encoder.finish()]);
        }
        self.wait();
        start.elapsed()
    }

    /// `CHAIN` dispatches in one encoder and one submission, then a wait.
    fn chain(&self) -> Duration {
        let start = Instant::now();
        let mut encoder = self.device.create_command_encoder(&Default::default());
        for i in 0..CHAIN {
            self.record(&mut encoder, i);
        }
        self.queue.submit([encoder.finish()]);
        self.wait();
        start.elapsed()
    }
}

fn gpu_launch(c: &mut Criterion) {
    let rt = Runtime::builder().cpu_units(1).build().expect("runtime");
    let Some(gpu) = rt.first_unit(UnitKind::Gpu) else {
        eprintln!("no GPU unit: nothing to measure");
        return;
    };
    let Some(raw) = Raw::open() else {
        eprintln!("no wgpu adapter opened: nothing to measure");
        return;
    };
    let relu = Kernel::Unary(UnaryOp::Relu);
    let on_gpu = TaskOptions::default().on(Placement::Unit(gpu));
    let x = rt.tensor(&[ELEMENTS], vec![1.0f32; ELEMENTS]).expect("x");
    let outs: Vec<_> = (0..64).map(|_| rt.empty(&[ELEMENTS], DType::F32)).collect();
    let chain = [
        rt.tensor(&[ELEMENTS], vec![1.0f32; ELEMENTS]).expect("a"),
        rt.empty(&[ELEMENTS], DType::F32),
    ];
    // Compile the pipeline and place the data before timing.
    rt.submit_with(&relu, &[x.read(), outs[0].write()], on_gpu.clone())
        .expect("warm-up");
    rt.synchronize().expect("synchronize");

    let mut group = c.benchmark_group("gpu_launch");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    group.bench_function("tiny/xpu", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            for i in 0..n as usize {
                rt.submit_with(
                    &relu,
                    &[x.read(), outs[i % outs.len()].write()],
                    on_gpu.clone(),
                )
                .expect("submit");
            }
            rt.synchronize().expect("synchronize");
            start.elapsed()
        })
    });
    group.bench_function("tiny/raw-wgpu", |b| b.iter_custom(|n| raw.one_by_one(n)));
    group.bench_function("chain/xpu", |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let start = Instant::now();
                for i in 0..CHAIN {
                    let (from, to) = (&chain[i % 2], &chain[(i + 1) % 2]);
                    rt.submit_with(&relu, &[from.read(), to.write()], on_gpu.clone())
                        .expect("submit");
                }
                rt.synchronize().expect("synchronize");
                total += start.elapsed() / CHAIN as u32;
            }
            total
        })
    });
    group.bench_function("chain/raw-wgpu", |b| {
        b.iter_custom(|n| (0..n).map(|_| raw.chain() / CHAIN as u32).sum())
    });
    group.finish();
}

criterion_group!(benches, gpu_launch);
criterion_main!(benches);
