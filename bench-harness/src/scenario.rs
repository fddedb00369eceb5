//! Scenarios and scenario sets as data: `bench-harness/scenarios/*.toml` say *what* to measure
//! (kind, protocol, connections, sizes, loop, rates, duration, repetitions, targets),
//! `bench-harness/sets/*.toml` say *which* scenarios a `make` target runs, with optional
//! per-run overrides. Unknown keys are errors, and every error names the field (`rates[1]`).
//!
//! Later protocols (h2, TLS) are new values of `protocol`/`tls` plus new target templates; the
//! runner passes them to `shardload` (`--h2`, `--tls`) and nothing else changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What a scenario measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Requests through the target with `shardload` (throughput, latency, CPU/request).
    Load,
    /// Long connections moving bytes both ways (MB/s, CPU per GB).
    Bulk,
    /// RSS idle and with many idle keepalive connections.
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    Http1,
    H2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoopKind {
    /// `--concurrency connections`: as fast as the target answers.
    Closed,
    /// `--rps R` at each of `rates`.
    Open,
}

/// One open-loop rate: fixed, or a fraction of the knee measured in the same invocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Fixed(f64),
    KneeFraction(f64),
}

impl Rate {
    /// `"5000"` or `"50% knee"`.
    pub fn parse(s: &str) -> Result<Rate, String> {
        let t = s.trim();
        if let Some(pct) = t.strip_suffix("knee").map(str::trim) {
            let pct = pct
                .strip_suffix('%')
                .ok_or_else(|| format!("`{s}`: write a knee fraction as `50% knee`"))?;
            let v: f64 = pct
                .trim()
                .parse()
                .map_err(|_| format!("`{s}`: bad percentage"))?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(format!("`{s}`: percentage must be in (0, 100]"));
            }
            return Ok(Rate::KneeFraction(v / 100.0));
        }
        match t.parse::<f64>() {
            Ok(v) if v > 0.0 => Ok(Rate::Fixed(v)),
            _ => Err(format!("`{s}`: expected a rate like `5000` or `50% knee`")),
        }
    }

    /// Stable label used in file names and tables.
    pub fn label(&self) -> String {
        match self {
            Rate::Fixed(v) => format!("{v:.0}rps"),
            Rate::KneeFraction(f) => format!("{:.0}pct-knee", f * 100.0),
        }
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Rate::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub kind: Kind,
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    #[serde(default)]
    pub tls: bool,
    /// Target ids (`direct`, `shardcar-http`, `haproxy-tcp`, ...; see `target.rs`).
    pub targets: Vec<String>,
    #[serde(default = "default_connections")]
    pub connections: u64,
    /// h2: streams in flight per connection (closed loop: `connections × streams` requests in
    /// flight, like h2load's `-c` and `-m`).
    #[serde(default = "default_streams")]
    pub streams: u64,
    #[serde(default)]
    pub request_bytes: usize,
    #[serde(default = "default_response_bytes")]
    pub response_bytes: usize,
    #[serde(rename = "loop", default = "default_loop")]
    pub loop_kind: LoopKind,
    #[serde(default)]
    pub rates: Vec<Rate>,
    #[serde(deserialize_with = "de_duration", default = "default_duration")]
    pub duration: Duration,
    #[serde(deserialize_with = "de_duration", default = "default_warmup")]
    pub warmup: Duration,
    #[serde(default = "default_reps")]
    pub repetitions: u32,
    /// `bulk`: bytes sent each way per connection.
    #[serde(default)]
    pub bulk_bytes: u64,
    /// `memory`: idle keepalive client connections to hold open.
    #[serde(default)]
    pub idle_connections: u64,
    /// `memory`: how long the connections sit idle before RSS is read (proxies may release
    /// per-connection buffers of idle connections after a while; Shardcar parks them after 1 s).
    #[serde(deserialize_with = "de_duration", default = "default_settle")]
    pub settle: Duration,
    /// `load`: extra request headers (`"Name: value"`) the client sends to one target id, e.g.
    /// trace headers for the target whose template has tracing and access logs on.
    #[serde(default)]
    pub target_headers: std::collections::BTreeMap<String, Vec<String>>,
}

