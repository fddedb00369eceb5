//! The HTTP/1.1 response head parser: never panics; a complete head lies inside the input and
//! its status is a three-digit code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardcar::http1::response_head::{parse_response, ResponseHead};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let mut head = ResponseHead::default();
    if let Ok(true) = parse_response(data, 8 << 10, 100, flags & 1 == 1, &mut head) {
        assert!(head.len <= data.len());
        assert!((100..1000).contains(&head.status), "status {}", head.status);
        for h in &head.headers {
            assert!(h.name.end as usize <= head.len && h.value.end as usize <= head.len);
        }
    }
});
