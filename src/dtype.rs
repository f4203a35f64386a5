//! Element types of tensors.

use half::{bf16, f16};

/// The element type of a tensor.
///
/// ```
/// use xpu::DType;
/// assert_eq!(DType::F16.size(), 2);
/// assert_eq!(DType::F32.to_string(), "f32");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    U8,
    /// Unsigned 32-bit integers: token ids for language models.
    U32,
}

impl DType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F64 => 8,
            DType::F32 | DType::U32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::U8 => 1,
        }
    }

    /// Whether this is a floating-point type.
    pub const fn is_float(self) -> bool {
        !matches!(self, DType::U8 | DType::U32)
    }

    /// Values as this dtype's little-endian bytes, each rounded as
    /// [`Element::from_f64`] does (integers saturate).
    ///
    /// ```
    /// use xpu::DType;
    /// let bytes = DType::U8.encode(&[1.0, 300.0, -2.0]);
    /// assert_eq!(bytes, vec![1, 255, 0]);
    /// assert_eq!(DType::F16.decode(&DType::F16.encode(&[0.5, -3.0])), vec![0.5, -3.0]);
    /// ```
    pub fn encode(self, values: &[f64]) -> Vec<u8> {
        fn encode_as<T: Element>(values: &[f64]) -> Vec<u8> {
            let typed: Vec<T> = values.iter().map(|&v| T::from_f64(v)).collect();
            bytemuck::cast_slice(&typed).to_vec()
        }
        match self {
            DType::F32 => encode_as::<f32>(values),
            DType::F64 => encode_as::<f64>(values),
            DType::F16 => encode_as::<f16>(values),
            DType::BF16 => encode_as::<bf16>(values),
            DType::U8 => encode_as::<u8>(values),
            DType::U32 => encode_as::<u32>(values),
        }
    }

    /// This dtype's little-endian bytes as values (a trailing partial
    /// element is ignored).
    pub fn decode(self, bytes: &[u8]) -> Vec<f64> {
        fn decode_as<T: Element>(bytes: &[u8]) -> Vec<f64> {
            bytes
                .chunks_exact(std::mem::size_of::<T>())
                .map(|c| bytemuck::pod_read_unaligned::<T>(c).to_f64())
                .collect()
        }
        match self {
            DType::F32 => decode_as::<f32>(bytes),
            DType::F64 => decode_as::<f64>(bytes),
            DType::F16 => decode_as::<f16>(bytes),
            DType::BF16 => decode_as::<bf16>(bytes),
            DType::U8 => decode_as::<u8>(bytes),
            DType::U32 => decode_as::<u32>(bytes),
        }
    }

    /// Parses `f32`, `f64`, `f16`, `bf16`, `u8` or `u32`.
    ///
    /// ```
    /// assert_eq!(xpu::DType::parse("bf16").unwrap(), xpu::DType::BF16);
    /// assert!(xpu::DType::parse("int7").is_err());
    /// ```
    pub fn parse(s: &str) -> crate::Result<DType> {
        Ok(match s {
            "f32" => DType::F32,
            "f64" => DType::F64,
            "f16" => DType::F16,
            "bf16" => DType::BF16,
            "u8" => DType::U8,
            "u32" => DType::U32,
            other => {
                return Err(crate::Error::Config(format!(
                    "unknown dtype `{other}` (expected f32, f64, f16, bf16, u8 or u32)"
                )))
            }
        })
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::U8 => "u8",
            DType::U32 => "u32",
        })
    }
}

/// A Rust type that can be stored in a tensor.
pub trait Element: bytemuck::Pod + Send + Sync + 'static {
    /// The tensor dtype of this Rust type.
    const DTYPE: DType;
    /// Converts to f64 (for checks and references).
    fn to_f64(self) -> f64;
    /// Converts from f64, rounding (and saturating for integers).
    fn from_f64(v: f64) -> Self;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
}

impl Element for u8 {
    const DTYPE: DType = DType::U8;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v.round().clamp(0.0, 255.0) as u8
    }
}

impl Element for u32 {
    const DTYPE: DType = DType::U32;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v.round().clamp(0.0, u32::MAX as f64) as u32
    }
}
