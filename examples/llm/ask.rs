//! The `llm` example's work: the fetched model answering a prompt on the
//! LPU unit, with what it cost.

use xpu::llm::{generate, GenerateOptions, GenerationReport, LanguageModel};
use xpu::{Runtime, UnitInfo, UnitKind};

/// An answer and what producing it moved.
pub struct Answer {
    pub lpu: UnitInfo,
    pub report: GenerationReport,
    /// Bytes copied between memory nodes (token ids in, logits out).
    pub bytes_moved: usize,
}

/// Generates up to `max_tokens` after `prompt` on the LPU, passing each
/// piece of text to `on_text` as it comes.
pub fn ask(
    rt: &Runtime,
    model: &LanguageModel,
    prompt: &str,
    max_tokens: usize,
    on_text: impl FnMut(&str),
) -> xpu::Result<Answer> {
    let lpu = rt
        .units()
        .iter()
        .find(|u| u.kind == UnitKind::Lpu)
        .cloned()
        .ok_or_else(|| {
            xpu::Error::Config("no LPU unit: this build has no candle feature".into())
        })?;
    let options = GenerateOptions {
        max_tokens,
        ..GenerateOptions::default()
    };
    let report = generate(rt, model, prompt, &options, on_text)?;
    let bytes_moved = rt.transfers().iter().map(|t| t.bytes).sum();
    Ok(Answer {
        lpu,
        report,
        bytes_moved,
    })
}