fn default_protocol() -> Protocol {
    Protocol::Http1
}
fn default_connections() -> u64 {
    50
}
fn default_streams() -> u64 {
    1
}
fn default_response_bytes() -> usize {
    64
}
fn default_loop() -> LoopKind {
    LoopKind::Closed
}
fn default_duration() -> Duration {
    Duration::from_secs(5)
}
fn default_warmup() -> Duration {
    Duration::from_secs(1)
}
fn default_settle() -> Duration {
    Duration::from_secs(2)
}
fn default_reps() -> u32 {
    3
}

/// A parse or validation error that names the file and the field.
#[derive(Debug, thiserror::Error)]
#[error("{file}: field `{field}`: {message}")]
pub struct FieldError {
    pub file: String,
    pub field: String,
    pub message: String,
}

fn parse_toml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, FieldError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let mut message = inner.message().to_string();
        if let Some(span) = inner.span() {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            message = format!("{message} (line {line})");
        }
        // An unknown key is reported at its parent; name the key itself.
        let field = match message.strip_prefix("unknown field `") {
            Some(rest) if field == "." => rest.split('`').next().unwrap_or("?").to_string(),
            _ => field,
        };
        FieldError {
            file: file.to_string(),
            field,
            message,
        }
    })
}

impl Scenario {
    pub fn parse(file: &str, text: &str) -> Result<Scenario, FieldError> {
        let s: Scenario = parse_toml(file, text)?;
        s.validate(file)?;
        Ok(s)
    }

    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Scenario::parse(&path.display().to_string(), &text)?)
    }

    pub fn validate(&self, file: &str) -> Result<(), FieldError> {
        let err = |field: &str, message: &str| FieldError {
            file: file.to_string(),
            field: field.to_string(),
            message: message.to_string(),
        };
        if self.targets.is_empty() {
            return Err(err("targets", "needs at least one target"));
        }
        for (i, t) in self.targets.iter().enumerate() {
            if let Err(e) = crate::target::TargetId::parse(t) {
                return Err(err(&format!("targets[{i}]"), &e));
            }
        }
        for (t, hs) in &self.target_headers {
            if !self.targets.contains(t) {
                return Err(err(
                    &format!("target_headers.{t}"),
                    "is not one of the scenario's targets",
                ));
            }
            if let Some(h) = hs.iter().find(|h| !h.contains(':')) {
                return Err(err(
                    &format!("target_headers.{t}"),
                    &format!("header {h:?} must be \"Name: value\""),
                ));
            }
        }
        if self.repetitions == 0 {
            return Err(err("repetitions", "must be at least 1"));
        }
        if self.connections == 0 {
            return Err(err("connections", "must be at least 1"));
        }
        if self.streams == 0 || (self.streams > 1 && self.protocol != Protocol::H2) {
            return Err(err(
                "streams",
                "must be at least 1, and above 1 only with protocol = \"h2\"",
            ));
        }
        match self.kind {
            Kind::Load => match self.loop_kind {
                LoopKind::Open if self.rates.is_empty() => Err(err(
                    "rates",
                    "an open-loop scenario needs at least one rate",
                )),
                LoopKind::Closed if !self.rates.is_empty() => {
                    Err(err("rates", "only open-loop scenarios take rates"))
                }
                _ => Ok(()),
            },
            Kind::Bulk if self.bulk_bytes == 0 => Err(err(
                "bulk_bytes",
                "a bulk scenario needs bytes per direction",
            )),
            Kind::Memory if self.idle_connections == 0 => Err(err(
                "idle_connections",
                "a memory scenario needs a connection count",
            )),
            _ => Ok(()),
        }
    }
}

/// One entry of a set: a scenario name plus overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetEntry {
    pub scenario: String,
    pub targets: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub duration: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub warmup: Option<Duration>,
    pub repetitions: Option<u32>,
    pub rates: Option<Vec<Rate>>,
    pub bulk_bytes: Option<u64>,
}

/// A scenario set (`sets/full.toml`, `sets/ci.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSet {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub run: Vec<SetEntry>,
}

impl ScenarioSet {
    pub fn parse(file: &str, text: &str) -> Result<ScenarioSet, FieldError> {
        parse_toml(file, text)
    }

