//! Language models on the LPU (cargo feature `llm`): a llama-architecture
//! GGUF model (SmolLM2-135M-Instruct in Q4_1 is the one `scripts/fetch-models.sh`
//! fetches), its tokenizer from the file's metadata, and autoregressive
//! decoding as a kernel.
//!
//! A [`DecodeStep`] is a task, through the same extension point any user
//! kernel uses ([`crate::Kernel::define`]): a CPU implementation, and a
//! [`crate::kernel::HostKernel`] that the candle backend runs on its LPU
//! unit. New token ids in (a `u32` tensor), the KV
//! cache extended in place (an `f32` tensor of [`Config::cache_shape`] that
//! stays on the unit's memory node between steps), the last token's logits
//! out. The prompt is one step; every generated token is one more.
//! [`generate`] drives the steps on a unit and streams the text.
//!
//! ```no_run
//! use xpu::llm::{generate, GenerateOptions, LanguageModel};
//! use xpu::Runtime;
//!
//! let rt = Runtime::builder().build()?;
//! let model = LanguageModel::load(&LanguageModel::default_path()?)?;
//! let report = generate(&rt, &model, "The capital of France is", &GenerateOptions::default(), |text| {
//!     print!("{text}")
//! })?;
//! println!("\n{:.1} tokens/s", report.generation_tokens_per_second());
//! # Ok::<(), xpu::Error>(())
//! ```

mod decode;
mod generate;
mod model;
mod quant;
mod sample;
mod team;
mod tokenizer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use generate::{generate, GenerateOptions, GenerationReport, Session};
pub use model::{Config, Weights};
pub use sample::{Sampler, Sampling};
pub use tokenizer::{TextStream, Tokenizer};

use crate::error::Result;

/// The model `scripts/fetch-models.sh` fetches, relative to the data directory.
pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// A loaded model: weights and tokenizer.
pub struct LanguageModel {
    pub weights: Arc<Weights>,
    pub tokenizer: Tokenizer,
}

/// Runs decode steps as the LPU's power state asks (see
/// `team::Team::set_power_state`); returns what that does, in words.
pub(crate) fn set_decode_power(state: crate::power::PowerState) -> String {
    team::Team::global().set_power_state(state)
}

impl LanguageModel {
    /// Loads a GGUF file. A file that is not GGUF, is truncated, or holds a
    /// model this runtime does not run gives [`crate::Error::Model`] naming
    /// the file and what is wrong.
    pub fn load(path: &Path) -> Result<LanguageModel> {
        let mut file = model::Gguf::open(path)?;
        let tokenizer = file.tokenizer()?;
        let weights = file.weights()?;
        // Start the decode threads now rather than inside the first step.
        team::Team::global();
        Ok(LanguageModel {
            weights: Arc::new(weights),
            tokenizer,
        })
    }

    /// Where the fetched default model is (an error says how to fetch it).
    pub fn default_path() -> Result<PathBuf> {
        crate::vision::data_file(DEFAULT_MODEL)
    }

    /// The network's shape.
    pub fn config(&self) -> &Config {
        &self.weights.config
    }
}

/// One decode step of a model; [`DecodeStep::kernel`] makes it a user
/// kernel (`decode.rs`).
///
/// Arguments: token ids (`u32 [n]`, read), the KV cache (`f32` of
/// [`Config::cache_shape`], written at position 0 and read-written after),
/// the logits of the last token (`f32 [vocab]`, written).
#[derive(Debug, Clone)]
pub struct DecodeStep {
    pub weights: Arc<Weights>,
    /// Tokens already in the cache.
    pub position: usize,
}
