//! The op tables of the element-wise, reduction and pooling kernels: for
//! each op its stable name, its code (its place in the table), its FLOPs
//! per output element and, for element-wise ops, its host expression,
//! defined once here.
//!
//! Everything else follows from these tables: `build.rs` (which includes
//! this file) generates the op-code constants and the dispatch functions of
//! the WGSL shaders and OpenCL kernels, and fails the build when
//! `shaders/ops.wgsl` or `kernels/ops.cl` lacks an op's expression; the CPU
//! backend runs `map`; the candle backend matches on the ops exhaustively;
//! the kernel tests and the bench table iterate `ALL`. Adding an
//! element-wise op is one line here plus one expression per device
//! language (WGSL, OpenCL C, candle).
//!
//! ```
//! use xpu::UnaryOp;
//! let mut out = [0.0f32; 3];
//! UnaryOp::Relu.map(&[-1.0, 0.5, 2.0], &mut out);
//! assert_eq!(out, [0.0, 0.5, 2.0]);
//! assert_eq!(UnaryOp::from_name("tanh"), Some(UnaryOp::Tanh));
//! assert_eq!(UnaryOp::Tanh.code() as usize, UnaryOp::ALL.iter().position(|&o| o == UnaryOp::Tanh).unwrap());
//! ```

use num_traits::Float;

use super::approx::KernelMath;

/// Declares an op enum with its table: names, codes, FLOPs per element
/// and, for element-wise ops, the host expression (`map`, generic over the
/// float type, one loop per op so that each is vectorised).
macro_rules! op_table {
    (
        $(#[$doc:meta])*
        $name:ident ($a:ident) {
            $( $(#[$vdoc:meta])* $variant:ident = $text:literal, $flops:literal, $body:expr; )+
        }
    ) => {
        op_table! { $(#[$doc])* $name { $( $(#[$vdoc])* $variant = $text, $flops; )+ } }

        impl $name {
            /// Applies the op element by element: `out[i] = op(x[i])`.
            // Inlined into the CPU backend's vector-width dispatch, so that
            // each loop is built for the instructions picked there.
            #[inline(always)]
            pub fn map<F: KernelMath>(self, x: &[F], out: &mut [F]) {
                match self {
                    $( $name::$variant => out.iter_mut().zip(x).for_each(|(o, &$a)| *o = $body), )+
                }
            }
        }
    };
    (
        $(#[$doc:meta])*
        $name:ident ($a:ident, $b:ident) {
            $( $(#[$vdoc:meta])* $variant:ident = $text:literal, $flops:literal, $body:expr; )+
        }
    ) => {
        op_table! { $(#[$doc])* $name { $( $(#[$vdoc])* $variant = $text, $flops; )+ } }

        impl $name {
            /// Applies the op element by element: `out[i] = op(a[i], b[i])`.
            #[inline(always)]
            pub fn map<F: KernelMath>(self, a: &[F], b: &[F], out: &mut [F]) {
                match self {
                    $(
                        $name::$variant => out
                            .iter_mut()
                            .zip(a.iter().zip(b))
                            .for_each(|(o, (&$a, &$b))| *o = $body),
                    )+
                }
            }
        }
    };
    (
        $(#[$doc:meta])*
        $name:ident {
            $( $(#[$vdoc:meta])* $variant:ident = $text:literal, $flops:literal; )+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vdoc])* $variant, )+
        }

        impl $name {
            /// Every op, in the order of their codes.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The op's stable name (the name of its kernel).
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// The variant as written in Rust (`Max`): device constants
            /// are named after it (`POOL_MAX`).
            pub const fn variant_name(self) -> &'static str {
                match self {
                    $( $name::$variant => stringify!($variant), )+
                }
            }

            /// The op's number in the device kernels: its place in [`Self::ALL`].
            pub const fn code(self) -> u32 {
                self as u32
            }

            /// Floating-point operations per output element.
            pub const fn flops_per_element(self) -> f64 {
                match self {
                    $( $name::$variant => $flops, )+
                }
            }

            /// The op called `name`, if there is one.
            pub fn from_name(name: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|op| op.name() == name)
            }
        }
    };
}

/// A constant in the float type at hand.
fn k<F: Float>(x: f64) -> F {
    F::from(x).unwrap_or_else(F::nan)
}

op_table! {
    /// Element-wise function of one tensor.
    UnaryOp(v) {
        /// `max(x, 0)`.
        Relu = "relu", 1.0, v.max(F::zero());
        /// GELU, tanh approximation (GPT-2's).
        Gelu = "gelu", 8.0,
            v * k(0.5) * (((v + v * v * v * k(0.044_715)) * k(0.797_884_560_802_865_4)).tanh_kernel() + F::one());
        /// `e^x`.
        Exp = "exp", 1.0, v.exp_kernel();
        /// Hyperbolic tangent.
        Tanh = "tanh", 1.0, v.tanh_kernel();
        /// `1 / (1 + e^-x)`, as `e^x / (1 + e^x)` for negative x (no overflow
        /// where the result is tiny).
        Sigmoid = "sigmoid", 3.0, {
            let e = (-v.abs()).exp_kernel();
            let r = (e + F::one()).recip();
            if v < F::zero() { e * r } else { r }
        };
    }
}

op_table! {
    /// Element-wise function of two tensors of the same shape.
    BinaryOp(a, b) {
        /// `a + b`.
        Add = "add", 1.0, a + b;
        /// `a * b`.
        Mul = "mul", 1.0, a * b;
    }
}

op_table! {
    /// Reduction along one axis.
    ReduceOp {
        /// The sum.
        Sum = "sum", 1.0;
        /// The largest element.
        Max = "max", 1.0;
    }
}

op_table! {
    /// Pooling window function.
    PoolOp {
        /// The largest element of the window.
        Max = "max_pool2d", 1.0;
        /// The mean of the window.
        Avg = "avg_pool2d", 1.0;
    }
}
