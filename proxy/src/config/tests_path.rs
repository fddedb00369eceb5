//! `normalize_path`, `merge_slashes` and `path_with_escaped_slashes` on listeners.

use super::*;
use crate::route::normalize::{EscapedSlashes, PathOptions};

/// An http listener with `extra` (YAML lines at listener level, 4-space indented) inserted
/// after `protocol:` on line 4.
fn http(extra: &str) -> String {
    format!(
        "\
listeners:
  - name: web
    address: 127.0.0.1:0
    protocol: http
{extra}    virtual_hosts:
      - name: all
        domains: [\"*\"]
        routes:
          - match: {{prefix: /}}
            cluster: a
clusters:
  - name: a
    endpoints: [\"127.0.0.1:80\"]
"
    )
}

fn path_opts(extra: &str) -> PathOptions {
    let c = Config::from_yaml(&http(extra)).unwrap_or_else(|e| panic!("{extra:?}: {e}"));
    c.listeners[0].http.as_ref().unwrap().path
}

fn err(src: &str) -> String {
    Config::from_yaml(src).unwrap_err().to_string()
}

#[test]
fn defaults_do_nothing() {
    let p = path_opts("");
    assert_eq!(p, PathOptions::default());
    assert!(!p.normalize && !p.merge_slashes);
    assert_eq!(p.escaped_slashes, EscapedSlashes::RejectRequest);
    assert!(!p.is_active());
    assert_eq!(HttpSettings::default().path, PathOptions::default());
}

#[test]
fn keys_parse() {
    let p = path_opts("    normalize_path: true\n    merge_slashes: true\n");
    assert!(p.normalize && p.merge_slashes && p.is_active());
    assert_eq!(p.escaped_slashes, EscapedSlashes::RejectRequest);
    let p = path_opts("    merge_slashes: true\n    normalize_path: false\n");
    assert!(!p.normalize && p.merge_slashes);
    for (v, want) in [
        ("keep_unchanged", EscapedSlashes::KeepUnchanged),
        ("reject_request", EscapedSlashes::RejectRequest),
        ("unescape_and_forward", EscapedSlashes::UnescapeAndForward),
    ] {
        let p = path_opts(&format!(
            "    normalize_path: true\n    path_with_escaped_slashes: {v}\n"
        ));
        assert_eq!(p.escaped_slashes, want, "{v}");
    }
    // keep_unchanged alone is what happens anyway: accepted.
    let p = path_opts("    path_with_escaped_slashes: keep_unchanged\n");
    assert!(!p.is_active());
}

#[test]
fn unknown_escaped_slashes_value_names_field_and_line() {
    assert_eq!(
        err(&http(
            "    normalize_path: true\n    path_with_escaped_slashes: Reject_Request\n"
        )),
        "listeners[0].path_with_escaped_slashes: unknown value \"Reject_Request\" (expected \
         keep_unchanged, reject_request or unescape_and_forward) at line 6"
    );
}

#[test]
fn escaped_slash_action_without_normalisation_is_an_error() {
    for v in ["reject_request", "unescape_and_forward"] {
        assert_eq!(
            err(&http(&format!("    path_with_escaped_slashes: {v}\n"))),
            "listeners[0].path_with_escaped_slashes: has no effect unless normalize_path or \
             merge_slashes is true at line 5"
        );
    }
}

#[test]
fn wrong_type_is_an_error() {
    let e = err(&http("    normalize_path: yes please\n"));
    assert!(e.contains("normalize_path"), "{e}");
}

#[test]
fn tcp_listener_rejects_path_keys() {
    for key in [
        "normalize_path: true",
        "merge_slashes: false",
        "path_with_escaped_slashes: keep_unchanged",
    ] {
        let src = format!(
            "\
listeners:
  - name: raw
    address: 127.0.0.1:0
    cluster: a
    {key}
clusters:
  - name: a
    endpoints: [\"127.0.0.1:80\"]
"
        );
        let f = key.split(':').next().unwrap();
        assert_eq!(
            err(&src),
            format!("listeners[0].{f}: only a protocol: http listener takes {f} at line 5")
        );
    }
}
