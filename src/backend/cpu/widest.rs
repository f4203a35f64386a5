//! Loops built for the widest vector instructions the CPU has: the same
//! Rust code compiled for AVX-512 or AVX2 (with FMA), picked at run time,
//! or for the baseline elsewhere. The element-wise op table's expressions
//! (and the f32 `exp`/`tanh` polynomials they call, all inlined) vectorise
//! this way.

/// Defines a function whose body is built three times: for AVX-512, for
/// AVX2 with FMA, and for the baseline; each call runs the widest this
/// CPU has.
macro_rules! widest_fn {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident$(<$f:ident: $bound:path>)?($($arg:ident: $ty:ty),* $(,)?) $body:block
    ) => {
        $(#[$meta])*
        $vis fn $name$(<$f: $bound>)?($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512$(<$f: $bound>)?($($arg: $ty),*) $body
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2$(<$f: $bound>)?($($arg: $ty),*) $body
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body
        }
    };
}

pub(super) use widest_fn;
