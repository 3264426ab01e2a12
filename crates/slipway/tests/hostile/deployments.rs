//! Attacks: deployments (issue 12, round 2).
