//! Arbitrary bytes, in arbitrary pieces, through the response validator as a
//! connection feeds it: no panic, consumption never exceeds the input, memory stays
//! within the buffer, and splitting the input differently never changes the result.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loadgen::response::{ResponseError, ResponseMeta, ResponseParser};

const BUFFER: usize = 1024;

fn run(input: &[u8], piece: usize, head_mask: u8) -> Result<Vec<ResponseMeta>, ResponseError> {
    let mut parser = ResponseParser::new(BUFFER);
    let mut buf: Vec<u8> = Vec::new();
    let mut done = Vec::new();
    parser.expect(head_mask & 1 != 0);
    let mut rest = input;
    while !rest.is_empty() {
        let n = piece.min(rest.len()).min(BUFFER - buf.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            let progress = parser.feed(&buf)?;
            assert!(progress.consumed <= buf.len());
            buf.drain(..progress.consumed);
            match progress.complete {
                Some(meta) => {
                    done.push(meta);
                    parser.expect(head_mask >> (done.len() % 8) & 1 != 0);
                }
                None => break,
            }
        }
        assert!(
            buf.len() < BUFFER,
            "an unconsumed head filled the buffer without an error"
        );
    }
    if let Some(meta) = parser.eof(buf.len())? {
        done.push(meta);
    }
    Ok(done)
}

fuzz_target!(|data: &[u8]| {
    let [piece, head_mask, input @ ..] = data else {
        return;
    };
    let piece = usize::from(*piece % 32) + 1;
    let a = run(input, piece, *head_mask);
    let b = run(input, BUFFER, *head_mask);
    assert_eq!(a, b);
});
