//! Attacks: releases (issue 12, round 2).
