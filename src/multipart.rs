//! A streaming `multipart/form-data` reader for `/hash`: feeds the bytes of the part named `file`
//! to a sink as they arrive and holds no more than one chunk plus a delimiter's length (or one
//! part's header block, at most `MAX_HEADER_BYTES`). Every byte is looked at once: each search
//! starts where the previous one stopped, so a body that never brings its boundary costs linear
//! time and constant memory, and the caller's byte count (over the whole body, every part
//! included) ends it.
//!
//! Pure (no I/O): the handler feeds it the request's chunks.

use bytes::{Buf, BytesMut};
use memchr::memmem;

/// Longest header block of one part (bytes).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Longest boundary RFC 2046 allows.
const MAX_BOUNDARY: usize = 70;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("Content-Type has no usable boundary parameter (1 to 70 characters)")]
    NoBoundary,
    #[error("a part's headers are longer than {MAX_HEADER_BYTES} bytes")]
    HeadersTooLarge,
    #[error("a boundary is followed by neither CRLF nor `--`")]
    BadDelimiter,
    #[error("the body ended before the closing boundary")]
    Incomplete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Just after a delimiter: `--` (the end) or CRLF (a part follows).
    AfterDelimiter,
    Headers,
    /// Inside a part's body; `true` when it is the file being read.
    Body(bool),
    /// After the closing delimiter: the epilogue is ignored.
    Done,
}

/// Reads a multipart body chunk by chunk.
pub struct MultipartReader {
    /// `CRLF--boundary`.
    delimiter: Vec<u8>,
    finder: memmem::Finder<'static>,
    state: State,
    /// Unconsumed bytes: the tail that may begin a delimiter, or a header block being read.
    buf: BytesMut,
    /// In `Headers`: bytes of `buf` already searched for the end of the block.
    scanned: usize,
    file_seen: bool,
}

/// The `boundary` parameter of a `multipart/form-data` Content-Type.
pub fn boundary_of(content_type: &str) -> Result<String, MultipartError> {
    for param in content_type.split(';').skip(1) {
        let Some((k, v)) = param.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("boundary") {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if v.is_empty()
                || v.len() > MAX_BOUNDARY
                || !v.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            {
                return Err(MultipartError::NoBoundary);
            }
            return Ok(v.to_owned());
        }
    }
    Err(MultipartError::NoBoundary)
}

