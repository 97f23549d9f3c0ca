//! A stand-in mail transport: every email "sent" is appended as one JSON
//! line to a log file, so you can see what the application would have sent.
//! Swap it for a real SMTP or API client when you need one; jobs reach it
//! through Hopper's shared state (`ctx.state::<Mailer>()`).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// One email as written to the mail log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentEmail {
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The text body.
    pub body: String,
    /// When it was written to the log.
    pub sent_at: DateTime<Utc>,
}

/// Appends sent emails to a file, one JSON object per line.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let mailer = app::mailer::Mailer::new(dir.path().join("mail.log"));
/// mailer.send("ada@example.com", "Hi", "Hello!").await.unwrap();
/// let sent = mailer.read_all().await.unwrap();
/// assert_eq!(sent[0].to, "ada@example.com");
/// # });
/// ```
#[derive(Debug)]
pub struct Mailer {
    path: PathBuf,
    /// Serialises appends so concurrent workers never interleave lines.
    write: Mutex<()>,
}

impl Mailer {
    /// A mailer writing to `path` (created, with its folder, on first send).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            write: Mutex::new(()),
        }
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// "Sends" an email: appends it to the log and returns what was written.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> std::io::Result<SentEmail> {
        let email = SentEmail {
            to: to.to_owned(),
            subject: subject.to_owned(),
            body: body.to_owned(),
            sent_at: Utc::now(),
        };
        let mut line = serde_json::to_vec(&email)?;
        line.push(b'\n');

        let _guard = self.write.lock().await;
        if let Some(folder) = self.path.parent() {
            if !folder.as_os_str().is_empty() {
                tokio::fs::create_dir_all(folder).await?;
            }
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        file.write_all(&line).await?;
        file.flush().await?;
        Ok(email)
    }

    /// Every email in the log, oldest first (none if the file does not exist yet).
    pub async fn read_all(&self) -> std::io::Result<Vec<SentEmail>> {
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).map_err(std::io::Error::from))
            .collect()
    }
}
