//! Job logs, stored in chunks as they arrive so nothing is lost when a worker
//! or the server dies, and read back a page of lines at a time.

use sqlx::Row;

use crate::{JobId, Result, Store};

/// Lines of a log from `first_line`, and where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub first_line: i64,
    pub lines: Vec<String>,
    pub next_line: i64,
}

impl Store {
    /// Appends lines (already masked) as chunk `seq` of the job's log. Appending
    /// the same chunk twice (a retried upload) keeps the first.
    pub async fn append_log(&self, job: JobId, seq: i64, lines: &[String]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT 1 FROM log_chunks WHERE job_id = $1 AND seq = $2")
            .bind(job.0)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            let first: i64 = sqlx::query("SELECT COALESCE(MAX(first_line + lines), 0) AS next FROM log_chunks WHERE job_id = $1")
                .bind(job.0)
                .fetch_one(&mut *tx)
                .await?
                .try_get("next")?;
            sqlx::query("INSERT INTO log_chunks (job_id, seq, first_line, lines, text) VALUES ($1, $2, $3, $4, $5)")
                .bind(job.0)
                .bind(seq)
                .bind(first)
                .bind(i64::try_from(lines.len()).unwrap_or(i64::MAX))
                .bind(lines.join("\n"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many lines a job's log has (without reading them).
    pub async fn log_length(&self, job: JobId) -> Result<i64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(MAX(first_line + lines), 0) AS BIGINT) AS n FROM log_chunks WHERE job_id = $1",
        )
        .bind(job.0)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// At most `limit` lines from line `from` (0-based), reading only the chunks that hold them.
    pub async fn read_log(&self, job: JobId, from: i64, limit: i64) -> Result<LogPage> {
        let rows = sqlx::query(
            "SELECT first_line, text FROM log_chunks WHERE job_id = $1 AND first_line + lines > $2 AND first_line < $3 ORDER BY first_line",
        )
        .bind(job.0)
        .bind(from)
        .bind(from + limit)
        .fetch_all(&self.pool)
        .await?;
        let mut lines = Vec::new();
        for row in &rows {
            let first: i64 = row.try_get("first_line")?;
            let text: String = row.try_get("text")?;
            let skip = usize::try_from((from - first).max(0)).unwrap_or(0);
            lines.extend(text.split('\n').skip(skip).map(str::to_string));
        }
        lines.truncate(usize::try_from(limit).unwrap_or(0));
        let next_line = from + i64::try_from(lines.len()).unwrap_or(0);
        Ok(LogPage {
            first_line: from,
            lines,
            next_line,
        })
    }
}
