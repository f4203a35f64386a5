//! Loops built for the widest vector instructions the CPU has: the same
//! Rust code compiled for AVX-512 or AVX2 (with FMA), picked at run time,
//! or for the baseline elsewhere. The element-wise op table's expressions
//! (and the f32 `exp`/`tanh` polynomials they call, all inlined) vectorise
//! this way. Unit tests run each function at every level this CPU has
//! ([`at_each_level`]) and compare it with the baseline.

/// The instruction sets a `widest_fn` is built for, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Level {
    Baseline,
    Avx2,
    Avx512,
}

/// The widest level `XPU_CPU_SIMD` (`baseline`, `avx2` or `avx512`) lets
/// the CPU kernels take: all of them when unset; an unknown value is
/// reported once and ignored.
fn level_from_env() -> Level {
    match std::env::var("XPU_CPU_SIMD").as_deref() {
        Err(_) | Ok("avx512") => Level::Avx512,
        Ok("avx2") => Level::Avx2,
        Ok("baseline") => Level::Baseline,
        Ok(other) => {
            eprintln!("XPU_CPU_SIMD={other}: expected baseline, avx2 or avx512; ignored");
            Level::Avx512
        }
    }
}

static ENV_CAP: std::sync::OnceLock<Level> = std::sync::OnceLock::new();

#[cfg(test)]
thread_local! {
    static TEST_CAP: std::cell::Cell<Option<Level>> = const { std::cell::Cell::new(None) };
}

/// Whether a `widest_fn` may run its `level` build (when the CPU has it):
/// up to `XPU_CPU_SIMD`'s level, or in unit tests the level
/// [`at_each_level`] sets for the thread.
pub(super) fn allowed(level: Level) -> bool {
    #[cfg(test)]
    if let Some(cap) = TEST_CAP.with(std::cell::Cell::get) {
        return level <= cap;
    }
    level <= *ENV_CAP.get_or_init(level_from_env)
}

/// Runs `f` with the `widest_fn`s of this thread capped at each level in
/// turn, narrowest first (a level the CPU lacks runs the next narrower).
#[cfg(test)]
pub(super) fn at_each_level(mut f: impl FnMut(Level)) {
    for level in [Level::Baseline, Level::Avx2, Level::Avx512] {
        TEST_CAP.with(|cap| cap.set(Some(level)));
        f(level);
    }
    TEST_CAP.with(|cap| cap.set(None));
}

/// Defines a function whose body is built three times: for AVX-512, for
/// AVX2 with FMA, and for the baseline; each call runs the widest this
/// CPU has and [`allowed`] lets it take.
macro_rules! widest_fn {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident$(<$f:ident: $bound:path>)?($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        $vis fn $name$(<$f: $bound>)?($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512$(<$f: $bound>)?($($arg: $ty),*) $(-> $ret)? $body
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2$(<$f: $bound>)?($($arg: $ty),*) $(-> $ret)? $body
                use super::widest::{allowed, Level};
                if allowed(Level::Avx512) && std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked above).
                    return unsafe { avx512($($arg),*) };
                }
                if allowed(Level::Avx2)
                    && std::arch::is_x86_feature_detected!("avx2")
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
