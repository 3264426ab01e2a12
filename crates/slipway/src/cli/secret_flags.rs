//! Secrets given as flags (`--token slw_…`, `--database-url
//! postgres://user:password@…`) would be readable by every local user and
//! every job for the whole life of the process: `/proc/PID/cmdline` is
//! world-readable, while `/proc/PID/environ` is only the owner's (and out of
//! a sandboxed job's reach). So before anything else such a flag is moved
//! into its `SLIPWAY_*` variable and the program re-executes itself without
//! it; the flag still wins over a variable already set, as clap would have it.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt as _;

/// Flags that carry secrets, and the variables clap reads them from.
const SECRET_FLAGS: &[(&str, &str)] = &[
    ("--token", "SLIPWAY_TOKEN"),
    ("--database-url", "SLIPWAY_DATABASE_URL"),
];

/// The arguments without their secret flags, and the variables to set instead.
#[derive(Debug, PartialEq)]
struct Moved {
    args: Vec<OsString>,
    vars: Vec<(&'static str, OsString)>,
}

/// Re-executes this program with its secret flags moved into the
/// environment; returns `Ok` at once when it has none (or after `exec`
/// failed with nothing to hide), `Err` when the secret could not be hidden.
pub fn hide() -> anyhow::Result<()> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let Some((program, rest)) = args.split_first() else {
        return Ok(());
    };
    let Some(moved) = split(rest) else {
        return Ok(());
    };
    // /proc/self/exe: the very binary that runs, even if its file was replaced.
    let error = std::process::Command::new("/proc/self/exe")
        .arg0(program)
        .args(&moved.args)
        .envs(moved.vars.iter().map(|(k, v)| (k, v)))
        .exec();
    let names: Vec<&str> = moved.vars.iter().map(|(k, _)| *k).collect();
    Err(anyhow::anyhow!(
        "cannot restart this program to keep its secret flags out of the process list \
         (/proc/self/exe: {error}); set {} instead of the flag",
        names.join(", ")
    ))
}

/// `None` when no secret flag is given before a `--` (what follows it is
/// another program's, such as a step's command).
fn split(args: &[OsString]) -> Option<Moved> {
    let mut moved = Moved {
        args: Vec::with_capacity(args.len()),
        vars: Vec::new(),
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            moved.args.push(arg.clone());
            moved.args.extend(rest.by_ref().cloned());
            break;
        }
        match secret_flag(arg) {
            Some((var, Some(value))) => moved.vars.push((var, value)),
            Some((var, None)) => match rest.next() {
                Some(value) => moved.vars.push((var, value.clone())),
                // No value: clap says so.
                None => moved.args.push(arg.clone()),
            },
            None => moved.args.push(arg.clone()),
        }
    }
    (!moved.vars.is_empty()).then_some(moved)
}

/// The variable of a secret flag (`--token`, or `--token=VALUE` with its value).
fn secret_flag(arg: &OsStr) -> Option<(&'static str, Option<OsString>)> {
    let text = arg.to_str()?;
    SECRET_FLAGS.iter().find_map(|(flag, var)| {
        if text == *flag {
            Some((*var, None))
        } else {
            text.strip_prefix(flag)
                .and_then(|r| r.strip_prefix('='))
                .map(|value| (*var, Some(OsString::from(value))))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn secret_flags_move_into_variables_in_both_spellings() {
        let got = split(&os(&[
            "agent",
            "--token",
            "slw_a",
            "--name",
            "x",
            "--database-url=postgres://u:p@h/d",
        ]));
        assert_eq!(
            got,
            Some(Moved {
                args: os(&["agent", "--name", "x"]),
                vars: vec![
                    ("SLIPWAY_TOKEN", "slw_a".into()),
                    ("SLIPWAY_DATABASE_URL", "postgres://u:p@h/d".into()),
                ],
            })
        );
    }

    #[test]
    fn nothing_moves_without_a_secret_flag_or_after_a_double_dash() {
        assert_eq!(split(&os(&["server", "--listen", "x"])), None);
        assert_eq!(
            split(&os(&["sandbox-exec", "--", "sh", "--token", "t"])),
            None
        );
        // A flag without a value is left for clap to refuse.
        assert_eq!(split(&os(&["agent", "--token"])), None);
        // Names that only start like one are someone else's.
        assert_eq!(split(&os(&["x", "--tokens=1"])), None);
    }
}
