//! People: web UI users, their sessions, and the API tokens that belong to
//! them. Approvals, four-eyes and "who asked" are about a person, whichever
//! of their tokens (or their browser session) they use.

use sqlx::Row;

use crate::{Result, Store, StoreError, now_ms};

/// A user as the UI needs them (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
}

/// A live session: whose, and the token its forms carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub csrf: String,
}

impl Store {
    /// Adds a user, or with `replace` sets a new password, role and identity.
    /// An email names one person: a user whose email another user already
    /// has (in any letter case) is refused, since approvals count people.
    pub async fn put_user(&self, user: &User, password_hash: &str, replace: bool) -> Result<()> {
        if let Some(email) = user.email.as_deref()
            && let Some(other) = self.email_holder(email, &user.name).await?
        {
            return Err(StoreError::Conflict(format!(
                "email {email} is user `{other}`'s already, and one email is one person (approvals count people): \
                 give `{other}` a password and role with `slipway user add {other} --replace`, and their tokens with \
                 `slipway token create NAME --user {other}`"
            )));
        }
        let groups = crate::json_of(&user.groups);
        let sql = if replace {
            "INSERT INTO users (name, password_hash, role, email, groups_json, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role, email = excluded.email, groups_json = excluded.groups_json"
        } else {
            "INSERT INTO users (name, password_hash, role, email, groups_json, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
        };
        sqlx::query(sql)
            .bind(&user.name)
            .bind(password_hash)
            .bind(&user.role)
            .bind(&user.email)
            .bind(groups)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    StoreError::Conflict(format!(
                        "user `{}` exists already; add --replace to change it",
                        user.name
                    ))
                }
                e => e.into(),
            })?;
        if replace {
            // A new password (or role) ends the sessions made with the old one.
            sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                .bind(&user.name)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The user and their password hash, for a login.
    pub async fn user_for_login(&self, name: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query(
            "SELECT name, role, email, groups_json, password_hash FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((user(&row)?, row.try_get("password_hash")?)))
    }

    /// Stores a new session (and drops those that have expired).
    pub async fn create_session(
        &self,
        token_hash: &str,
        user: &str,
        csrf: &str,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        sqlx::query("INSERT INTO sessions (token_hash, user_name, csrf, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(token_hash)
            .bind(user)
            .bind(csrf)
            .bind(expires_at)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The session with this cookie hash, if it has not expired.
    pub async fn session(&self, token_hash: &str) -> Result<Option<Session>> {
        let row = sqlx::query("SELECT u.name, u.role, u.email, u.groups_json, s.csrf FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.token_hash = $1 AND s.expires_at > $2")
            .bind(token_hash)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Session {
                user: user(&r)?,
                csrf: r.try_get("csrf")?,
            })
        })
        .transpose()
    }

    pub async fn end_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1 OR expires_at <= $2")
            .bind(token_hash)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// What a password hash is for a person made for their tokens: no argon2
/// hash parses as it, so nobody logs in as them until an admin sets one.
pub const NO_PASSWORD: &str = "!";

impl Store {
    pub async fn user(&self, name: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT name, role, email, groups_json FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user).transpose()
    }

    /// The person with this email (case-insensitive), the oldest if several.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT name, role, email, groups_json FROM users WHERE lower(email) = lower($1) ORDER BY created_at, name LIMIT 1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user).transpose()
    }

    /// The user other than `name` with this email (in any letter case).
    async fn email_holder(&self, email: &str, name: &str) -> Result<Option<String>> {
        if email.trim().is_empty() {
            return Ok(None);
        }
        let row = sqlx::query("SELECT name FROM users WHERE lower(email) = lower($1) AND name <> $2 ORDER BY created_at, name LIMIT 1")
            .bind(email.trim())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("name")?),
            None => None,
        })
    }

    /// Makes a token belong to a person.
    pub async fn set_token_owner(&self, token_hash: &str, user_name: &str) -> Result<()> {
        sqlx::query("UPDATE tokens SET user_name = $1 WHERE hash = $2")
            .bind(user_name)
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The person a token belongs to; `None` for a machine's token.
    pub async fn token_owner(&self, token_hash: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT u.name, u.role, u.email, u.groups_json FROM tokens t JOIN users u ON u.name = t.user_name WHERE t.hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user).transpose()
    }
}

fn user(row: &sqlx::any::AnyRow) -> Result<User> {
    let groups: String = row.try_get("groups_json")?;
    Ok(User {
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        email: row.try_get("email")?,
        groups: crate::strings_of(&groups)?,
    })
}
