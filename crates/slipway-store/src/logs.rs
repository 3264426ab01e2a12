//! Job logs, stored in chunks as they arrive so nothing is lost when a worker
//! or the server dies, and read back a page of lines at a time. Each line
//! keeps the time it was written (chunks stored before times were kept have
//! none, and read back without).

use sqlx::Row;

use crate::{JobId, Result, Store};

/// Lines of a log from `first_line`, and where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub first_line: i64,
    pub lines: Vec<String>,
    /// When each line was written (milliseconds since the Unix epoch), one
    /// per line; `None` for lines stored before times were kept.
    pub times: Vec<Option<i64>>,
    pub next_line: i64,
}

impl Store {
    /// Appends lines (already masked) as chunk `seq` of the job's log, with
    /// the time each was written (`times` is empty, or one per line; a
    /// worker too old to send them sends none). Appending the same chunk
    /// twice (a retried upload) keeps the first.
    pub async fn append_log(
        &self,
        job: JobId,
        seq: i64,
        lines: &[String],
        times: &[i64],
    ) -> Result<()> {
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
            let times = (times.len() == lines.len()).then(|| encode_times(times));
            sqlx::query("INSERT INTO log_chunks (job_id, seq, first_line, lines, text, times) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(job.0)
                .bind(seq)
                .bind(first)
                .bind(i64::try_from(lines.len()).unwrap_or(i64::MAX))
                .bind(lines.join("\n"))
                .bind(times)
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
            "SELECT first_line, text, times FROM log_chunks WHERE job_id = $1 AND first_line + lines > $2 AND first_line < $3 ORDER BY first_line",
        )
        .bind(job.0)
        .bind(from)
        .bind(from + limit)
        .fetch_all(&self.pool)
        .await?;
        let (mut lines, mut times) = (Vec::new(), Vec::new());
        for row in &rows {
            let first: i64 = row.try_get("first_line")?;
            let text: String = row.try_get("text")?;
            let stamps: Option<String> = row.try_get("times")?;
            let skip = usize::try_from((from - first).max(0)).unwrap_or(0);
            let chunk: Vec<&str> = text.split('\n').collect();
            let stamps = stamps
                .and_then(|s| decode_times(&s))
                .filter(|t| t.len() == chunk.len());
            for (i, line) in chunk.iter().enumerate().skip(skip) {
                lines.push((*line).to_string());
                times.push(stamps.as_ref().map(|t| t[i]));
            }
        }
        let keep = usize::try_from(limit).unwrap_or(0);
        lines.truncate(keep);
        times.truncate(keep);
        let next_line = from + i64::try_from(lines.len()).unwrap_or(0);
        Ok(LogPage {
            first_line: from,
            lines,
            times,
            next_line,
        })
    }
}

/// A chunk's line times as stored: the first absolute, then each one's
/// distance from the line before (a few characters a line where absolute
/// times would take fourteen).
fn encode_times(times: &[i64]) -> String {
    let mut out = String::with_capacity(times.len() * 3 + 13);
    let mut previous = None;
    for t in times {
        if previous.is_some() {
            out.push(',');
        }
        // Saturating: a sum too large for i64 reads back as no times.
        let value = previous.map_or(*t, |p| t.saturating_sub(p));
        out.push_str(&value.to_string());
        previous = Some(*t);
    }
    out
}

/// The times [`encode_times`] wrote; `None` if the text is not such a list.
fn decode_times(text: &str) -> Option<Vec<i64>> {
    let mut out = Vec::new();
    let mut previous: Option<i64> = None;
    for part in text.split(',') {
        let value: i64 = part.parse().ok()?;
        let at = previous.map_or(Some(value), |p| p.checked_add(value))?;
        out.push(at);
        previous = Some(at);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_survive_their_compact_form() {
        let times = [
            1_712_345_678_901,
            1_712_345_678_901,
            1_712_345_679_000,
            1_712_345_678_990,
        ];
        let text = encode_times(&times);
        assert_eq!(text, "1712345678901,0,99,-10");
        assert_eq!(decode_times(&text).as_deref(), Some(&times[..]));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        // Whatever a worker sends is stored without a panic.
        // (They read back wrong, or as no times: the agent API clamps them first.)
        let text = encode_times(&[i64::MIN, i64::MAX, i64::MIN]);
        assert!(!text.is_empty());
        let _ = decode_times(&text);
        let times = [0, i64::MAX];
        assert_eq!(
            decode_times(&encode_times(&times)).as_deref(),
            Some(&times[..])
        );
    }

    #[test]
    fn a_damaged_time_list_reads_as_no_times() {
        assert_eq!(decode_times("12,x,3"), None);
        assert_eq!(decode_times(""), None);
    }
}
