//! Roles: what a user or token may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::SecretsError;

/// A role, ordered by power: `Admin >= Developer >= Viewer`.
///
/// Serialized as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads projects, pipelines and logs.
    Viewer,
    /// A viewer who may also run pipelines and manage secrets.
    Developer,
    /// May do everything, including managing users and tokens.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Self; 3] = [Self::Viewer, Self::Developer, Self::Admin];

    /// Parses a role name (`viewer`, `developer`, `admin`; ASCII case ignored).
    ///
    /// # Errors
    /// [`SecretsError::UnknownRole`] for any other name.
    pub fn parse(name: &str) -> Result<Self, SecretsError> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| SecretsError::UnknownRole(name.to_owned()))
    }

    /// The lowercase name of the role.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Developer => "developer",
            Self::Admin => "admin",
        }
    }

    /// Whether this role may do what needs `required`.
    #[must_use]
    pub fn allows(self, required: Self) -> bool {
        self >= required
    }
}

impl FromStr for Role {
    type Err = SecretsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_and_allows() {
        assert!(Role::Admin > Role::Developer && Role::Developer > Role::Viewer);
        assert!(Role::Admin.allows(Role::Viewer));
        assert!(Role::Developer.allows(Role::Developer));
        assert!(!Role::Viewer.allows(Role::Developer));
        assert!(!Role::Developer.allows(Role::Admin));
    }

    #[test]
    fn parse_round_trips_and_rejects_unknown() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).expect("parse"), role);
            assert_eq!(role.to_string().parse::<Role>().expect("from_str"), role);
        }
        assert_eq!(Role::parse("Admin").expect("case"), Role::Admin);
        let err = Role::parse("root").expect_err("unknown");
        assert!(
            err.to_string().contains("viewer, developer, admin"),
            "{err}"
        );
    }
}
