//! Values of a small closed set (policies, power states, roles, tiled
//! algorithms) read from the names the CLI, files and requests spell them
//! with.

use crate::error::{Error, Result};

/// The one of `all` called `name` (as `name_of` spells each); otherwise an
/// error that says which `what` was asked for and lists every name.
pub(crate) fn parse_named<T: Copy, N: AsRef<str>>(
    name: &str,
    what: &str,
    all: &[T],
    name_of: impl Fn(T) -> N,
) -> Result<T> {
    all.iter()
        .copied()
        .find(|&t| name_of(t).as_ref() == name)
        .ok_or_else(|| {
            let names: Vec<String> = all
                .iter()
                .map(|&t| name_of(t).as_ref().to_string())
                .collect();
            Error::Config(format!("unknown {what} `{name}` ({})", names.join(", ")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_gives_its_value_and_an_unknown_one_lists_every_name() {
        let all = [1, 2, 3];
        let name_of = |n: i32| ["one", "two", "three"][n as usize - 1];
        assert_eq!(parse_named("two", "number", &all, name_of).unwrap(), 2);
        assert_eq!(
            parse_named("four", "number", &all, name_of)
                .unwrap_err()
                .to_string(),
            Error::Config("unknown number `four` (one, two, three)".into()).to_string()
        );
    }
}
