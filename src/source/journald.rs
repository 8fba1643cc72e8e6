//! Reads the systemd journal through `journalctl --follow --output=json`, run as a child process.
//!
//! Each entry becomes one syslog-style line that the parser understands, with the journal's own
//! time: `2026-12-04T10:00:00.123456+00:00 HOST PROGRAM[PID]: MESSAGE` (the time in UTC from
//! `__REALTIME_TIMESTAMP`; `SYSLOG_IDENTIFIER` or else `_COMM` as the program; `SYSLOG_PID` or
//! else `_PID`). A `MESSAGE` that is not UTF-8 (journalctl writes it as an array of bytes) is
//! passed on as its bytes; line breaks inside a message become spaces, because a line is one
//! record. The entry's `__CURSOR` is its position, and a restart resumes with
//! `--after-cursor`. Running `journalctl` rather than linking libsystemd keeps the build free of
//! C libraries and follows whatever journal format the host's systemd writes.
//!
//! This module turns entries into raw lines only: it never parses the message.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use super::config::JournaldConfig;
use super::position::{JournalCursor, Position};
use super::Line;

/// The program run, looked up in `PATH`.
pub const JOURNALCTL: &str = "journalctl";

/// The fields asked for: the line needs no others (the cursor and time always come).
const FIELDS: &str = "MESSAGE,_HOSTNAME,SYSLOG_IDENTIFIER,_COMM,SYSLOG_PID,_PID";

