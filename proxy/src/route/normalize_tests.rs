use super::*;

const NORM: PathOptions = PathOptions {
    normalize: true,
    merge_slashes: false,
    escaped_slashes: EscapedSlashes::KeepUnchanged,
};

fn run(path: &str, opts: &PathOptions) -> Result<String, PathError> {
    let mut out = Vec::new();
    let changed = normalize(path.as_bytes(), opts, &mut out)?;
    assert_eq!(changed, out != path.as_bytes(), "{path:?}");
    Ok(String::from_utf8(out).unwrap())
}

fn with(escaped_slashes: EscapedSlashes, normalize: bool, merge_slashes: bool) -> PathOptions {
    PathOptions {
        normalize,
        merge_slashes,
        escaped_slashes,
    }
}

fn check(opts: &PathOptions, cases: &[(&str, &str)]) {
    for (input, want) in cases {
        assert_eq!(run(input, opts).as_deref(), Ok(*want), "{input:?}");
    }
}

#[test]
fn default_is_inactive_and_copies() {
    let d = PathOptions::default();
    assert!(!d.normalize && !d.merge_slashes);
    assert_eq!(d.escaped_slashes, EscapedSlashes::RejectRequest);
    assert!(!d.is_active());
    // Inactive: an exact copy, even of what would be rejected or rewritten when active.
    check(&d, &[("/a/../b//%2f%zz?x", "/a/../b//%2f%zz?x")]);
    assert!(with(EscapedSlashes::RejectRequest, true, false).is_active());
    assert!(with(EscapedSlashes::RejectRequest, false, true).is_active());
}

#[test]
fn not_origin_form() {
    for p in ["", "*", "a/b", "http://h/a", "?q"] {
        assert_eq!(run(p, &NORM), Err(PathError::NotOriginForm), "{p:?}");
        assert_eq!(
            run(p, &PathOptions::default()),
            Err(PathError::NotOriginForm)
        );
    }
}

/// RFC 3986 §5.4 normal and abnormal examples, base `http://a/b/c/d;p?q`, each resolved target
/// written as the merged path before dot removal (§5.2.3), so `remove_dot_segments` must turn
/// it into the RFC's result.
#[test]
fn rfc3986_examples() {
    check(
        &NORM,
        &[
            ("/b/c/g", "/b/c/g"),               // g, ./g
            ("/b/c/./g", "/b/c/g"),             // ./g
            ("/b/c/g/", "/b/c/g/"),             // g/
            ("/g", "/g"),                       // /g
            ("/b/c/.", "/b/c/"),                // .
            ("/b/c/./", "/b/c/"),               // ./
            ("/b/c/..", "/b/"),                 // ..
            ("/b/c/../", "/b/"),                // ../
            ("/b/c/../g", "/b/g"),              // ../g
            ("/b/c/../..", "/"),                // ../..
            ("/b/c/../../", "/"),               // ../../
            ("/b/c/../../g", "/g"),             // ../../g
            ("/b/c/../../../g", "/g"),          // ../../../g (abnormal)
            ("/b/c/../../../../g", "/g"),       // ../../../../g
            ("/./g", "/g"),                     // /./g
            ("/../g", "/g"),                    // /../g
            ("/b/c/g.", "/b/c/g."),             // g.
            ("/b/c/.g", "/b/c/.g"),             // .g
            ("/b/c/g..", "/b/c/g.."),           // g..
            ("/b/c/..g", "/b/c/..g"),           // ..g
            ("/b/c/./../g", "/b/g"),            // ./../g
            ("/b/c/./g/.", "/b/c/g/"),          // ./g/.
            ("/b/c/g/./h", "/b/c/g/h"),         // g/./h
            ("/b/c/g/../h", "/b/c/h"),          // g/../h
            ("/b/c/g;x=1/./y", "/b/c/g;x=1/y"), // g;x=1/./y
            ("/b/c/g;x=1/../y", "/b/c/y"),      // g;x=1/../y
            ("/a/b/c/./../../g", "/a/g"),       // §5.2.4 worked example
            ("/mid/content=5/../6", "/mid/6"),  // §5.2.4 worked example
        ],
    );
}

