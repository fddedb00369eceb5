//! JWT request authentication with Istio `RequestAuthentication` semantics: a request without
//! a token passes (with no request principal — an authorization policy decides whether that is
//! enough); a request with a token that fails verification is refused with 401 and a
//! `WWW-Authenticate: Bearer` challenge. A verified token yields the request principal
//! (`iss/sub`) and the claims that `requestPrincipals` and `request.auth.*` conditions match.
//!
//! Verification is `jsonwebtoken` 9 (ring, like the rest of the proxy): RS256/384/512,
//! PS256/384/512, ES256/384 and EdDSA, each key allowed only its own family (an `alg` from the
//! token never picks a family, so `alg: none` and HS* with an RSA key fail); `exp` and `nbf`
//! with the rule's clock skew; the issuer picks the rule; the rule's audiences, if any, must
//! meet the token's `aud`. Keys come from a JWKS (inline, a file, or fetched through a
//! cluster — [`super::fetch`] — at config load, then again every `jwksRefreshInterval` by
//! [`super::refresh`]; a config reload reads or fetches it again). Cost: one base64 + JSON
//! decode and one signature check per request that carries a token; none for requests without
//! one. A fetched JWKS adds one read of its [`Live`](crate::tls::live::Live) cell per token (a `watch` borrow: a
//! shared read lock and an `Arc` clone, tens of ns next to a 20–60 µs signature check).

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::matcher::{any_str, StrMatch};
use super::refresh::RemoteJwks;
use crate::http::RequestCtx;

/// The `WWW-Authenticate` value sent with a 401.
pub const CHALLENGE: &str = "Bearer realm=\"shardcar\", error=\"invalid_token\"";

/// A verified token.
#[derive(Debug, Clone)]
pub struct Authn {
    /// `iss/sub`.
    pub principal: String,
    pub claims: Map<String, Value>,
}

impl Authn {
    pub fn presenter(&self) -> Option<&[u8]> {
        self.claims.get("azp")?.as_str().map(str::as_bytes)
    }

    /// Whether the claim at `path` (nested objects) is a string, or a list holding a string,
    /// that one of `l` matches. Booleans compare as `true` / `false`.
    pub fn any_claim_str<S: AsRef<str>>(&self, path: &[S], l: &[StrMatch]) -> bool {
        let Some((first, rest)) = path.split_first() else {
            return false;
        };
        let mut v = match self.claims.get(first.as_ref()) {
            Some(v) => v,
            None => return false,
        };
        for p in rest {
            match v.get(p.as_ref()) {
                Some(n) => v = n,
                None => return false,
            }
        }
        let one = |v: &Value| match v {
            Value::String(s) => any_str(l, Some(s.as_bytes())),
            Value::Bool(b) => any_str(l, Some(if *b { b"true" } else { b"false" })),
            _ => false,
        };
        match v {
            Value::Array(a) => a.iter().any(one),
            v => one(v),
        }
    }
}

/// Why a token was refused: the 401 body (Envoy's wording) and the log reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    UnknownIssuer,
    NoKey,
    BadSignature,
    Expired,
    NotYetValid,
    Audience,
}

impl JwtError {
    pub fn body(self) -> &'static [u8] {
        match self {
            JwtError::Malformed => b"Jwt is not in the form of Header.Payload.Signature",
            JwtError::UnknownIssuer => b"Jwt issuer is not configured",
            JwtError::NoKey => b"Jwks doesn't have key to match kid or alg from Jwt",
            JwtError::BadSignature => b"Jwt verification fails",
            JwtError::Expired => b"Jwt is expired",
            JwtError::NotYetValid => b"Jwt not yet valid",
            JwtError::Audience => b"Audiences in Jwt are not allowed",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            JwtError::Malformed => "malformed",
            JwtError::UnknownIssuer => "unknown_issuer",
            JwtError::NoKey => "no_matching_key",
            JwtError::BadSignature => "bad_signature",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::Audience => "audience",
        }
    }
}

/// One verification key with the validation its family allows.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<Box<str>>,
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithms", &self.validation.algorithms)
            .finish()
    }
}

