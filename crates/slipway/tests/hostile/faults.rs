//! Attacks: faults (filled in by the issue-12 work).
