//! Static-analysis issues: SARIF 2.1.0 (several runs, `uriBaseId`,
//! `partialFingerprints`, artifacts by index), cargo/clippy JSON lines
//! (primary span, deduplicated across targets) and Code Climate / GitLab
//! code-quality JSON, told apart by content.
//!
//! Each issue gets a fingerprint that does not depend on its line, so that
//! moving code does not make its old issues look new.

use std::collections::HashSet;
use std::io::BufRead;

use serde::Serialize;
use serde_json::Value;

use crate::ParseError;

/// Remediation minutes per issue, by severity from info to blocker
/// (SonarQube-like defaults; a pipeline may set its own).
pub const DEFAULT_DEBT_MINUTES: [u64; 5] = [0, 2, 10, 20, 30];

/// SonarQube's severities, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Minor,
    Major,
    Critical,
    Blocker,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Minor,
        Severity::Major,
        Severity::Critical,
        Severity::Blocker,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
            Severity::Blocker => "blocker",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL
            .into_iter()
            .find(|s| s.as_str() == text.to_ascii_lowercase())
    }

    /// SARIF levels and compiler levels.
    fn of_level(level: &str) -> Severity {
        match level {
            "error" => Severity::Critical,
            "warning" => Severity::Major,
            "note" | "help" => Severity::Minor,
            _ => Severity::Info,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub rule: String,
    pub severity: Severity,
    /// As the report names it (made repository-relative by the caller).
    pub file: String,
    pub line: Option<u32>,
    pub message: String,
    pub fingerprint: String,
    /// Whether the fingerprint is ours (the tool gave none): it is then
    /// recomputed from the repository path, which does not change between runs.
    #[serde(skip)]
    pub own_fingerprint: bool,
}

impl Issue {
    /// Moves the issue to its repository path.
    pub fn relocate(&mut self, path: String) {
        self.file = path;
        if self.own_fingerprint {
            self.fingerprint = fingerprint(&[&self.rule, &self.file, &self.message]);
        }
    }
}

/// Reads SARIF, clippy JSON lines or Code Climate JSON.
pub fn parse(mut input: impl BufRead) -> Result<Vec<Issue>, ParseError> {
    let mut text = String::new();
    input
        .read_to_string(&mut text)
        .map_err(|e| ParseError::new("issues", e.to_string()))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return code_climate(&json(&text, "Code Climate JSON")?);
    }
    if trimmed.starts_with('{') && trimmed.contains("\"runs\"") {
        return sarif(&json(&text, "SARIF")?);
    }
    if trimmed.starts_with('{') {
        return cargo_messages(&text);
    }
    Err(ParseError::new(
        "issues",
        "neither SARIF, cargo/clippy JSON lines nor Code Climate JSON: which tool wrote this?",
    ))
}

fn json(text: &str, format: &'static str) -> Result<Value, ParseError> {
    serde_json::from_str(text).map_err(|e| ParseError::new(format, e.to_string()))
}

fn sarif(doc: &Value) -> Result<Vec<Issue>, ParseError> {
    let runs = doc["runs"]
        .as_array()
        .ok_or_else(|| ParseError::new("SARIF", "`runs` is not a list"))?;
    let mut issues = Vec::new();
    for run in runs {
        let artifacts = run["artifacts"].as_array().cloned().unwrap_or_default();
        let rules = run["tool"]["driver"]["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for result in run["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| reported(r))
        {
            let rule = result["ruleId"]
                .as_str()
                .map(str::to_string)
                .or_else(|| {
                    let index = result["ruleIndex"].as_u64()? as usize;
                    rules.get(index)?["id"].as_str().map(str::to_string)
                })
                .unwrap_or_else(|| "unknown".into());
            let level = result["level"].as_str().unwrap_or("warning");
            let location = &result["locations"][0]["physicalLocation"];
            let artifact = &location["artifactLocation"];
            let uri = artifact["uri"]
                .as_str()
                .or_else(|| {
                    let index = artifact["index"].as_u64()? as usize;
                    artifacts.get(index)?["location"]["uri"].as_str()
                })
                .unwrap_or("");
            let base = artifact["uriBaseId"]
                .as_str()
                .and_then(|id| run["originalUriBaseIds"][id]["uri"].as_str());
            let file = sarif_path(base, uri);
            let message = result["message"]["text"].as_str().unwrap_or("").to_string();
            let given = result["partialFingerprints"]
                .as_object()
                .and_then(|f| f.values().next())
                .and_then(Value::as_str)
                .map(str::to_string);
            let own_fingerprint = given.is_none();
            let fingerprint = given.unwrap_or_else(|| fingerprint(&[&rule, &file, &message]));
            issues.push(Issue {
                severity: Severity::of_level(level),
                line: location["region"]["startLine"].as_u64().map(|l| l as u32),
                rule,
                file,
                message,
                fingerprint,
                own_fingerprint,
            });
        }
    }
    Ok(issues)
}

/// Whether a SARIF result is a finding: not a pass, not inapplicable, not suppressed.
fn reported(result: &Value) -> bool {
    let kind = result["kind"].as_str().unwrap_or("fail");
    let suppressed = result["suppressions"]
        .as_array()
        .is_some_and(|s| !s.is_empty());
    !matches!(kind, "pass" | "notApplicable" | "informational") && !suppressed
}