/// Where a token is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A header (lower-case name) and the prefix before the token (`Bearer `), any case.
    Header(Box<str>, Box<str>),
    /// A query parameter.
    Param(Box<str>),
}

/// One `jwtRules` entry, compiled.
#[derive(Debug, Clone)]
pub struct JwtRule {
    pub issuer: Box<str>,
    pub locations: Box<[Location]>,
    /// The keys of an inline or file JWKS (empty when `remote` holds them).
    pub keys: Box<[Key]>,
    /// A JWKS fetched through a cluster: its keys in force, refreshed on a timer.
    pub remote: Option<std::sync::Arc<RemoteJwks>>,
}

impl JwtRule {
    /// Builds a rule from its JWKS text. `audiences` empty: any `aud` (or none) is accepted.
    pub fn new(
        issuer: &str,
        audiences: &[String],
        jwks: &str,
        locations: Vec<Location>,
        clock_skew_secs: u64,
    ) -> Result<JwtRule, String> {
        Ok(JwtRule {
            issuer: issuer.into(),
            locations: locations.into(),
            keys: parse_keys(issuer, audiences, jwks, clock_skew_secs)?.into(),
            remote: None,
        })
    }

    /// A rule whose keys live in `remote` (fetched once already).
    pub fn with_remote(
        issuer: &str,
        locations: Vec<Location>,
        remote: std::sync::Arc<RemoteJwks>,
    ) -> JwtRule {
        JwtRule {
            issuer: issuer.into(),
            locations: locations.into(),
            keys: Box::default(),
            remote: Some(remote),
        }
    }
}

/// The verification keys of a JWKS document, each with its family's validation.
pub fn parse_keys(
    issuer: &str,
    audiences: &[String],
    jwks: &str,
    clock_skew_secs: u64,
) -> Result<Vec<Key>, String> {
    {
        let set: JwkSet =
            serde_json::from_str(jwks).map_err(|e| format!("not a JWKS document: {e}"))?;
        if set.keys.is_empty() {
            return Err("the JWKS has no keys".into());
        }
        let mut keys = Vec::with_capacity(set.keys.len());
        for (i, jwk) in set.keys.iter().enumerate() {
            let family: &[Algorithm] = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => &[
                    Algorithm::RS256,
                    Algorithm::RS384,
                    Algorithm::RS512,
                    Algorithm::PS256,
                    Algorithm::PS384,
                    Algorithm::PS512,
                ],
                AlgorithmParameters::EllipticCurve(p) => match p.curve {
                    EllipticCurve::P256 => &[Algorithm::ES256],
                    EllipticCurve::P384 => &[Algorithm::ES384],
                    _ => return Err(format!("keys[{i}]: only EC curves P-256 and P-384")),
                },
                AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
                AlgorithmParameters::OctetKey(_) => {
                    return Err(format!(
                        "keys[{i}]: symmetric (oct) keys are not accepted; use RSA, EC or OKP"
                    ))
                }
            };
            let algs = match jwk.common.key_algorithm.and_then(|a| {
                a.to_string()
                    .parse::<Algorithm>()
                    .ok()
                    .filter(|a| family.contains(a))
            }) {
                Some(a) => vec![a],
                None => family.to_vec(),
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("keys[{i}]: {e}"))?;
            let mut v = Validation::new(algs[0]);
            v.algorithms = algs;
            v.leeway = clock_skew_secs;
            v.validate_nbf = true;
            // `exp` is optional (Istio); `iss` must be there, and `aud` when audiences are set.
            v.required_spec_claims.clear();
            v.required_spec_claims.insert("iss".into());
            v.set_issuer(&[issuer]);
            if audiences.is_empty() {
                v.validate_aud = false;
            } else {
                v.set_audience(audiences);
                v.required_spec_claims.insert("aud".into());
            }
            keys.push(Key {
                kid: jwk.common.key_id.as_deref().map(Into::into),
                key,
                validation: v,
            });
        }
        Ok(keys)
    }
}