/// A restart of `journalctl` sooner than this after the last one waits for it first.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// Why the journal could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JournaldError {
    /// `journalctl` could not be started.
    #[error("cannot start {JOURNALCTL}: {0} (is systemd's journalctl installed and in PATH?)")]
    Spawn(#[source] std::io::Error),
    /// Its output could not be read.
    #[error("cannot read {JOURNALCTL}'s output: {0}")]
    Read(#[source] std::io::Error),
    /// It stopped; the next call to [`JournaldSource::next_line`] starts it again after the last
    /// entry read.
    #[error("{JOURNALCTL} exited ({status}){}", last_words(.stderr))]
    Exited {
        /// How it ended.
        status: ExitStatus,
        /// The last thing it wrote on its standard error.
        stderr: String,
    },
}

fn last_words(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// A followed journal.
pub struct JournaldSource {
    config: JournaldConfig,
    /// The last entry handed out (or the starting cursor): where a restart resumes.
    cursor: Option<JournalCursor>,
    running: Option<Running>,
    started: Option<Instant>,
    buf: Vec<u8>,
}

/// One `journalctl` child.
struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// The last line of its standard error, kept by a task that logs it all.
    stderr: Arc<Mutex<String>>,
}

impl JournaldSource {
    /// Starts reading the journal part `config` names: after `after` when given (a cursor saved
    /// from an earlier run), else from the oldest entry. Must be called within a tokio runtime.
    pub fn spawn(
        config: &JournaldConfig,
        after: Option<JournalCursor>,
    ) -> Result<JournaldSource, JournaldError> {
        let mut source = JournaldSource {
            config: config.clone(),
            cursor: after,
            running: None,
            started: None,
            buf: Vec::with_capacity(4096),
        };
        source.start()?;
        Ok(source)
    }

    /// The arguments given to `journalctl`.
    pub fn arguments(config: &JournaldConfig, after: Option<&JournalCursor>) -> Vec<String> {
        let mut args: Vec<String> = [
            "--follow",
            "--output=json",
            "--all",
            "--no-pager",
            "--quiet",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--output-fields={FIELDS}"));
        match after {
            Some(c) => args.push(format!("--after-cursor={}", c.0)),
            None => args.push("--no-tail".into()),
        }
        if let Some(dir) = &config.directory {
            args.push(format!("--directory={}", dir.display()));
        }
        for unit in &config.units {
            args.push(format!("--unit={unit}"));
        }
        args
    }

    fn start(&mut self) -> Result<(), JournaldError> {
        let args = Self::arguments(&self.config, self.cursor.as_ref());
        let mut child = Command::new(JOURNALCTL)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(JournaldError::Spawn)?;
        let stdout = child.stdout.take().ok_or_else(|| {
            JournaldError::Spawn(std::io::Error::other("no pipe to its standard output"))
        })?;
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            tokio::spawn(log_stderr(pipe, Arc::clone(&stderr)));
        }
        self.running = Some(Running {
            child,
            stdout: BufReader::with_capacity(1 << 16, stdout),
            stderr,
        });
        self.started = Some(Instant::now());
        Ok(())
    }

    /// The next entry as a line, with its cursor as the position. Waits for new entries. When
    /// `journalctl` stops, returns [`JournaldError::Exited`] once; the next call starts it
    /// again after the last entry handed out.
    pub async fn next_line(&mut self) -> Result<Line, JournaldError> {
        loop {
            let running = match self.running.as_mut() {
                Some(r) => r,
                None => {
                    if let Some(wait) = self
                        .started
                        .and_then(|s| RESTART_PAUSE.checked_sub(s.elapsed()))
                    {
                        tokio::time::sleep(wait).await;
                    }
                    self.start()?;
                    continue;
                }
            };
            self.buf.clear();
            let n = running
                .stdout
                .read_until(b'\n', &mut self.buf)
                .await
                .map_err(JournaldError::Read)?;
            if n == 0 {
                return Err(self.exited().await);
            }
            match serde_json::from_slice::<Entry>(&self.buf) {
                Ok(entry) => {
                    let cursor = JournalCursor(entry.cursor.clone());
                    self.cursor = Some(cursor.clone());
                    if let Some(bytes) = entry.line() {
                        return Ok(Line {
                            bytes,
                            position: Position::Journal(cursor),
                        });
                    }
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    output = %String::from_utf8_lossy(&self.buf).trim_end(),
                    "skipping output of {JOURNALCTL} that is not a JSON entry"
                ),
            }
        }
    }

    async fn exited(&mut self) -> JournaldError {
        let Some(mut running) = self.running.take() else {
            return JournaldError::Read(std::io::Error::other("journalctl is not running"));
        };
        match running.child.wait().await {
            Ok(status) => {
                // Let the stderr task catch the last words.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let stderr = running.stderr.lock().map(|s| s.clone()).unwrap_or_default();
                JournaldError::Exited { status, stderr }
            }
            Err(e) => JournaldError::Read(e),
        }
    }
}

async fn log_stderr(pipe: tokio::process::ChildStderr, last: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::warn!("{JOURNALCTL}: {line}");
        if let Ok(mut l) = last.lock() {
            *l = line;
        }
    }
}

/// The fields of an entry a line is made of.
#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "__CURSOR")]
    cursor: String,
    #[serde(rename = "__REALTIME_TIMESTAMP")]
    realtime: Option<Field>,
    #[serde(rename = "_HOSTNAME")]
    hostname: Option<Field>,
    #[serde(rename = "SYSLOG_IDENTIFIER")]
    identifier: Option<Field>,
    #[serde(rename = "_COMM")]
    comm: Option<Field>,
    #[serde(rename = "SYSLOG_PID")]
    syslog_pid: Option<Field>,
    #[serde(rename = "_PID")]
    pid: Option<Field>,
    #[serde(rename = "MESSAGE")]
    message: Option<Field>,
}

/// A field's value as journalctl writes it in JSON.
#[derive(Deserialize)]
#[serde(untagged)]
enum Field {
    /// Printable UTF-8.
    Text(String),
    /// Anything else, as its bytes.
    Bytes(Vec<u8>),
    /// A field the entry holds several times.
    Many(Vec<Field>),
    /// Too large to show (only without `--all`).
    Unknown(serde::de::IgnoredAny),
}

