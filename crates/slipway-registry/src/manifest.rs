//! Manifests as the registry needs to understand them: which kind, what they
//! reference, and what the referrers API reports about them.

use serde_json::Value;

use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every manifest type the registry stores.
pub const MANIFEST_TYPES: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// Manifests larger than this are refused (413), as in the spec's suggestion.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// What a pushed manifest says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub media_type: String,
    /// Config and layers (for an image manifest).
    pub blobs: Vec<Digest>,
    /// Child manifests (for an index or list).
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
    /// `artifactType`, or for an image manifest without one, its config's media type.
    pub artifact_type: Option<String>,
    /// `annotations` as JSON text.
    pub annotations: Option<String>,
}

/// Parses a manifest sent with `content_type`. The error says what is wrong, for `MANIFEST_INVALID`.
pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Parsed, String> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    let declared = doc.get("mediaType").and_then(Value::as_str);
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| MANIFEST_TYPES.contains(c));
    let media_type = match (header, declared) {
        (Some(h), Some(d)) if h != d => {
            return Err(format!(
                "Content-Type is {h} but the manifest's mediaType is {d}; send them alike"
            ));
        }
        (Some(h), _) => h,
        (None, Some(d)) if MANIFEST_TYPES.contains(&d) => d,
        _ => {
            return Err(format!(
                "unsupported manifest type {}; send one of {}",
                content_type.or(declared).unwrap_or("(none)"),
                MANIFEST_TYPES.join(", ")
            ));
        }
    };
    let is_index = media_type == OCI_INDEX || media_type == DOCKER_LIST;
    let mut parsed = Parsed {
        media_type: media_type.to_string(),
        blobs: Vec::new(),
        children: Vec::new(),
        subject: doc.get("subject").map(descriptor_digest).transpose()?,
        artifact_type: doc
            .get("artifactType")
            .and_then(Value::as_str)
            .map(str::to_string),
        annotations: doc.get("annotations").map(Value::to_string),
    };
    if is_index {
        for child in array(&doc, "manifests")? {
            parsed.children.push(descriptor_digest(child)?);
        }
    } else {
        let config = doc
            .get("config")
            .ok_or("an image manifest needs a `config` descriptor")?;
        parsed.blobs.push(descriptor_digest(config)?);
        if parsed.artifact_type.is_none() {
            parsed.artifact_type = config
                .get("mediaType")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        for layer in array(&doc, "layers")? {
            // Foreign layers live elsewhere (their `urls`); the registry never holds them.
            let kind = layer.get("mediaType").and_then(Value::as_str).unwrap_or("");
            if !(kind.contains("foreign") || kind.contains("nondistributable")) {
                parsed.blobs.push(descriptor_digest(layer)?);
            }
        }
    }
    Ok(parsed)
}

fn array<'a>(doc: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    match doc.get(key) {
        Some(Value::Array(items)) => Ok(items),
        None => Err(format!("the manifest has no `{key}` list")),
        Some(_) => Err(format!("`{key}` must be a list of descriptors")),
    }
}

fn descriptor_digest(descriptor: &Value) -> Result<Digest, String> {
    let text = descriptor
        .get("digest")
        .and_then(Value::as_str)
        .ok_or("a descriptor has no `digest`")?;
    Digest::parse(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn reads_an_image_manifest_with_a_subject() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.example.sbom","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":3}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":9}},"annotations":{{"a":"b"}}}}"#,
            d('a'),
            d('b'),
            d('c')
        );
        let parsed = parse(Some(OCI_MANIFEST), body.as_bytes()).expect("valid");
        assert_eq!(parsed.blobs.len(), 2);
        assert_eq!(parsed.subject.map(|s| s.to_string()), Some(d('c')));
        assert_eq!(
            parsed.artifact_type.as_deref(),
            Some("application/vnd.example.sbom")
        );
        assert_eq!(parsed.annotations.as_deref(), Some(r#"{"a":"b"}"#));
    }

    #[test]
    fn reads_a_docker_list_by_its_declared_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{{"digest":"{}","size":1}}]}}"#,
            d('e')
        );
        let parsed = parse(None, body.as_bytes()).expect("valid");
        assert_eq!(parsed.media_type, DOCKER_LIST);
        assert_eq!(parsed.children.len(), 1);
    }

    #[test]
    fn refuses_what_it_cannot_store_and_says_why() {
        assert!(
            parse(Some(OCI_MANIFEST), b"nope")
                .expect_err("refused")
                .contains("not JSON")
        );
        let mismatch = format!(r#"{{"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        assert!(
            parse(Some(OCI_MANIFEST), mismatch.as_bytes())
                .expect_err("refused")
                .contains("send them alike")
        );
        assert!(
            parse(Some("text/plain"), b"{}")
                .expect_err("refused")
                .contains("unsupported")
        );
        let bad = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","config":{{"digest":"md5:x"}},"layers":[]}}"#
        );
        assert!(
            parse(None, bad.as_bytes())
                .expect_err("refused")
                .contains("md5:x")
        );
    }
}