impl JwtRule {
    /// Verifies `token` against this rule's keys (the `kid` picks, else every key whose
    /// family fits the token's `alg`).
    fn verify(&self, token: &str) -> Result<Authn, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        let mut last = JwtError::NoKey;
        let fetched = self.remote.as_ref().map(|r| r.keys());
        let keys: &[Key] = fetched.as_deref().map_or(&self.keys, |k| k);
        for k in keys.iter().filter(|k| {
            k.validation.algorithms.contains(&header.alg)
                && (header.kid.is_none() || header.kid.as_deref() == k.kid.as_deref())
        }) {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &k.validation) {
                Ok(d) => {
                    let sub = d.claims.get("sub").and_then(Value::as_str).unwrap_or("");
                    return Ok(Authn {
                        principal: format!("{}/{sub}", self.issuer),
                        claims: d.claims,
                    });
                }
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::ExpiredSignature => return Err(JwtError::Expired),
                        ErrorKind::ImmatureSignature => return Err(JwtError::NotYetValid),
                        ErrorKind::MissingRequiredClaim(c) if c == "iss" => {
                            return Err(JwtError::UnknownIssuer)
                        }
                        ErrorKind::InvalidAudience | ErrorKind::MissingRequiredClaim(_) => {
                            return Err(JwtError::Audience)
                        }
                        ErrorKind::InvalidIssuer => return Err(JwtError::UnknownIssuer),
                        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) => {
                            return Err(JwtError::Malformed)
                        }
                        _ => JwtError::BadSignature,
                    }
                }
            }
        }
        Err(last)
    }

    fn token<'r>(&self, req: &RequestCtx<'r>) -> Option<&'r str> {
        self.locations.iter().find_map(|l| match l {
            Location::Header(name, prefix) => {
                let v = req.headers.get(name)?;
                let p = prefix.as_bytes();
                (v.len() > p.len() && v[..p.len()].eq_ignore_ascii_case(p))
                    .then(|| std::str::from_utf8(&v[p.len()..]).ok())
                    .flatten()
                    .map(str::trim)
            }
            Location::Param(name) => query_param(req.path, name),
        })
    }
}

/// The value of query parameter `name` (not percent-decoded: tokens are base64url).
fn query_param<'r>(path: &'r [u8], name: &str) -> Option<&'r str> {
    let q = &path[path.iter().position(|&b| b == b'?')? + 1..];
    let q = q.split(|&b| b == b'#').next()?;
    q.split(|&b| b == b'&').find_map(|kv| {
        let v = kv.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        std::str::from_utf8(v).ok().filter(|v| !v.is_empty())
    })
}

/// A listener's `jwtRules`, from every `request_authentication` that selects it.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    pub rules: Box<[JwtRule]>,
}

impl Authenticator {
    /// `Ok(None)`: no token (passes unauthenticated). `Ok(Some)`: verified. `Err`: 401.
    pub fn authenticate(&self, req: &RequestCtx<'_>) -> Result<Option<Authn>, JwtError> {
        let Some((first, token)) = self
            .rules
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.token(req).map(|t| (i, t)))
        else {
            return Ok(None);
        };
        let rule = if self.rules.len() == 1 {
            &self.rules[first]
        } else {
            let iss = issuer_of(token).ok_or(JwtError::Malformed)?;
            self.rules
                .iter()
                .find(|r| *r.issuer == *iss)
                .ok_or(JwtError::UnknownIssuer)?
        };
        rule.verify(token).map(Some)
    }
}

/// The unverified `iss` of a token (to pick the rule whose keys verify it).
fn issuer_of(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some(v.get("iss")?.as_str()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        assert_eq!(
            query_param(b"/a?x=1&access_token=abc.def&y", "access_token"),
            Some("abc.def")
        );
        assert_eq!(query_param(b"/a?access_tokenx=1", "access_token"), None);
        assert_eq!(query_param(b"/a", "access_token"), None);
    }

    #[test]
    fn jwks_rejects_symmetric_keys_and_garbage() {
        let oct = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#;
        assert!(JwtRule::new("i", &[], oct, vec![], 60)
            .unwrap_err()
            .contains("symmetric"));
        assert!(JwtRule::new("i", &[], "{}", vec![], 60).is_err());
        assert!(JwtRule::new("i", &[], r#"{"keys":[]}"#, vec![], 60).is_err());
    }
}
