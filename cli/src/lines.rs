//! Reading newline-delimited input without trusting its line lengths.

use std::io::{self, BufRead};

/// Longest input line read (256 MiB): four times the core's default `max_body_bytes`, room
/// for a request and a response escaped inside one JSON line. A longer line is skipped
/// without being buffered.
pub const MAX_LINE_BYTES: usize = 256 << 20;

/// One line of input.
pub enum Line {
    /// The line's bytes are in the buffer (without the newline).
    Read,
    /// The line was longer than the cap and was skipped.
    TooLong,
}

/// Reads the next line into `buf` (cleared first). `Ok(None)` at the end of the input; the
/// second value is the number of bytes consumed, newline included.
pub fn next_line(
    r: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Option<(Line, u64)>> {
    buf.clear();
    let mut consumed = 0u64;
    let mut too_long = false;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok((consumed > 0).then_some((end(too_long), consumed)));
        }
        let (piece, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if !too_long && buf.len() + piece.len() > cap {
            too_long = true;
            buf.clear();
        }
        if !too_long {
            buf.extend_from_slice(piece);
        }
        let used = done.unwrap_or(chunk.len());
        r.consume(used);
        consumed += used as u64;
        if done.is_some() {
            return Ok(Some((end(too_long), consumed)));
        }
    }
}

fn end(too_long: bool) -> Line {
    if too_long {
        Line::TooLong
    } else {
        Line::Read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_over_the_cap_are_skipped_unbuffered() {
        let input = b"short\nxxxxxxxxxxxxxxxxxxxx\n\nlast";
        let mut r = io::BufReader::with_capacity(4, &input[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some((l, n)) = next_line(&mut r, &mut buf, 8).unwrap() {
            got.push(match l {
                Line::Read => (String::from_utf8(buf.clone()).unwrap(), n),
                Line::TooLong => (format!("too long {n}"), n),
            });
            assert!(buf.capacity() <= 16);
        }
        assert_eq!(
            got,
            [
                ("short".into(), 6),
                ("too long 21".into(), 21),
                (String::new(), 1),
                ("last".into(), 4)
            ]
        );
    }
}
