//! The HTTP/1.1 request head parser: never panics, and a complete head's spans lie inside it;
//! a head that parses complete also parses complete when more bytes follow it (pipelining).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardcar::http1::head::{parse_request, Limits, RequestHead};

const LIMITS: Limits = Limits {
    max_head_bytes: 8 << 10,
    max_headers: 100,
    max_request_line: 4 << 10,
};

fuzz_target!(|data: &[u8]| {
    let mut head = RequestHead::default();
    let Ok(true) = parse_request(data, &LIMITS, &mut head) else {
        return;
    };
    assert!(head.len <= data.len());
    for s in [head.method, head.target]
        .into_iter()
        .chain(head.headers.iter().flat_map(|h| [h.name, h.value]))
        .chain(head.host)
    {
        assert!(s.start <= s.end && s.end as usize <= head.len, "{s:?} outside the head");
    }
    let mut more = data[..head.len].to_vec();
    more.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let mut again = RequestHead::default();
    assert_eq!(parse_request(&more, &LIMITS, &mut again), Ok(true));
    assert_eq!(again.len, head.len);
    assert_eq!(again.framing, head.framing);
});