/// A SARIF URI as a path: `file://` stripped, percent-escapes decoded, the base joined.
fn sarif_path(base: Option<&str>, uri: &str) -> String {
    let decode = |s: &str| {
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'%', Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let strip = |s: &str| s.strip_prefix("file://").unwrap_or(s).to_string();
    let path = decode(&strip(uri));
    match base {
        Some(base) if !path.starts_with('/') => {
            format!("{}/{path}", decode(&strip(base)).trim_end_matches('/'))
        }
        _ => path,
    }
}

/// `cargo … --message-format=json`: diagnostics with a code, at their primary
/// span; the same diagnostic from several targets (lib and its tests) once.
fn cargo_messages(text: &str) -> Result<Vec<Issue>, ParseError> {
    let mut seen = HashSet::new();
    let mut issues = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let doc: Value = serde_json::from_str(line)
            .map_err(|e| ParseError::new("cargo JSON", format!("line {}: {e}", n + 1)))?;
        if doc["reason"] != "compiler-message" {
            continue;
        }
        let message = &doc["message"];
        let Some(rule) = message["code"]["code"].as_str() else {
            continue;
        };
        let Some(span) = message["spans"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["is_primary"] == true))
        else {
            continue;
        };
        let file = span["file_name"].as_str().unwrap_or("").to_string();
        let line_no = span["line_start"].as_u64().map(|l| l as u32);
        let text = message["message"].as_str().unwrap_or("").to_string();
        if !seen.insert((rule.to_string(), file.clone(), line_no, text.clone())) {
            continue;
        }
        issues.push(Issue {
            severity: Severity::of_level(message["level"].as_str().unwrap_or("")),
            fingerprint: fingerprint(&[rule, &file, &text]),
            own_fingerprint: true,
            rule: rule.to_string(),
            file,
            line: line_no,
            message: text,
        });
    }
    Ok(issues)
}

fn code_climate(doc: &Value) -> Result<Vec<Issue>, ParseError> {
    let list = doc
        .as_array()
        .ok_or_else(|| ParseError::new("Code Climate JSON", "not a list"))?;
    let mut issues = Vec::new();
    for item in list {
        let location = &item["location"];
        let line = location["lines"]["begin"]
            .as_u64()
            .or_else(|| location["positions"]["begin"]["line"].as_u64())
            .map(|l| l as u32);
        let rule = item["check_name"].as_str().unwrap_or("unknown").to_string();
        let file = location["path"].as_str().unwrap_or("").to_string();
        let message = item["description"].as_str().unwrap_or("").to_string();
        issues.push(Issue {
            severity: item["severity"]
                .as_str()
                .and_then(Severity::parse)
                .unwrap_or(Severity::Major),
            own_fingerprint: item["fingerprint"].as_str().is_none(),
            fingerprint: item["fingerprint"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| fingerprint(&[&rule, &file, &message])),
            rule,
            file,
            line,
            message,
        });
    }
    Ok(issues)
}

/// A stable fingerprint (FNV-1a, 64 bits) of the parts, line left out.
fn fingerprint(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sarif_with_base_ids_indexes_and_fingerprints() {
        let doc = r#"{"version":"2.1.0","runs":[
          {"tool":{"driver":{"name":"a","rules":[{"id":"R1"}]}},
           "originalUriBaseIds":{"SRC":{"uri":"file:///repo/"}},
           "artifacts":[{"location":{"uri":"src/a%20b.py"}}],
           "results":[
             {"ruleIndex":0,"level":"error","message":{"text":"m"},"locations":[{"physicalLocation":{"artifactLocation":{"index":0,"uriBaseId":"SRC"},"region":{"startLine":3}}}],"partialFingerprints":{"primaryLocationLineHash":"abc"}},
             {"ruleId":"R2","message":{"text":"n"},"locations":[{"physicalLocation":{"artifactLocation":{"uri":"file:///repo/x.py"}}}]}
           ]},
          {"tool":{"driver":{"name":"b"}},"results":[{"ruleId":"R3","level":"note","message":{"text":"o"},"locations":[]}]}
        ]}"#;
        let issues = parse(doc.as_bytes()).expect("parses");
        assert_eq!(issues.len(), 3);
        assert_eq!(
            (
                issues[0].rule.as_str(),
                issues[0].file.as_str(),
                issues[0].line
            ),
            ("R1", "/repo/src/a b.py", Some(3))
        );
        assert_eq!(issues[0].severity, Severity::Critical);
        assert_eq!(issues[0].fingerprint, "abc");
        assert_eq!(
            (issues[1].severity, issues[1].file.as_str()),
            (Severity::Major, "/repo/x.py")
        );
        assert_eq!(issues[2].severity, Severity::Minor);
    }

    #[test]
    fn fingerprints_ignore_lines() {
        assert_eq!(fingerprint(&["r", "f", "m"]), fingerprint(&["r", "f", "m"]));
        assert_ne!(fingerprint(&["r", "fm"]), fingerprint(&["rf", "m"]));
    }
}