/// Envoy's `path_utility_test.cc` cases, where Shardcar agrees.
#[test]
fn envoy_cases() {
    check(
        &NORM,
        &[
            ("/xyz", "/xyz"),
            ("/x/y/z", "/x/y/z"),
            ("/a/b/../c", "/a/c"),
            ("/a/b/./c", "/a/b/c"),
            ("/a/b/../../../../c", "/c"),
            ("/a/b/%2E%2E/c", "/a/c"),
            ("/a/b/%2e%2e/c", "/a/c"),
            ("/a/b/%2E./c", "/a/c"),
            ("/a/b/%2E/c", "/a/b/c"),
            ("/../a/b", "/a/b"),
            ("/./a/b", "/a/b"),
            ("/A/B/C", "/A/B/C"),
            ("/a/%2F%2f/c", "/a/%2F%2F/c"), // Envoy keeps `%2f`; RFC 3986 §6.2.2.1 upper-cases
            ("/%c0%af", "/%C0%AF"),         // likewise
            ("/%5c%25", "/%5C%25"),
        ],
    );
    // Envoy's Chromium canonicaliser treats `\` as `/` (`/a/..\c` → `/c`); Shardcar does not.
    check(&NORM, &[("/a/..\\c", "/a/..\\c")]);
    // Merge slashes (Envoy's `MergeSlashes` cases that are in origin form).
    check(
        &with(EscapedSlashes::KeepUnchanged, false, true),
        &[
            ("/a//b/c/", "/a/b/c/"),
            ("/a", "/a"),
            ("//a/b/c", "/a/b/c"),
            ("/a//b/c", "/a/b/c"),
            ("/a/b/c//", "/a/b/c/"),
            ("/a///b/c", "/a/b/c"),
            ("/a////b/c", "/a/b/c"),
            ("/a//b?a=///c", "/a/b?a=///c"),
            ("/a//b?", "/a/b?"),
            ("//a/?b", "/a/?b"),
        ],
    );
}

#[test]
fn percent_decoding() {
    check(
        &NORM,
        &[
            ("/%7Euser", "/~user"),
            ("/%7euser", "/~user"),
            ("/%41%62%30%2D%2E%5F%7E", "/Ab0-._~"),
            ("/a%20b", "/a%20b"),
            ("/%e2%82%ac", "/%E2%82%AC"),
            ("/%3f%23%25", "/%3F%23%25"), // `?`, `#`, `%` stay encoded
            ("/a?%7e=%2f&x=/../", "/a?%7e=%2f&x=/../"),
        ],
    );
    for p in [
        "/%", "/a%", "/%4", "/a/%4?x", "/%zz", "/%g1", "/%1g", "/%%41",
    ] {
        assert_eq!(run(p, &NORM), Err(PathError::BadEscape), "{p:?}");
    }
    // Without `normalize`, other escapes (malformed too) pass through as written.
    check(
        &with(EscapedSlashes::RejectRequest, false, true),
        &[("//%7e/%zz/%4", "/%7e/%zz/%4"), ("/%", "/%")],
    );
}

