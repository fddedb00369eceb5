//! A YAML scalar kept as text, whether written as a string or a number: durations (`30s`, `0`)
//! and sizes (`65536`, `64KiB`) accept both spellings, and the typed stage parses the text.
//! The scalar parsers every config stage shares (durations, sizes, 32-bit numbers) live here, so
//! the stage-two modules depend on this leaf and not on each other.

use std::fmt;
use std::ops::Deref;

use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl Deref for Scalar {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a byte size: a plain integer (`65536`) or an integer with `B`, `KiB` or `MiB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        _ => {
            return Err(format!(
                "invalid size {s:?} (expected bytes, or a number with B, KiB or MiB)"
            ))
        }
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            format!("invalid size {s:?} (expected bytes, or a number with B, KiB or MiB)")
        })
}

/// Parses a human duration (`"250ms"`, `"30s"`, `"1h"`); `"0"` is zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?} ({e})"))
}

pub(super) fn duration_field(
    path: String,
    v: &Option<Scalar>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).map_err(|m| ConfigError::new(path, m)),
    }
}

/// A 32-bit number written in decimal or `0x` hex (`upstream_mark`, `--mark`).
pub fn parse_u32(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("bad number {s:?} (decimal or 0x-hex)"))
}
