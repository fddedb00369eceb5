//! Tap filters, rate cap and the JSON line.

use super::*;

fn ev() -> TapEvent<'static> {
    TapEvent {
        method: b"POST",
        authority: b"Backend",
        path: b"/checkout/cart",
        status: 503,
        flags: "UF",
        duration: Duration::from_micros(1500),
        upstream: Some("127.0.0.1:8080".parse().unwrap()),
        peer_identity: Some("spiffe://td/ns/a/sa/web"),
        local_identity: None,
        headers: &[("user-agent", b"curl/8")],
    }
}

#[test]
fn filters_each_field() {
    let e = ev();
    assert!(TapFilter::default().matches(&e));
    let all = TapFilter {
        authority: Some("backend".into()),
        path_prefix: Some("/checkout".into()),
        method: Some("POST".into()),
        status: Some(503),
        identity: Some("spiffe://td/ns/a/sa/web".into()),
    };
    assert!(all.matches(&e));
    let miss = [
        TapFilter {
            authority: Some("other".into()),
            ..all.clone()
        },
        TapFilter {
            path_prefix: Some("/cart".into()),
            ..all.clone()
        },
        TapFilter {
            method: Some("GET".into()),
            ..all.clone()
        },
        TapFilter {
            status: Some(200),
            ..all.clone()
        },
        TapFilter {
            identity: Some("spiffe://td/ns/a/sa/x".into()),
            ..all.clone()
        },
    ];
    for f in miss {
        assert!(!f.matches(&e), "{f:?}");
    }
}

#[test]
fn rate_cap_admits_per_second_and_counts_drops() {
    let t0 = Instant::now();
    let mut cap = RateCap::new(10, t0);
    let admitted = (0..25).filter(|_| cap.admit(t0)).count();
    assert_eq!((admitted, cap.dropped), (10, 15));
    assert!(!cap.admit(t0 + Duration::from_millis(50)));
    assert!(cap.admit(t0 + Duration::from_millis(200)));
    let later = t0 + Duration::from_secs(10);
    assert_eq!(
        (0..25).filter(|_| cap.admit(later)).count(),
        10,
        "burst is one second's worth"
    );
}

#[test]
fn json_line_golden() {
    let mut out = Vec::new();
    ev().write_json(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"method\":\"POST\",\"authority\":\"Backend\",\"path\":\"/checkout/cart\",\"status\":503,\"flags\":\"UF\",\"duration_us\":1500,\"upstream\":\"127.0.0.1:8080\",\"peer_identity\":\"spiffe://td/ns/a/sa/web\",\"local_identity\":null,\"headers\":{\"user-agent\":\"curl/8\"}}\n"
    );
}
