//! Kernels as data: every built-in kernel as a JSON object of its stable
//! name and its parameters, for the job service and the C and Python
//! bindings, which name kernels rather than build them.
//!
//! ```
//! use xpu::Kernel;
//! let k = Kernel::gemm().transpose_b().scaled(2.0, 0.0);
//! let spec = k.to_spec()?;
//! assert_eq!(spec.to_string(), r#"{"alpha":2.0,"beta":0.0,"name":"gemm","trans_a":false,"trans_b":true}"#);
//! let back = Kernel::from_spec(&spec)?;
//! assert_eq!(back.to_spec()?, spec);
//!
//! let err = Kernel::from_spec(&serde_json::json!({"name": "sum", "axis": -1})).unwrap_err();
//! assert!(err.to_string().contains("`axis`"), "{err}");
//! # Ok::<(), xpu::Error>(())
//! ```
//!
//! Parameters left out take the defaults of the constructors (`gemm`:
//! no transposes, alpha 1, beta 0); unknown names and fields, and values of
//! the wrong type, are errors naming the field.

use serde_json::{Map, Value};

use super::{BinaryOp, Kernel, PoolOp, ReduceOp, UnaryOp};
use crate::error::{Error, Result};

/// Every built-in kernel name [`Kernel::from_spec`] knows (the
/// element-wise, reduction and pooling ones from their op tables).
pub fn spec_names() -> Vec<&'static str> {
    let mut names = vec!["noop", "gemm"];
    names.extend(BinaryOp::ALL.iter().map(|op| op.name()));
    names.extend(UnaryOp::ALL.iter().map(|op| op.name()));
    names.extend(ReduceOp::ALL.iter().map(|op| op.name()));
    names.extend(["softmax", "layer_norm", "conv2d"]);
    names.extend(PoolOp::ALL.iter().map(|op| op.name()));
    names.extend([
        "resize",
        "gaussian_blur",
        "sobel",
        "rgb_to_gray",
        "threshold",
        "gray_blur",
        "sobel_threshold",
        "potrf",
        "trsm",
        "syrk",
        "getrf",
        "trsm_ll",
        "trsm_ru",
    ]);
    names
}

fn spec_error(field: &str, what: impl Into<String>) -> Error {
    Error::KernelSpec {
        field: field.to_string(),
        what: what.into(),
    }
}

fn finite_number(field: &str, v: &Value) -> Result<f64> {
    v.as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| spec_error(field, format!("expected a finite number, got {v}")))
}

/// The fields of one spec, each taken once; what is left over is unknown.
struct Fields(Map<String, Value>);

impl Fields {
    fn take(&mut self, field: &str) -> Option<Value> {
        self.0.remove(field)
    }

    fn f64_or(&mut self, field: &str, default: f64) -> Result<f64> {
        self.take(field)
            .map_or(Ok(default), |v| finite_number(field, &v))
    }

    fn f64(&mut self, field: &str) -> Result<f64> {
        let v = self
            .take(field)
            .ok_or_else(|| spec_error(field, "missing"))?;
        finite_number(field, &v)
    }

    fn bool_or(&mut self, field: &str, default: bool) -> Result<bool> {
        match self.take(field) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| spec_error(field, format!("expected true or false, got {v}"))),
        }
    }

    fn usize(&mut self, field: &str) -> Result<usize> {
        let v = self
            .take(field)
            .ok_or_else(|| spec_error(field, "missing"))?;
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| spec_error(field, format!("expected a non-negative integer, got {v}")))
    }

    /// Fails on the first field nobody asked for.
    fn finish(self, kernel: &str) -> Result<()> {
        match self.0.keys().next() {
            Some(field) => Err(spec_error(
                field,
                format!("kernel `{kernel}` has no such parameter"),
            )),
            None => Ok(()),
        }
    }
}