    /// Loads `dir/sets/<name>.toml` and its scenarios from `dir/scenarios/`, overrides applied.
    pub fn resolve(dir: &Path, name: &str) -> anyhow::Result<(ScenarioSet, Vec<Scenario>)> {
        let path = dir.join("sets").join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let file = path.display().to_string();
        let set = ScenarioSet::parse(&file, &text)?;
        let mut out = Vec::new();
        for (i, e) in set.run.iter().enumerate() {
            let sp: PathBuf = dir.join("scenarios").join(format!("{}.toml", e.scenario));
            let mut s = Scenario::load(&sp)
                .map_err(|err| anyhow::anyhow!("{file}: field `run[{i}].scenario`: {err}"))?;
            if let Some(t) = &e.targets {
                s.targets = t.clone();
            }
            if let Some(d) = e.duration {
                s.duration = d;
            }
            if let Some(d) = e.warmup {
                s.warmup = d;
            }
            if let Some(r) = e.repetitions {
                s.repetitions = r;
            }
            if let Some(r) = &e.rates {
                s.rates = r.clone();
            }
            if let Some(b) = e.bulk_bytes {
                s.bulk_bytes = b;
            }
            s.validate(&format!("{file} (run[{i}] applied to {})", sp.display()))?;
            out.push(s);
        }
        Ok((set, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
name = "x"
kind = "load"
targets = ["direct", "shardcar-http"]
loop = "open"
rates = ["5000", "50% knee"]
duration = "2s"
"#;

    #[test]
    fn parses_a_scenario() {
        let s = Scenario::parse("x.toml", OK).unwrap();
        assert_eq!(s.rates, vec![Rate::Fixed(5000.0), Rate::KneeFraction(0.5)]);
        assert_eq!(s.duration, Duration::from_secs(2));
        assert_eq!(s.connections, 50);
        assert_eq!(s.loop_kind, LoopKind::Open);
    }

    fn field_of(text: &str) -> String {
        Scenario::parse("x.toml", text).unwrap_err().field
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(&OK.replace("\"2s\"", "\"2 parsecs\"")), "duration");
        assert_eq!(
            field_of(&OK.replace("\"50% knee\"", "\"half\"")),
            "rates[1]"
        );
        assert_eq!(field_of(&OK.replace("\"load\"", "\"lode\"")), "kind");
        assert_eq!(field_of(&format!("{OK}\nconections = 5\n")), "conections");
        assert_eq!(
            field_of(&OK.replace("\"shardcar-http\"", "\"squid\"")),
            "targets[1]"
        );
        assert_eq!(
            field_of(&OK.replace("rates = [\"5000\", \"50% knee\"]", "")),
            "rates"
        );
        assert_eq!(
            field_of(&format!("{OK}\nrepetitions = \"three\"\n")),
            "repetitions"
        );
        let e = Scenario::parse("x.toml", &OK.replace("\"2s\"", "\"2 parsecs\"")).unwrap_err();
        assert!(
            e.to_string().starts_with("x.toml: field `duration`:"),
            "{e}"
        );
    }

    #[test]
    fn target_headers_name_a_target_and_are_headers() {
        let s = Scenario::parse(
            "x.toml",
            &format!("{OK}\n[target_headers]\nshardcar-http = [\"traceparent: 00-1-2-01\"]\n"),
        )
        .unwrap();
        assert_eq!(
            s.target_headers["shardcar-http"],
            ["traceparent: 00-1-2-01"]
        );
        assert_eq!(
            field_of(&format!(
                "{OK}\n[target_headers]\nnginx-http = [\"a: b\"]\n"
            )),
            "target_headers.nginx-http"
        );
        assert_eq!(
            field_of(&format!(
                "{OK}\n[target_headers]\nshardcar-http = [\"nocolon\"]\n"
            )),
            "target_headers.shardcar-http"
        );
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/h1-observability.toml");
        let s = Scenario::parse(
            "h1-observability.toml",
            &std::fs::read_to_string(shipped).unwrap(),
        )
        .unwrap();
        assert_eq!(s.target_headers["shardcar-http-observed"].len(), 2);
        assert_eq!(s.target_headers["shardcar-http-traced"].len(), 2);
    }

    #[test]
    fn rate_labels() {
        assert_eq!(Rate::parse("5000").unwrap().label(), "5000rps");
        assert_eq!(Rate::parse("50%knee").unwrap().label(), "50pct-knee");
        assert!(Rate::parse("0").is_err());
        assert!(Rate::parse("150% knee").is_err());
    }
}
