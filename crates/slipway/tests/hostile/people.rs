//! Attacks: people (issue 12, round 2).
