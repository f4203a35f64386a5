//! Generation: a prompt through decode steps on one unit, token by token.

use std::time::Instant;

use super::{DecodeStep, LanguageModel, Sampler, Sampling, TextStream};
use crate::error::{Error, Result};
use crate::runtime::{Runtime, TaskOptions};
use crate::tensor::Tensor;
use crate::unit::Placement;
use crate::DType;

/// What to generate and where.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Tokens to generate at most (fewer if the model ends its answer).
    pub max_tokens: usize,
    pub sampling: Sampling,
    /// The unit (or kind) that runs every step; by default the LPU.
    pub placement: Placement,
    /// Stop at the end-of-text token.
    pub stop_at_eos: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 32,
            sampling: Sampling::Greedy,
            placement: Placement::Kind(crate::UnitKind::Lpu),
            stop_at_eos: true,
        }
    }
}

/// What a generation produced and how fast.
#[derive(Debug, Clone)]
pub struct GenerationReport {
    pub prompt_tokens: usize,
    /// Time to run the prompt and get the first token's logits.
    pub prompt_seconds: f64,
    /// The generated token ids.
    pub tokens: Vec<u32>,
    pub text: String,
    /// Time for the generated tokens after the first.
    pub generation_seconds: f64,
}

impl GenerationReport {
    /// Prompt tokens per second.
    pub fn prompt_tokens_per_second(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_seconds.max(1e-9)
    }

    /// Generated tokens per second (each needs one decode step; the first
    /// comes from the prompt step).
    pub fn generation_tokens_per_second(&self) -> f64 {
        self.tokens.len().saturating_sub(1) as f64 / self.generation_seconds.max(1e-9)
    }
}

/// A conversation with a model on the runtime: the KV cache tensor and the
/// logits tensor, which stay on the unit that runs the steps.
pub struct Session<'a> {
    rt: &'a Runtime,
    model: &'a LanguageModel,
    cache: Tensor,
    logits: Tensor,
    position: usize,
    context: usize,
    options: TaskOptions,
}

impl<'a> Session<'a> {
    /// A session with room for `context` tokens, its steps placed by `placement`.
    pub fn new(
        rt: &'a Runtime,
        model: &'a LanguageModel,
        context: usize,
        placement: Placement,
    ) -> Session<'a> {
        let config = model.config();
        Session {
            rt,
            model,
            cache: rt.empty(&config.cache_shape(context), DType::F32),
            logits: rt.empty(&[config.vocab], DType::F32),
            position: 0,
            context,
            options: TaskOptions::default().on(placement),
        }
    }

    /// Tokens in the cache.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The KV cache tensor.
    pub fn cache(&self) -> &Tensor {
        &self.cache
    }

    /// Runs `tokens` as one decode step and returns the last one's logits.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(Error::Config(
                "a decode step needs at least one token".into(),
            ));
        }
        if self.position + tokens.len() > self.context {
            return Err(Error::Config(format!(
                "the context is full: {} tokens in the cache, {} more do not fit in {}",
                self.position,
                tokens.len(),
                self.context
            )));
        }
        let ids = self.rt.tensor(&[tokens.len()], tokens)?;
        let step = DecodeStep {
            weights: self.model.weights.clone(),
            position: self.position,
        }
        .kernel()?;
        let cache = if self.position == 0 {
            self.cache.write()
        } else {
            self.cache.rw()
        };
        self.rt.submit_with(
            &step,
            &[ids.read(), cache, self.logits.write()],
            self.options.clone(),
        )?;
        let logits = self.rt.read::<f32>(&self.logits)?;
        self.position += tokens.len();
        Ok(logits)
    }
}

/// Generates from `prompt`, calling `on_text` with each piece of text as
/// it is decoded.
pub fn generate(
    rt: &Runtime,
    model: &LanguageModel,
    prompt: &str,
    options: &GenerateOptions,
    mut on_text: impl FnMut(&str),
) -> Result<GenerationReport> {
    let tokenizer = &model.tokenizer;
    let mut prompt_tokens = tokenizer.encode(prompt)?;
    if prompt_tokens.is_empty() {
        prompt_tokens.extend(tokenizer.bos);
    }
    if prompt_tokens.is_empty() {
        return Err(Error::Config(
            "the prompt is empty and the model has no start token".into(),
        ));
    }
    let context = prompt_tokens.len() + options.max_tokens;
    if context > model.config().context {
        return Err(Error::Config(format!(
            "{} prompt tokens and {} new ones exceed the model's context of {}",
            prompt_tokens.len(),
            options.max_tokens,
            model.config().context
        )));
    }
    let mut session = Session::new(rt, model, context, options.placement);
    let mut sampler = Sampler::new(options.sampling);
    let mut stream = TextStream::default();
    let mut tokens = Vec::new();
    let mut text = String::new();

    let start = Instant::now();
    let mut logits = session.feed(&prompt_tokens)?;
    let prompt_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    while tokens.len() < options.max_tokens {
        let next = sampler.next(&logits);
        if options.stop_at_eos && Some(next) == tokenizer.eos {
            break;
        }
        tokens.push(next);
        let piece = stream.push(tokenizer, next);
        on_text(&piece);
        text.push_str(&piece);
        if tokens.len() == options.max_tokens {
            break;
        }
        logits = session.feed(&[next])?;
    }
    Ok(GenerationReport {
        prompt_tokens: prompt_tokens.len(),
        prompt_seconds,
        tokens,
        text,
        generation_seconds: start.elapsed().as_secs_f64(),
    })
}