impl Kernel {
    /// The kernel as a JSON object: `name` and its parameters. User
    /// kernels and the language model's decode step have no spec (they
    /// carry code or weights, not parameters).
    pub fn to_spec(&self) -> Result<Value> {
        let mut spec = Map::new();
        let mut put = |field: &str, value: Value| {
            spec.insert(field.to_string(), value);
        };
        put("name", Value::from(self.name()));
        match self {
            Kernel::Gemm {
                trans_a,
                trans_b,
                alpha,
                beta,
            } => {
                put("trans_a", Value::from(*trans_a));
                put("trans_b", Value::from(*trans_b));
                put("alpha", Value::from(*alpha));
                put("beta", Value::from(*beta));
            }
            Kernel::Reduce { axis, .. } => put("axis", Value::from(*axis)),
            Kernel::LayerNorm { eps } => put("eps", Value::from(*eps)),
            Kernel::Conv2d { stride, padding } => {
                put("stride", Value::from(*stride));
                put("padding", Value::from(*padding));
            }
            Kernel::Pool2d { window, stride, .. } => {
                put("window", Value::from(*window));
                put("stride", Value::from(*stride));
            }
            Kernel::GaussianBlur { sigma } | Kernel::GrayBlur { sigma } => {
                put("sigma", Value::from(*sigma))
            }
            Kernel::Threshold { value, max } | Kernel::SobelThreshold { value, max } => {
                put("value", Value::from(*value));
                put("max", Value::from(*max));
            }
            Kernel::Custom(_) => {
                return Err(spec_error(
                    "name",
                    format!("`{}` is a user kernel: it has no spec", self.name()),
                ))
            }
            Kernel::Noop
            | Kernel::Unary(_)
            | Kernel::Binary(_)
            | Kernel::Softmax
            | Kernel::Resize
            | Kernel::Sobel
            | Kernel::RgbToGray
            | Kernel::Potrf
            | Kernel::Trsm
            | Kernel::Syrk
            | Kernel::Getrf
            | Kernel::TrsmLower
            | Kernel::TrsmUpper => {}
        }
        Ok(Value::Object(spec))
    }

