//! The step's environment: kept from the launcher, handed over as data on
//! its standard input, and given to the program only at the final `exec`.

use std::ffi::OsString;

use super::{SandboxError, setup};

/// Variables of the server's own session that name a way out (an SSH or
/// GPG agent, the session bus, a terminal multiplexer, a display): never
/// handed to a step, whatever the server inherited.
const SESSION_VARIABLES: &[&str] = &[
    "SSH_AUTH_SOCK",
    "SSH_AGENT_PID",
    "GPG_AGENT_INFO",
    "DBUS_SESSION_BUS_ADDRESS",
    "DBUS_SYSTEM_BUS_ADDRESS",
    "XDG_RUNTIME_DIR",
    "TMUX",
    "TMUX_PANE",
    "STY",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "DOCKER_HOST",
    "CONTAINER_HOST",
];

/// The launcher's own environment: the server's `PATH` and nothing else.
pub(super) fn launcher_environment() -> Vec<(OsString, OsString)> {
    std::env::var_os("PATH")
        .map(|path| ("PATH".into(), path))
        .into_iter()
        .collect()
}

/// What a confined program's environment is: the server's variables, less
/// Slipway's settings and the server's session's, then `env` over them.
fn program_environment(env: &[(String, String)]) -> Vec<(OsString, OsString)> {
    let mut all: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(name, _)| {
            let name = name.to_string_lossy();
            !name.starts_with("SLIPWAY_") && !SESSION_VARIABLES.contains(&name.as_ref())
        })
        .collect();
    for (name, value) in env {
        all.retain(|(n, _)| n != name.as_str());
        all.push((name.into(), value.into()));
    }
    all
}

/// The program's environment as `NAME=VALUE\0` entries in an unnamed file
/// (no path another process could swap), read from the start.
pub(super) fn environment_file(env: &[(String, String)]) -> std::io::Result<std::fs::File> {
    use std::io::{Seek as _, Write as _};
    use std::os::unix::ffi::OsStrExt as _;
    let mut file = tempfile::tempfile()?;
    let mut data = Vec::new();
    for (name, value) in program_environment(env) {
        data.extend_from_slice(name.as_bytes());
        data.push(b'=');
        data.extend_from_slice(value.as_bytes());
        data.push(0);
    }
    file.write_all(&data)?;
    file.rewind()?;
    Ok(file)
}

/// Reads what [`environment_file`] wrote from the launcher's standard input.
pub(super) fn read_environment() -> Result<Vec<(OsString, OsString)>, SandboxError> {
    use std::io::Read as _;
    use std::os::unix::ffi::OsStringExt as _;
    let mut data = Vec::new();
    std::io::stdin()
        .read_to_end(&mut data)
        .map_err(setup("read the step's environment from standard input"))?;
    Ok(data
        .split(|b| *b == 0)
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| {
            let at = entry.iter().position(|b| *b == b'=')?;
            Some((
                OsString::from_vec(entry[..at].to_vec()),
                OsString::from_vec(entry[at + 1..].to_vec()),
            ))
        })
        .collect())
}
