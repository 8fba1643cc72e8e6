//! Framing on one control connection: bounded request lines in, reply lines out.
//!
//! Owns the size bound: a request line longer than the limit is never held in memory beyond
//! the limit. It never interprets a request (that is [`super::server`]).

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use super::protocol::{ControlError, Reply};

/// What one read from the connection gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A request line, without its newline.
    Line(Vec<u8>),
    /// The peer closed the connection.
    Eof,
    /// The line was longer than the limit; the connection must be closed, since the rest of
    /// the line is still unread.
    TooLong,
}

/// One control connection.
#[derive(Debug)]
pub struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    max_line: usize,
    line: Vec<u8>,
}

impl Connection {
    /// Wraps a stream; request lines may be up to `max_line` bytes, the newline included.
    pub fn new(stream: UnixStream, max_line: usize) -> Self {
        let (r, w) = stream.into_split();
        Connection {
            reader: BufReader::new(r),
            writer: w,
            max_line,
            line: Vec::new(),
        }
    }

    /// Reads the next line, holding at most `max_line` bytes of it.
    pub async fn read_frame(&mut self) -> io::Result<Frame> {
        self.line.clear();
        let limit = u64::try_from(self.max_line).unwrap_or(u64::MAX);
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.line)
            .await?;
        if n == 0 {
            return Ok(Frame::Eof);
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
            return Ok(Frame::Line(std::mem::take(&mut self.line)));
        }
        if n >= self.max_line {
            return Ok(Frame::TooLong);
        }
        // The peer closed after a last line without its newline: still a request.
        Ok(Frame::Line(std::mem::take(&mut self.line)))
    }

    /// Writes one reply line.
    pub async fn write_reply(&mut self, reply: &Reply) -> io::Result<()> {
        let mut bytes = encode_reply(reply);
        bytes.push(b'\n');
        self.writer.write_all(&bytes).await?;
        self.writer.flush().await
    }
}

/// A reply as JSON bytes (no newline). Serialising these types cannot fail; should it ever,
/// the peer still gets a well-formed `internal` error rather than nothing.
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    serde_json::to_vec(reply).unwrap_or_else(|e| {
        let fallback = Reply::Error(ControlError::internal(format!(
            "the daemon could not encode its reply: {e}"
        )));
        serde_json::to_vec(&fallback).unwrap_or_default()
    })
}
