//! The streaming `multipart/form-data` reader behind `/hash` (`crate::multipart`), fed arbitrary
//! bodies in arbitrary chunkings:
//! - it never panics, and where one feed of the whole body and a chunked feed both succeed they
//!   yield the same file bytes (only the 16 KiB header-block cap may tell them apart: a whole feed
//!   can see a block's end that a chunked feed refuses to wait for);
//! - a well-formed body built around the input (its bytes as the file part, between a text part
//!   and the closing boundary) gives back exactly the input, however it is chunked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omninode_bridge::multipart::{MultipartError, MultipartReader};

const BOUNDARY: &str = "fuzzBoundary7MA4YWxkTrZu0gW";

/// Feed `body` in chunks whose sizes come from `sizes` (cycled; 0 means 1); returns the file bytes.
fn run(body: &[u8], sizes: &[u8]) -> (Vec<u8>, Result<(), MultipartError>) {
    let mut reader = MultipartReader::new(BOUNDARY);
    let mut out = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = if sizes.is_empty() {
            rest.len()
        } else {
            (sizes[i % sizes.len()] as usize).max(1).min(rest.len())
        };
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        if let Err(e) = reader.feed(chunk, &mut |b| out.extend_from_slice(b)) {
            return (out, Err(e));
        }
        rest = tail;
    }
    let end = reader.finish();
    (out, end)
}

fuzz_target!(|data: &[u8]| {
    let (sizes, body) = data.split_at(data.len().min(8));

    // Arbitrary bodies.
    let whole = run(body, &[]);
    let chunked = run(body, sizes);
    if whole.1.is_ok() && chunked.1.is_ok() {
        assert_eq!(whole.0, chunked.0, "chunking changed the file bytes");
    } else if whole.1 != chunked.1 {
        assert!(
            whole.1 == Err(MultipartError::HeadersTooLarge)
                || chunked.1 == Err(MultipartError::HeadersTooLarge),
            "chunking changed the outcome: {:?} vs {:?}",
            whole.1,
            chunked.1
        );
    }

    // A well-formed body around the input (unless the input holds the delimiter itself).
    let delimiter = format!("\r\n--{BOUNDARY}");
    if body
        .windows(delimiter.len())
        .any(|w| w == delimiter.as_bytes())
    {
        return;
    }
    let mut valid = Vec::new();
    valid.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--{BOUNDARY}\r\n\
             Content-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    valid.extend_from_slice(body);
    valid.extend_from_slice(format!("{delimiter}--\r\n").as_bytes());
    let (out, end) = run(&valid, sizes);
    assert_eq!(end, Ok(()), "a well-formed body was refused");
    assert_eq!(out, body, "the file part came back changed");
});
