//! Client verbs for the artifact repository: repositories, promotion, garbage collection.

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::client::{Client, Connection};
use super::remote::block_on;

#[derive(Debug, clap::Subcommand)]
pub enum RepoCommand {
    /// Add a repository.
    Add {
        name: String,
        /// oci (hosted images), oci-proxy (pull-through cache) or raw (files).
        #[arg(long, default_value = "oci")]
        kind: String,
        /// ci (tags move; retention applies) or release (tags never move).
        #[arg(long)]
        policy: Option<String>,
        /// Retention: keep the newest N tags of each image.
        #[arg(long)]
        keep_tags: Option<i64>,
        /// Let anyone pull without a token.
        #[arg(long)]
        anonymous_pull: bool,
        /// oci-proxy: the registry to cache (http://HOST:PORT).
        #[arg(long)]
        upstream: Option<String>,
        /// oci-proxy: seconds a cached tag is trusted before it is checked again [default: 300].
        #[arg(long)]
        ttl: Option<i64>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a repository with its manifests, tags and files.
    Rm { name: String },
    /// A repository's images and tags.
    Images {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn repo(conn: &Connection, cmd: RepoCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(conn)?;
    block_on(async move {
        match cmd {
            RepoCommand::Add {
                name,
                kind,
                policy,
                keep_tags,
                anonymous_pull,
                upstream,
                ttl,
            } => {
                let body = json!({
                    "name": name, "kind": kind, "policy": policy, "keep_tags": keep_tags,
                    "anonymous_pull": anonymous_pull, "upstream": upstream, "ttl_seconds": ttl,
                });
                let repo = client.post("/repositories", &body).await?;
                println!("repository {name} added ({})", describe(&repo));
            }
            RepoCommand::List { json } => {
                let repos = client.get("/repositories").await?;
                if json {
                    println!("{repos:#}");
                } else {
                    for r in repos.as_array().into_iter().flatten() {
                        println!(
                            "{:<20} {}",
                            r["name"].as_str().unwrap_or_default(),
                            describe(r)
                        );
                    }
                }
            }
            RepoCommand::Rm { name } => {
                client.delete(&format!("/repositories/{name}")).await?;
                println!("repository {name} removed");
            }
            RepoCommand::Images { name, json } => {
                let out = client.get(&format!("/repositories/{name}/images")).await?;
                if json {
                    println!("{out:#}");
                } else {
                    for image in out["images"].as_array().into_iter().flatten() {
                        for tag in image["tags"].as_array().into_iter().flatten() {
                            println!(
                                "{name}/{}:{}  {}",
                                image["image"].as_str().unwrap_or_default(),
                                tag["tag"].as_str().unwrap_or_default(),
                                tag["digest"].as_str().unwrap_or_default()
                            );
                        }
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn describe(repo: &Value) -> String {
    let mut parts = vec![repo["kind"].as_str().unwrap_or_default().to_string()];
    if repo["kind"] == "oci" {
        parts.push(format!(
            "policy {}",
            repo["policy"].as_str().unwrap_or_default()
        ));
    }
    if let Some(n) = repo["keep_tags"].as_i64() {
        parts.push(format!("keeps {n} tags"));
    }
    if repo["anonymous_pull"] == true {
        parts.push("anonymous pull".into());
    }
    if let Some(up) = repo["upstream"].as_str() {
        parts.push(format!("caches {up}"));
    }
    parts.join(", ")
}

#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// REPOSITORY/IMAGE@sha256:…
    source: String,
    /// The repository to make it available in.
    #[arg(long)]
    to: String,
    #[arg(long)]
    tag: Option<String>,
    /// Why (kept in the promotion history).
    #[arg(long)]
    reason: Option<String>,
}

pub fn promote(conn: &Connection, args: PromoteArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(conn)?;
    block_on(async move {
        let body =
            json!({ "source": args.source, "to": args.to, "tag": args.tag, "reason": args.reason });
        let out = client.post("/promotions", &body).await?;
        let image = out["image"].as_str().unwrap_or_default();
        if out["changed"] == true {
            println!("promoted {} to {image}", args.source);
        } else {
            println!("{image} was already there; nothing changed");
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Report what would be freed without changing anything.
    #[arg(long)]
    dry_run: bool,
    /// Spare blobs touched this recently (`30s`, `10m`, `1h`) [default: 1h].
    #[arg(long)]
    grace: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn gc(conn: &Connection, args: GcArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(conn)?;
    let grace_seconds = args
        .grace
        .as_deref()
        .map(super::remote::humantime_secs)
        .transpose()
        .context("--grace")?;
    block_on(async move {
        let body = json!({ "dry_run": args.dry_run, "grace_seconds": grace_seconds });
        let report = client.post("/registry/gc", &body).await?;
        if args.json {
            println!("{report:#}");
            return Ok(ExitCode::SUCCESS);
        }
        let verb = if args.dry_run { "would free" } else { "freed" };
        println!(
            "{verb} {} blobs ({}); {} tags retired; {} unreferenced blobs still in the grace window; {} abandoned uploads removed",
            report["blobs_freed"],
            human_bytes(report["bytes_freed"].as_u64().unwrap_or(0)),
            report["retired_tags"].as_array().map_or(0, Vec::len),
            report["blobs_in_grace"],
            report["uploads_removed"],
        );
        Ok(ExitCode::SUCCESS)
    })
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