impl Field {
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Field::Text(s) => Some(s.as_bytes()),
            Field::Bytes(b) => Some(b),
            Field::Many(all) => all.iter().find_map(Field::bytes),
            Field::Unknown(_) => None,
        }
    }
}

fn field(f: &Option<Field>) -> Option<&[u8]> {
    f.as_ref().and_then(Field::bytes)
}

impl Entry {
    /// The syslog-style line, or `None` for an entry without a message.
    fn line(&self) -> Option<Vec<u8>> {
        let message = field(&self.message)?;
        let mut line = Vec::with_capacity(message.len() + 96);
        if let Some(stamp) = field(&self.realtime).and_then(rfc3339) {
            line.extend_from_slice(stamp.as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(field(&self.hostname).unwrap_or(b"localhost"));
        line.push(b' ');
        let program = field(&self.identifier)
            .or(field(&self.comm))
            .unwrap_or(b"unknown");
        line.extend_from_slice(program);
        if let Some(pid) = field(&self.syslog_pid).or(field(&self.pid)) {
            line.push(b'[');
            line.extend_from_slice(pid);
            line.push(b']');
        }
        line.extend_from_slice(b": ");
        let message = message.trim_ascii_end();
        line.extend(message.iter().map(|&b| match b {
            b'\n' | b'\r' => b' ',
            b => b,
        }));
        Some(line)
    }
}

/// `__REALTIME_TIMESTAMP` (microseconds since the epoch) as RFC 3339 in UTC.
fn rfc3339(micros: &[u8]) -> Option<String> {
    let micros: i64 = std::str::from_utf8(micros).ok()?.parse().ok()?;
    let ts = jiff::Timestamp::from_microsecond(micros).ok()?;
    Some(ts.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(json: &str) -> Option<String> {
        let entry: Entry = serde_json::from_str(json).unwrap();
        entry
            .line()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
    }

    #[test]
    fn an_entry_becomes_a_line_with_the_journals_time() {
        assert_eq!(
            line(r#"{"__CURSOR":"s=1","__REALTIME_TIMESTAMP":"1796378401000123","_HOSTNAME":"mx1","SYSLOG_IDENTIFIER":"postfix/smtpd","_PID":"123","MESSAGE":"connect from x[192.0.2.1]"}"#).unwrap(),
            "2026-12-04T10:00:01.000123+00:00 mx1 postfix/smtpd[123]: connect from x[192.0.2.1]"
        );
    }

    #[test]
    fn byte_messages_and_missing_fields_are_handled() {
        let entry: Entry = serde_json::from_str(
            r#"{"__CURSOR":"s=1","_COMM":"exim4","MESSAGE":[98,97,100,32,255,10,120,10]}"#,
        )
        .unwrap();
        assert_eq!(entry.line().unwrap(), b"localhost exim4: bad \xff x");
        assert_eq!(line(r#"{"__CURSOR":"s=2","_COMM":"x"}"#), None);
        assert_eq!(line(r#"{"__CURSOR":"s=3","MESSAGE":null}"#), None);
        assert_eq!(
            line(r#"{"__CURSOR":"s=4","SYSLOG_IDENTIFIER":["a","b"],"SYSLOG_PID":"7","_PID":"8","MESSAGE":"m"}"#)
                .unwrap(),
            "localhost a[7]: m"
        );
    }

    #[test]
    fn arguments_resume_after_the_cursor_and_filter_units() {
        let config = JournaldConfig {
            units: vec!["postfix@-.service".into()],
            directory: Some("/tmp/j".into()),
        };
        let args = JournaldSource::arguments(&config, Some(&JournalCursor("s=abc".into())));
        assert!(
            args.contains(&"--after-cursor=s=abc".to_string()),
            "{args:?}"
        );
        assert!(args.contains(&"--unit=postfix@-.service".to_string()));
        assert!(args.contains(&"--directory=/tmp/j".to_string()));
        assert!(JournaldSource::arguments(&config, None).contains(&"--no-tail".to_string()));
    }
}
