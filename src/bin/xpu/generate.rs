//! `xpu generate "prompt"`: a language model answering on a unit (the LPU
//! by default), streamed, with tokens/s for the prompt and the generation.

use std::path::PathBuf;

use clap::Args;
#[cfg(feature = "llm")]
use xpu::llm::{generate, GenerateOptions, LanguageModel, Sampling};
#[cfg(feature = "llm")]
use xpu::{Placement, UnitKind};

use crate::RuntimeArgs;

#[derive(Args)]
pub struct GenerateArgs {
    /// The text to continue (or, with --chat, the question to answer).
    prompt: String,
    /// Tokens to generate at most; generation also ends at the model's
    /// end-of-text token.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Unit that runs every decode step: an id or a kind (lpu, cpu).
    /// Default: the LPU.
    #[arg(long)]
    unit: Option<String>,
    /// A GGUF llama model. Default: SmolLM2-135M-Instruct Q4_1 in the data
    /// directory, as `scripts/fetch-models.sh` fetches it.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Wrap the prompt in the instruct model's chat format (ChatML) so that
    /// it answers it.
    #[arg(long)]
    chat: bool,
    /// Sample with this temperature instead of picking the most likely
    /// token (greedy, deterministic, the default).
    #[arg(long)]
    temperature: Option<f32>,
    /// With --temperature: draw from the most likely tokens that make up
    /// this much probability.
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    /// With --temperature: the random seed (the same seed gives the same text).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[cfg(not(feature = "llm"))]
pub fn run(_runtime: &RuntimeArgs, _args: &GenerateArgs) -> xpu::Result<()> {
    Err(xpu::Error::NotCompiled {
        what: "`xpu generate` (language models)",
        feature: "llm",
    })
}

#[cfg(feature = "llm")]
pub fn run(runtime: &RuntimeArgs, args: &GenerateArgs) -> xpu::Result<()> {
    use std::io::Write;

    let sampling = match args.temperature {
        None => Sampling::Greedy,
        Some(t) if t > 0.0 && args.top_p > 0.0 && args.top_p <= 1.0 => Sampling::TopP {
            temperature: t,
            top_p: args.top_p,
            seed: args.seed,
        },
        Some(t) => {
            return Err(xpu::Error::Config(format!(
                "--temperature must be above 0 (got {t}) and --top-p in (0, 1] (got {})",
                args.top_p
            )))
        }
    };
    let rt = runtime.build(None)?;
    let placement = match &args.unit {
        Some(unit) => xpu::Placement::parse(unit)?,
        None => Placement::Kind(UnitKind::Lpu),
    };
    let path = match &args.model {
        Some(p) => p.clone(),
        None => LanguageModel::default_path()?,
    };
    let model = LanguageModel::load(&path)?;
    let prompt = if args.chat {
        if model.tokenizer.encode("<|im_start|>")?.len() != 1 {
            return Err(xpu::Error::Config(
                "--chat: this model has no ChatML tokens (<|im_start|>)".into(),
            ));
        }
        format!(
            "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
            args.prompt
        )
    } else {
        args.prompt.clone()
    };
    let options = GenerateOptions {
        max_tokens: args.max_tokens,
        sampling,
        placement,
        stop_at_eos: true,
    };
    if !args.chat {
        print!("{prompt}");
    }
    let report = generate(&rt, &model, &prompt, &options, |piece| {
        print!("{piece}");
        let _ = std::io::stdout().flush();
    })?;
    let profile = rt.profile();
    let unit = profile
        .tasks
        .iter()
        .rev()
        .find(|t| t.kernel == "decode")
        .and_then(|t| rt.units().get(t.unit));
    println!();
    println!();
    if let Some(u) = unit {
        println!(
            "unit: {} {} ({}){}",
            u.kind,
            u.id,
            u.device,
            if u.emulated { ", emulated" } else { "" }
        );
    }
    println!(
        "prompt: {} tokens in {:.1} ms, {:.1} tokens/s",
        report.prompt_tokens,
        report.prompt_seconds * 1e3,
        report.prompt_tokens_per_second()
    );
    println!(
        "generation: {} tokens in {:.1} ms, {:.1} tokens/s",
        report.tokens.len(),
        report.generation_seconds * 1e3,
        report.generation_tokens_per_second()
    );
    runtime.export(&rt, None, None)
}
