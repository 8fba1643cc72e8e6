//! Opens a log for reading: a file, a gzip-compressed file (told by its magic bytes, so rotated
//! `mail.log.2.gz` files read transparently), or standard input for `-`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use flate2::bufread::MultiGzDecoder;

/// A log that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct OpenError {
    /// The path as given.
    pub path: PathBuf,
    /// Why.
    pub source: io::Error,
}

/// An opened log.
pub struct Input {
    /// The bytes (decompressed when the file was gzip).
    pub reader: Box<dyn Read + Send>,
    /// When the file was last written (none for standard input).
    pub modified: Option<SystemTime>,
}

/// Opens `path`; `-` is standard input.
pub fn open(path: &Path) -> Result<Input, OpenError> {
    let fail = |source| OpenError {
        path: path.to_owned(),
        source,
    };
    if path == Path::new("-") {
        return wrap(Box::new(io::stdin()), None).map_err(fail);
    }
    let file = File::open(path).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if meta.is_dir() {
        return Err(fail(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a directory",
        )));
    }
    wrap(Box::new(file), meta.modified().ok()).map_err(fail)
}

fn wrap(inner: Box<dyn Read + Send>, modified: Option<SystemTime>) -> io::Result<Input> {
    let mut buffered = BufReader::with_capacity(1 << 16, inner);
    let head = buffered.fill_buf()?;
    let reader: Box<dyn Read + Send> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    Ok(Input { reader, modified })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    #[test]
    fn gzip_is_read_transparently_whatever_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mail.log.1");
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello\nworld\n").unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let mut text = String::new();
        open(&path)
            .unwrap()
            .reader
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello\nworld\n");
    }

    #[test]
    fn a_missing_file_names_itself() {
        let err = open(Path::new("/nonexistent/mail.log")).err().unwrap();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/mail.log: "),
            "{err}"
        );
    }
}
