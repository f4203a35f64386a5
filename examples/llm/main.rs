//! The LPU unit answering a prompt: SmolLM2-135M-Instruct (fetched by
//! `scripts/fetch-models.sh`) decoding on the LPU, its KV cache kept on the
//! LPU's memory node, the answer streamed as it is generated.
//!
//! ```text
//! cargo run --release --example llm -- ["PROMPT"] [MAX_TOKENS]
//! ```

mod ask;

use std::io::Write;

use xpu::llm::LanguageModel;
use xpu::Runtime;

fn main() -> xpu::Result<()> {
    let mut args = std::env::args().skip(1);
    let prompt = args
        .next()
        .unwrap_or_else(|| "The capital of France is".to_string());
    let max_tokens = match args.next() {
        Some(n) => n
            .parse()
            .map_err(|_| xpu::Error::Config(format!("MAX_TOKENS `{n}` is not a number")))?,
        None => 24,
    };
    let rt = Runtime::builder().build()?;
    let model = LanguageModel::load(&LanguageModel::default_path()?)?;
    let c = model.config();
    println!(
        "model: {} layers, width {}, {} heads ({} KV), vocabulary {}, {:.1} MB of weights",
        c.layers,
        c.dim,
        c.heads,
        c.kv_heads,
        c.vocab,
        model.weights.bytes() as f64 / 1e6
    );
    print!("\n{prompt}");
    let answer = ask::ask(&rt, &model, &prompt, max_tokens, |piece| {
        print!("{piece}");
        let _ = std::io::stdout().flush();
    })?;
    let (lpu, report) = (&answer.lpu, &answer.report);
    println!(
        "\n\nLPU: {}{}",
        lpu.device,
        if lpu.emulated { " (emulated)" } else { "" }
    );
    println!(
        "prompt: {} tokens in {:.1} ms ({:.1} tokens/s); generation: {} tokens, {:.1} tokens/s",
        report.prompt_tokens,
        report.prompt_seconds * 1e3,
        report.prompt_tokens_per_second(),
        report.tokens.len(),
        report.generation_tokens_per_second()
    );
    println!(
        "bytes moved between memory nodes: {} (token ids in, logits out; the KV cache stays on the LPU)",
        answer.bytes_moved
    );
    Ok(())
}