    /// The built-in kernel a spec names (see [`Kernel::to_spec`]).
    pub fn from_spec(spec: &Value) -> Result<Kernel> {
        let Value::Object(map) = spec else {
            return Err(spec_error(
                "name",
                format!("a kernel spec is a JSON object, got {spec}"),
            ));
        };
        let mut f = Fields(map.clone());
        let name_value = f
            .take("name")
            .ok_or_else(|| spec_error("name", "missing"))?;
        let name = name_value
            .as_str()
            .ok_or_else(|| spec_error("name", format!("expected a string, got {name_value}")))?;
        let kernel = if let Some(op) = UnaryOp::from_name(name) {
            Kernel::Unary(op)
        } else if let Some(op) = BinaryOp::from_name(name) {
            Kernel::Binary(op)
        } else if let Some(op) = ReduceOp::from_name(name) {
            Kernel::Reduce {
                op,
                axis: f.usize("axis")?,
            }
        } else if let Some(op) = PoolOp::from_name(name) {
            Kernel::Pool2d {
                op,
                window: f.usize("window")?,
                stride: f.usize("stride")?,
            }
        } else {
            match name {
                "noop" => Kernel::Noop,
                "gemm" => Kernel::Gemm {
                    trans_a: f.bool_or("trans_a", false)?,
                    trans_b: f.bool_or("trans_b", false)?,
                    alpha: f.f64_or("alpha", 1.0)?,
                    beta: f.f64_or("beta", 0.0)?,
                },
                "softmax" => Kernel::Softmax,
                "layer_norm" => Kernel::LayerNorm {
                    eps: f.f64_or("eps", 1e-5)?,
                },
                "conv2d" => Kernel::Conv2d {
                    stride: f.usize("stride")?,
                    padding: f.usize("padding")?,
                },
                "resize" => Kernel::Resize,
                "gaussian_blur" => Kernel::GaussianBlur {
                    sigma: f.f64("sigma")?,
                },
                "sobel" => Kernel::Sobel,
                "rgb_to_gray" => Kernel::RgbToGray,
                "threshold" => Kernel::Threshold {
                    value: f.f64("value")?,
                    max: f.f64("max")?,
                },
                "gray_blur" => Kernel::GrayBlur {
                    sigma: f.f64("sigma")?,
                },
                "sobel_threshold" => Kernel::SobelThreshold {
                    value: f.f64("value")?,
                    max: f.f64("max")?,
                },
                "potrf" => Kernel::Potrf,
                "trsm" => Kernel::Trsm,
                "syrk" => Kernel::Syrk,
                "getrf" => Kernel::Getrf,
                "trsm_ll" => Kernel::TrsmLower,
                "trsm_ru" => Kernel::TrsmUpper,
                other => {
                    return Err(spec_error(
                        "name",
                        format!(
                            "no built-in kernel is called `{other}` (known: {})",
                            spec_names().join(", ")
                        ),
                    ))
                }
            }
        };
        f.finish(name)?;
        Ok(kernel)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The parameters a spec of each kernel needs.
    fn example(name: &str) -> Value {
        match name {
            "sum" | "max" => json!({"name": name, "axis": 1}),
            "max_pool2d" | "avg_pool2d" => json!({"name": name, "window": 3, "stride": 2}),
            "conv2d" => json!({"name": name, "stride": 2, "padding": 1}),
            "gaussian_blur" | "gray_blur" => json!({"name": name, "sigma": 1.5}),
            "threshold" | "sobel_threshold" => json!({"name": name, "value": 0.25, "max": 255.0}),
            "gemm" => json!({"name": name, "trans_a": true, "alpha": 0.5, "beta": 2.0}),
            "layer_norm" => json!({"name": name, "eps": 1e-6}),
            _ => json!({ "name": name }),
        }
    }

    #[test]
    fn every_built_in_kernel_round_trips() {
        for name in spec_names() {
            let kernel = Kernel::from_spec(&example(name)).unwrap();
            assert_eq!(kernel.name(), name);
            let spec = kernel.to_spec().unwrap();
            let again = Kernel::from_spec(&spec).unwrap();
            assert_eq!(again.to_spec().unwrap(), spec, "{name}");
            // Through text, as the service and the bindings pass it.
            let text = serde_json::to_string(&spec).unwrap();
            let parsed: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(Kernel::from_spec(&parsed).unwrap().to_spec().unwrap(), spec);
        }
    }

    #[test]
    fn bad_specs_name_the_field() {
        let cases = [
            (json!([1, 2]), "name"),
            (json!({}), "name"),
            (json!({"name": 3}), "name"),
            (json!({"name": "relux"}), "name"),
            (json!({"name": "sum"}), "axis"),
            (json!({"name": "sum", "axis": -1}), "axis"),
            (json!({"name": "sum", "axis": 1.5}), "axis"),
            (json!({"name": "gemm", "alpha": "two"}), "alpha"),
            (json!({"name": "gemm", "trans_a": 1}), "trans_a"),
            (json!({"name": "relu", "axis": 0}), "axis"),
            (json!({"name": "threshold", "value": 1.0}), "max"),
            (json!({"name": "gaussian_blur", "sigma": null}), "sigma"),
        ];
        for (spec, field) in cases {
            match Kernel::from_spec(&spec) {
                Err(Error::KernelSpec { field: f, .. }) => assert_eq!(f, field, "{spec}"),
                other => panic!("{spec}: expected an error naming `{field}`, got {other:?}"),
            }
        }
        let unknown = Kernel::from_spec(&json!({"name": "relux"})).unwrap_err();
        assert!(
            unknown.to_string().contains("known: noop, gemm"),
            "{unknown}"
        );
    }

    #[test]
    fn user_kernels_have_no_spec() {
        let k = Kernel::named("fir", &[crate::kernel::Mode::Read]);
        let err = k.to_spec().unwrap_err().to_string();
        assert!(err.contains("user kernel"), "{err}");
    }
}