#[test]
fn encoded_slashes_per_option() {
    let inputs = ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a%5cb"];
    for normalize in [false, true] {
        let reject = with(EscapedSlashes::RejectRequest, normalize, !normalize);
        for p in inputs {
            assert_eq!(run(p, &reject), Err(PathError::EncodedSlash), "{p:?}");
        }
        // In the query they are not the path's business.
        check(&reject, &[("/a?b=%2F%5c", "/a?b=%2F%5c")]);
    }
    check(
        &with(EscapedSlashes::KeepUnchanged, true, false),
        &[
            ("/a%2Fb", "/a%2Fb"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%5cb", "/a%5Cb"),
            ("/a/b%2F..%2Fc", "/a/b%2F..%2Fc"), // not separators, so no dot segment
        ],
    );
    check(
        &with(EscapedSlashes::KeepUnchanged, false, true),
        &[("/a%2fb", "/a%2fb")],
    );
    check(
        &with(EscapedSlashes::UnescapeAndForward, true, false),
        &[
            ("/a%2Fb", "/a/b"),
            ("/a%2fb", "/a/b"),
            ("/a%5Cb", "/a\\b"),
            ("/a%5cb", "/a\\b"),
            ("/a/b%2F..%2Fc", "/a/c"), // decoded slashes separate segments
            ("/a%2F%2Fb", "/a//b"),
        ],
    );
    check(
        &with(EscapedSlashes::UnescapeAndForward, true, true),
        &[("/a%2F%2Fb", "/a/b"), ("/a%2f/./%2F", "/a/")],
    );
    // Unescape without normalize: decoded, but dot segments stay.
    check(
        &with(EscapedSlashes::UnescapeAndForward, false, true),
        &[("/a%2F..%2Fb", "/a/../b")],
    );
}

#[test]
fn merge_on_and_off() {
    let keep = EscapedSlashes::KeepUnchanged;
    check(
        &with(keep, true, false),
        &[("//a//b/", "//a//b/"), ("/a//../b", "/a/b")],
    );
    check(
        &with(keep, true, true),
        &[
            ("//a//b/", "/a/b/"),
            ("/a//../b", "/a/b"), // dot removal first (Envoy's order), then merge
            ("/a/.//b", "/a/b"),
            ("///", "/"),
        ],
    );
}

#[test]
fn query_untouched() {
    let all = with(EscapedSlashes::RejectRequest, true, true);
    check(
        &all,
        &[
            ("/a/./b?x=/./..//%7e%zz%2f", "/a/b?x=/./..//%7e%zz%2f"),
            ("/a/..?", "/?"),
            ("/?q", "/?q"),
            ("/a??b", "/a??b"),
        ],
    );
}

#[test]
fn changed_flag_and_buffer_reuse() {
    let all = with(EscapedSlashes::RejectRequest, true, true);
    let mut out = Vec::with_capacity(64);
    let ptr = out.as_ptr();
    assert_eq!(normalize(b"/a/b?c", &all, &mut out), Ok(false));
    assert_eq!(out, b"/a/b?c");
    assert_eq!(normalize(b"/a/./b", &all, &mut out), Ok(true));
    assert_eq!(out, b"/a/b");
    assert_eq!(out.as_ptr(), ptr, "no reallocation when capacity suffices");
    // An error leaves `out` in an unspecified state but the next call starts afresh.
    assert!(normalize(b"/%2f", &all, &mut out).is_err());
    assert_eq!(normalize(b"/x", &all, &mut out), Ok(false));
    assert_eq!(out, b"/x");
}

/// Small deterministic generator (xorshift64*) so the property checks need no dependency.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn path(&mut self) -> String {
        const PIECES: &[&str] = &[
            "/", "/", "/", ".", "..", "a", "B", "%2e", "%2E", "%2f", "%2F", "%5c", "%7e", "%41",
            "%zz", "%", "%e2", "\\", "?", "-", "~",
        ];
        let n = (self.next() % 12) as usize;
        let mut s = String::from("/");
        for _ in 0..n {
            s.push_str(PIECES[(self.next() % PIECES.len() as u64) as usize]);
        }
        s
    }
}

#[test]
fn properties() {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let mut opts_all = Vec::new();
    for es in [
        EscapedSlashes::KeepUnchanged,
        EscapedSlashes::RejectRequest,
        EscapedSlashes::UnescapeAndForward,
    ] {
        for (n, m) in [(false, false), (true, false), (false, true), (true, true)] {
            opts_all.push(with(es, n, m));
        }
    }
    let (mut once, mut twice) = (Vec::new(), Vec::new());
    for _ in 0..4000 {
        let p = g.path();
        let query = &p[p.find('?').unwrap_or(p.len())..];
        for opts in &opts_all {
            let Ok(changed) = normalize(p.as_bytes(), opts, &mut once) else {
                continue;
            };
            assert_eq!(changed, once != p.as_bytes());
            assert!(once.len() <= p.len(), "{p:?} {opts:?}");
            assert!(once.starts_with(b"/") && once.ends_with(query.as_bytes()));
            let out_path = &once[..once.len() - query.len()];
            if opts.normalize {
                let segs = || out_path.split(|&b| b == b'/').skip(1);
                assert!(segs().all(|s| s != b"." && s != b".."), "{p:?} → {once:?}");
                assert!(!out_path
                    .windows(3)
                    .any(|w| w[0] == b'%'
                        && (w[1].is_ascii_lowercase() || w[2].is_ascii_lowercase())));
            }
            if opts.merge_slashes {
                assert!(!out_path.windows(2).any(|w| w == b"//"), "{p:?}");
            }
            if !opts.is_active() {
                assert_eq!(once, p.as_bytes());
            }
            // Idempotence: normalising a normalised path changes nothing.
            assert_eq!(
                normalize(&once, opts, &mut twice),
                Ok(false),
                "{p:?} {opts:?}"
            );
            assert_eq!(once, twice);
        }
    }
}
