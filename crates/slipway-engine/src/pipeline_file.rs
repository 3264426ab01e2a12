//! Reading a run's pipeline file from the project's mirror. The file comes
//! from whoever pushed, so its size is asked of git (`cat-file -s`) before a
//! byte of it is read, and a refused file leaves only the reason behind:
//! neither a 100 MB file nor a 1 MB invalid one is kept with each run.

use slipway_git::Mirror;
use slipway_spec::{DEFAULT_FILE, Diagnostic, Limits};

use crate::Result;

/// The most of a validation report kept as a failed run's reason.
const MAX_REPORT: usize = 16 * 1024;

/// The pipeline file's text at `commit`, or why a run cannot have one.
pub(crate) async fn read(mirror: &Mirror, commit: &str) -> Result<Result<String, String>> {
    let limit = Limits::default().max_bytes;
    let Some(size) = mirror.file_size(commit, DEFAULT_FILE).await? else {
        return Ok(Err(format!("commit {commit} has no {DEFAULT_FILE}")));
    };
    if size > limit as u64 {
        return Ok(Err(format!(
            "{DEFAULT_FILE} at commit {commit} has {size} bytes; at most {} (1 MiB) are read: \
             make it smaller (a long script can live in a file of the repository that a step runs)",
            limit
        )));
    }
    match mirror.read_file(commit, DEFAULT_FILE).await? {
        Some(text) => Ok(Ok(text)),
        None => Ok(Err(format!("commit {commit} has no {DEFAULT_FILE}"))),
    }
}

/// The reason an invalid file fails its run: the validator's report, cut
/// short when a file has very many errors.
pub(crate) fn invalid(text: &str, diagnostics: &[Diagnostic]) -> String {
    let mut report = slipway_spec::render_all(DEFAULT_FILE, text, diagnostics);
    if report.len() > MAX_REPORT {
        let mut cut = MAX_REPORT;
        while !report.is_char_boundary(cut) {
            cut -= 1;
        }
        report.truncate(cut);
        report.push_str("\n… (more errors: run `slipway validate` on the file)");
    }
    format!("invalid pipeline file:\n{report}")
}
