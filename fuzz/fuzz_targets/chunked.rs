//! The chunked-body scanner (the request-smuggling defence): scanning an input in one call or
//! split at any point gives the same verdict, the same body length and the same data bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardcar::http1::chunked::ChunkedScanner;

/// (bytes of body or the error, done, de-chunked data) after feeding `parts` in order.
fn scan(parts: &[&[u8]]) -> (Result<usize, String>, bool, Vec<u8>) {
    let mut s = ChunkedScanner::default();
    let mut total = 0;
    let mut out = Vec::new();
    for part in parts {
        match s.scan_data(part, |r| out.extend_from_slice(&part[r])) {
            Ok(n) => {
                total += n;
                if n < part.len() || s.is_done() {
                    return (Ok(total), s.is_done(), out);
                }
            }
            Err(e) => return (Err(format!("{e:?}")), false, out),
        }
    }
    (Ok(total), s.is_done(), out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let at = (cut as usize * body.len()) / 255;
    let whole = scan(&[body]);
    let split = scan(&[&body[..at], &body[at..]]);
    assert_eq!(whole.0.is_ok(), split.0.is_ok(), "verdict differs at split {at}");
    if let (Ok(a), Ok(b)) = (&whole.0, &split.0) {
        assert_eq!(a, b, "body length differs at split {at}");
        assert_eq!(whole.1, split.1);
        assert_eq!(whole.2, split.2, "data differs at split {at}");
    }
});
