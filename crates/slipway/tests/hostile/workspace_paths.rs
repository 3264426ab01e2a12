//! Attacks: workspace_paths (issue 12, round 2).
