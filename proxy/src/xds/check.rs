//! "Never silently ignored": every translator takes the fields it maps out of a message
//! (`std::mem::take`), then [`leftover`] says whether anything else was set, and names the
//! first such field. Prost messages have no reflection, so the name comes from the derived
//! `{:#?}` output: its top-level `field: value` blocks are compared with a default message's.
//! This runs only when something is left (a NACK); the accepting path is one `==`.

use std::fmt::Debug;

/// `Some(field name)` when `rest` (a message with the supported fields taken out) is not
/// the default message.
pub fn leftover<M: Default + PartialEq + Debug>(rest: &M) -> Option<String> {
    let empty = M::default();
    if *rest == empty {
        return None;
    }
    let have = blocks(&format!("{rest:#?}"));
    let want = blocks(&format!("{empty:#?}"));
    have.iter()
        .find(|(name, body)| want.iter().all(|(n, b)| n != name || b != body))
        .map(|(n, _)| n.clone())
        .or_else(|| Some("(unknown field)".into()))
}

/// The top-level `name: …` blocks of a pretty `Debug` struct (4-space indented lines).
fn blocks(s: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in s.lines().skip(1) {
        let top = line.starts_with("    ") && !line.starts_with("     ");
        match line.trim_start().split_once(": ") {
            Some((name, rest)) if top => out.push((name.to_string(), rest.to_string())),
            _ => {
                if let Some(last) = out.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(line);
                }
            }
        }
    }
    out
}

/// A NACK reason: the resource and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub resource: String,
    pub field: String,
    pub why: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: field {}: {}", self.resource, self.field, self.why)
    }
}

/// Builds the error for `field` (a path under the resource) of `resource`.
pub fn nack(resource: &str, field: impl Into<String>, why: impl Into<String>) -> Unsupported {
    Unsupported {
        resource: resource.to_string(),
        field: field.into(),
        why: why.into(),
    }
}

/// Fails when `rest` has any field left, prefixing its name with `at` (`"filter_chains[0]."`).
pub fn done<M: Default + PartialEq + Debug>(
    resource: &str,
    at: &str,
    rest: &M,
) -> Result<(), Unsupported> {
    match leftover(rest) {
        None => Ok(()),
        Some(f) => Err(nack(
            resource,
            format!("{at}{f}"),
            "not supported by shardcar",
        )),
    }
}

/// `google.protobuf.Duration` → a config duration string (`"1500ms"`).
pub fn duration(d: &envoy_types::pb::google::protobuf::Duration) -> String {
    let ms = d.seconds.max(0) as u64 * 1000 + (d.nanos.max(0) as u64) / 1_000_000;
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;

    #[test]
    fn names_the_leftover_field() {
        assert_eq!(leftover(&Cluster::default()), None);
        let c = Cluster {
            alt_stat_name: "x".into(),
            ..Default::default()
        };
        assert_eq!(leftover(&c).as_deref(), Some("alt_stat_name"));
        let c = Cluster {
            close_connections_on_host_health_failure: true,
            ..Default::default()
        };
        assert_eq!(
            leftover(&c).as_deref(),
            Some("close_connections_on_host_health_failure")
        );
    }
}
