//! Attacks: registry_auth (filled in by the issue-12 work).
