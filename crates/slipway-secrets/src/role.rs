//! Roles: what a user or token may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::SecretsError;

/// A role. People's roles are ordered by power (`Admin >= Developer >= Viewer`);
/// `Agent` stands apart: it may only take and run jobs, and only an admin may
/// also do what it does.
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
    /// A remote agent: claims jobs (with their secrets), reports on them. Nothing else.
    Agent,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Self; 4] = [Self::Viewer, Self::Developer, Self::Admin, Self::Agent];

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
            Self::Agent => "agent",
        }
    }

    /// Whether this role may do what needs `required`.
    #[must_use]
    pub fn allows(self, required: Self) -> bool {
        match (self, required) {
            (Self::Admin, _) => true,
            (Self::Agent, required) => required == Self::Agent,
            (_, Self::Agent) => false,
            (me, required) => me >= required,
        }
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
        assert!(Role::Admin.allows(Role::Agent) && Role::Agent.allows(Role::Agent));
        assert!(
            !Role::Developer.allows(Role::Agent),
            "a developer cannot claim jobs and their secrets"
        );
        assert!(
            !Role::Agent.allows(Role::Viewer),
            "an agent reads nothing else"
        );
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
