//! W3C and B3 parsing and next-hop rendering.

use super::*;

const TP: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn s(f: impl Fn(&mut Vec<u8>)) -> String {
    let mut o = Vec::new();
    f(&mut o);
    String::from_utf8(o).unwrap()
}

#[test]
fn traceparent_continues_with_new_span_and_flag() {
    let c = parse_traceparent(TP).unwrap();
    assert_eq!(c.sampled, Some(true));
    assert_eq!(c.parent_span, Some(0x00f067aa0ba902b7u64.to_be_bytes()));
    assert_eq!(
        s(|o| c.write_traceparent(0x1122334455667788, o)),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-1122334455667788-01"
    );
    let un = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
    assert_eq!(
        s(|o| un.write_traceparent(1, o)),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000001-00"
    );
    assert_eq!(
        s(|o| c.write_b3(0xab, o)),
        "4bf92f3577b34da6a3ce929d0e0e4736-00000000000000ab-1-00f067aa0ba902b7"
    );
}

#[test]
fn traceparent_rejects_bad_shapes() {
    for bad in [
        &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        b"",
    ] {
        assert_eq!(
            parse_traceparent(bad),
            None,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(
        parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future")
            .is_some()
    );
}

#[test]
fn b3_single_and_multi() {
    let c =
        parse_b3_single(b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
            .unwrap();
    assert_eq!(c.sampled, Some(true));
    assert_eq!(c.parent_span, Some(0xe457b5a2e4d86bd1u64.to_be_bytes()));
    let short = parse_b3_single(b"64fe8b2a57d3eff7-e457b5a2e4d86bd1").unwrap();
    assert_eq!(short.sampled, None);
    assert_eq!(&short.trace_id[..8], &[0; 8]);
    assert_eq!(
        s(|o| short.write_b3(2, o)),
        "000000000000000064fe8b2a57d3eff7-0000000000000002"
    );
    assert_eq!(parse_b3_single(b"0"), Err(Some(false)));
    assert_eq!(parse_b3_single(b"d"), Err(Some(true)));
    assert_eq!(parse_b3_single(b"zz-e457b5a2e4d86bd1"), Err(None));
    assert_eq!(
        parse_b3_single(b"64fe8b2a57d3eff7-e457b5a2e4d86bd1-2"),
        Err(None)
    );
    let m = parse_b3_multi(
        Some(b"80f198ee56343ba864fe8b2a57d3eff7"),
        Some(b"e457b5a2e4d86bd1"),
        Some(b"0"),
        None,
    )
    .unwrap();
    assert_eq!(m.sampled, Some(false));
    let dbg = parse_b3_multi(
        Some(b"64fe8b2a57d3eff7"),
        Some(b"e457b5a2e4d86bd1"),
        None,
        Some(b"1"),
    );
    assert_eq!(dbg.unwrap().sampled, Some(true));
    assert_eq!(
        parse_b3_multi(Some(b"64fe8b2a57d3eff7"), None, None, None),
        None
    );
    let root = TraceContext::root(0x0102, false);
    assert_eq!(
        s(|o| root.write_traceparent(3, o)),
        "00-00000000000000000000000000000102-0000000000000003-00"
    );
    assert_eq!(
        s(|o| root.write_b3(3, o)),
        "00000000000000000000000000000102-0000000000000003-0"
    );
    // Appends after what the buffer holds, and cuts the stack copy back to the header's length.
    assert_eq!(
        s(|o| {
            o.extend_from_slice(b"b3: ");
            c.write_b3(0xab, o);
            o.push(b'|');
        }),
        "b3: 80f198ee56343ba864fe8b2a57d3eff7-00000000000000ab-1-e457b5a2e4d86bd1|"
    );
}

#[test]
fn hex_writes_ids_and_other_lengths() {
    assert_eq!(
        s(|o| hex(&0xe457b5a2e4d86bd1u64.to_be_bytes(), o)),
        "e457b5a2e4d86bd1"
    );
    assert_eq!(s(|o| hex(&u128::MAX.to_be_bytes(), o)), "f".repeat(32));
    assert_eq!(s(|o| hex(&[0x0a, 0xf0, 0x00], o)), "0af000");
}