impl MultipartReader {
    pub fn new(boundary: &str) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        let finder = memmem::Finder::new(&delimiter).into_owned();
        // The first delimiter may open the body without a CRLF before it: supply one.
        let mut buf = BytesMut::with_capacity(64 * 1024);
        buf.extend_from_slice(b"\r\n");
        MultipartReader {
            delimiter,
            finder,
            state: State::Preamble,
            buf,
            scanned: 0,
            file_seen: false,
        }
    }

    /// Whether a part named `file` was found.
    pub fn file_seen(&self) -> bool {
        self.file_seen
    }

    /// Feed the next chunk; bytes of the `file` part go to `sink`.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        sink: &mut impl FnMut(&[u8]),
    ) -> Result<(), MultipartError> {
        if self.state == State::Done {
            return Ok(());
        }
        self.buf.extend_from_slice(chunk);
        loop {
            match self.state {
                State::Done => {
                    self.buf.clear();
                    return Ok(());
                }
                State::Preamble | State::Body(_) => {
                    let emit = matches!(self.state, State::Body(true));
                    match self.finder.find(&self.buf) {
                        Some(at) => {
                            if emit {
                                sink(&self.buf[..at]);
                            }
                            self.buf.advance(at + self.delimiter.len());
                            self.state = State::AfterDelimiter;
                        }
                        None => {
                            // Keep only what may be the start of a delimiter.
                            let keep = (self.delimiter.len() - 1).min(self.buf.len());
                            let safe = self.buf.len() - keep;
                            if emit {
                                sink(&self.buf[..safe]);
                            }
                            self.buf.advance(safe);
                            return Ok(());
                        }
                    }
                }
                State::AfterDelimiter => {
                    if self.buf.len() < 2 {
                        return Ok(());
                    }
                    match &self.buf[..2] {
                        b"--" => self.state = State::Done,
                        b"\r\n" => {
                            self.buf.advance(2);
                            self.scanned = 0;
                            self.state = State::Headers;
                        }
                        _ => return Err(MultipartError::BadDelimiter),
                    }
                }
                State::Headers => {
                    let end = if self.buf.starts_with(b"\r\n") {
                        Some((0, 2))
                    } else {
                        let from = self.scanned.saturating_sub(3);
                        memmem::find(&self.buf[from..], b"\r\n\r\n")
                            .map(|i| (from + i, from + i + 4))
                    };
                    match end {
                        Some((block_end, consumed)) => {
                            let is_file = !self.file_seen && names_file(&self.buf[..block_end]);
                            self.file_seen |= is_file;
                            self.buf.advance(consumed);
                            self.state = State::Body(is_file);
                        }
                        None => {
                            if self.buf.len() > MAX_HEADER_BYTES {
                                return Err(MultipartError::HeadersTooLarge);
                            }
                            if self.buf.len() == 1 && self.buf[0] == b'\r' {
                                // Could still be an empty header block.
                                self.scanned = 0;
                            } else {
                                self.scanned = self.buf.len();
                            }
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// The body ended: it must have ended with the closing delimiter.
    pub fn finish(&self) -> Result<(), MultipartError> {
        if self.state == State::Done {
            Ok(())
        } else {
            Err(MultipartError::Incomplete)
        }
    }
}

/// Whether a part's header block has `Content-Disposition: form-data; name="file"`.
fn names_file(block: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(block) else {
        return false;
    };
    text.split("\r\n").any(|line| {
        let Some((name, value)) = line.split_once(':') else {
            return false;
        };
        name.trim().eq_ignore_ascii_case("content-disposition")
            && value.split(';').skip(1).any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("name") && {
                        let v = v.trim();
                        v.strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or(v)
                            == "file"
                    }
                })
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = b"preamble text\r\n".to_vec();
        for (name, data) in parts {
            b.extend_from_slice(b"--XyZ\r\n");
            b.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            );
            b.extend_from_slice(data);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--XyZ--\r\nepilogue");
        b
    }

    /// Feed `input` in chunks of `size`: (file bytes, seen, finish result).
    fn read(input: &[u8], size: usize) -> Result<(Vec<u8>, bool), MultipartError> {
        let mut r = MultipartReader::new("XyZ");
        let mut out = Vec::new();
        for chunk in input.chunks(size.max(1)) {
            r.feed(chunk, &mut |d| out.extend_from_slice(d))?;
        }
        r.finish()?;
        Ok((out, r.file_seen()))
    }

    #[test]
    fn reads_the_file_part_whatever_the_chunking() {
        let data: Vec<u8> = (0..5000u32)
            .map(|i| (i % 251) as u8)
            .chain(*b"\r\n--XyNOT\r\r\n-")
            .collect();
        let input = body(&[
            ("other", b"skip me \r\n--Xy"),
            ("file", &data),
            ("file", b"second"),
        ]);
        for size in [1, 2, 3, 5, 7, 64, 1000, input.len()] {
            assert_eq!(
                read(&input, size),
                Ok((data.clone(), true)),
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn no_preamble_empty_headers_and_missing_file() {
        let input = b"--XyZ\r\n\r\nanonymous\r\n--XyZ--";
        assert_eq!(read(input, 3), Ok((Vec::new(), false)));
        let input = b"--XyZ\r\nContent-Disposition: form-data; filename=\"file\"; name=file\r\n\r\nabc\r\n--XyZ--";
        assert_eq!(read(input, 4), Ok((b"abc".to_vec(), true)));
        assert!(!names_file(
            b"Content-Disposition: form-data; filename=\"file\""
        ));
    }

    #[test]
    fn refuses_what_never_ends_or_is_malformed() {
        assert_eq!(
            read(
                b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",
                2
            ),
            Err(MultipartError::Incomplete)
        );
        assert_eq!(
            read(b"no boundary at all", 2),
            Err(MultipartError::Incomplete)
        );
        assert_eq!(read(b"--XyZ!!", 2), Err(MultipartError::BadDelimiter));
        let mut huge = b"--XyZ\r\nX-A: ".to_vec();
        huge.resize(huge.len() + MAX_HEADER_BYTES + 10, b'a');
        assert_eq!(read(&huge, 100), Err(MultipartError::HeadersTooLarge));
    }

    #[test]
    fn holds_no_more_than_a_delimiter_between_chunks() {
        let mut r = MultipartReader::new("XyZ");
        let mut n = 0usize;
        r.feed(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n",
            &mut |d| n += d.len(),
        )
        .unwrap();
        for _ in 0..100 {
            r.feed(&[b'\r'; 10_000], &mut |d| n += d.len()).unwrap();
            assert!(r.buf.len() < r.delimiter.len(), "{}", r.buf.len());
        }
        assert_eq!(n + r.buf.len(), 1_000_000);
    }

    #[test]
    fn boundary_parameter() {
        assert_eq!(
            boundary_of("multipart/form-data; boundary=abc").as_deref(),
            Ok("abc")
        );
        assert_eq!(
            boundary_of("multipart/form-data; charset=x; BOUNDARY=\"a b\"").as_deref(),
            Ok("a b")
        );
        assert_eq!(
            boundary_of("multipart/form-data"),
            Err(MultipartError::NoBoundary)
        );
        assert_eq!(
            boundary_of(&format!("multipart/form-data; boundary={}", "x".repeat(71))),
            Err(MultipartError::NoBoundary)
        );
    }
}
