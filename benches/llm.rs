//! The language model on the LPU: a prompt step (5 tokens, prompt tokens/s)
//! and a generation step (one token against a 32-token cache,
//! generation tokens/s) through the runtime, on the LPU and on a CPU unit,
//! and the decode step called directly (what the runtime adds is the
//! difference). llama.cpp on the same model: `benches/llm_vs_llamacpp.sh`.
//!
//! `cargo bench --bench llm` (after scripts/fetch-models.sh)

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xpu::llm::{DecodeStep, LanguageModel};
use xpu::{DType, Placement, Runtime, TaskOptions, UnitKind};

const CONTEXT: usize = 64;
const POSITION: usize = 32;

fn llm(c: &mut Criterion) {
    let model = match LanguageModel::default_path().and_then(|p| LanguageModel::load(&p)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}: nothing to measure");
            return;
        }
    };
    let rt = Runtime::builder().cpu_units(1).build().expect("runtime");
    let config = model.config().clone();
    let prompt = model
        .tokenizer
        .encode("The capital of France is")
        .expect("prompt");
    let step = |position| {
        DecodeStep {
            weights: model.weights.clone(),
            position,
        }
        .kernel()
        .expect("the decode kernel")
    };

    let mut group = c.benchmark_group("llm");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1));
    let mut cache = vec![0f32; config.cache_shape(CONTEXT).iter().product()];
    let mut logits = vec![0f32; config.vocab];
    group.bench_function("generation/direct", |b| {
        b.iter(|| {
            model
                .weights
                .forward(&[42], POSITION, &mut cache, &mut logits)
                .expect("step")
        })
    });
    for kind in [UnitKind::Lpu, UnitKind::Cpu] {
        let on = TaskOptions::default().on(Placement::Kind(kind));
        let cache = rt.empty(&config.cache_shape(CONTEXT), DType::F32);
        let logits = rt.empty(&[config.vocab], DType::F32);
        let ids = rt.tensor(&[POSITION], vec![42u32; POSITION]).expect("ids");
        rt.submit_with(
            &step(0),
            &[ids.read(), cache.write(), logits.write()],
            on.clone(),
        )
        .expect("fill the cache");
        let next = rt.tensor(&[1], vec![42u32]).expect("id");
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("generation", kind.as_str()), |b| {
            b.iter(|| {
                rt.submit_with(
                    &step(POSITION),
                    &[next.read(), cache.rw(), logits.write()],
                    on.clone(),
                )
                .expect("submit");
                rt.read::<f32>(&logits).expect("logits")
            })
        });
        let ids = rt.tensor(&[prompt.len()], prompt.clone()).expect("ids");
        group.throughput(Throughput::Elements(prompt.len() as u64));
        group.bench_function(BenchmarkId::new("prompt", kind.as_str()), |b| {
            b.iter(|| {
                rt.submit_with(
                    &step(0),
                    &[ids.read(), cache.write(), logits.write()],
                    on.clone(),
                )
                .expect("submit");
                rt.read::<f32>(&logits).expect("logits")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, llm);
criterion_main!(benches);
