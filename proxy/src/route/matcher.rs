//! Per-route request matching: path (exact, prefix, regex), method list and header conditions.
//! Everything is compiled at config load time; matching borrows the request and never allocates.

use regex::bytes::Regex;

/// What a request must look like for its route to be chosen. `Default` matches every request.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    pub path: PathMatch,
    /// Upper-case method names; empty = any method. Compared exactly (methods are
    /// case-sensitive, RFC 9110 §9.1).
    pub methods: Vec<String>,
    /// All must hold.
    pub headers: Vec<HeaderMatch>,
}

/// How the request path is matched. The query string (`?...`) is never part of the match, and
/// an absolute-form target (`http://host/p?q`) is matched on its path (`/p`).
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// The whole path equals this.
    Exact(String),
    /// The path starts with this (`/` matches every origin-form path).
    Prefix(String),
    /// The whole path matches this regex (compiled anchored: `^(?:re)$`).
    Regex(Regex),
}

impl Default for PathMatch {
    fn default() -> PathMatch {
        PathMatch::Prefix("/".into())
    }
}

/// One header condition; the header name is lower-case and compared case-insensitively. When a
/// header is repeated, the first value is the one matched.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    pub name: String,
    pub value: HeaderValueMatch,
}

#[derive(Debug, Clone)]
pub enum HeaderValueMatch {
    /// Present with exactly this value (case-sensitive).
    Exact(String),
    /// `true`: present with any value; `false`: absent.
    Present(bool),
    /// Present and the whole value matches (anchored like path regexes).
    Regex(Regex),
}

/// Compiles `re` so that it must match the whole subject.
pub fn anchored_regex(re: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{re})$"))
}

/// The path part of a request target: query string removed; for an absolute-form target
/// (`http://host/p`) the part from the first `/` after the authority (`/` when there is none).
pub fn path_of(target: &[u8]) -> &[u8] {
    let mut t = target;
    if t.first() != Some(&b'/') {
        if let Some(pos) = find(t, b"://") {
            let rest = &t[pos + 3..];
            t = match rest.iter().position(|&b| b == b'/' || b == b'?') {
                Some(i) if rest[i] == b'/' => &rest[i..],
                _ => b"/",
            };
        }
    }
    match t.iter().position(|&b| b == b'?' || b == b'#') {
        Some(i) => &t[..i],
        None => t,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl PathMatch {
    /// `path` is already reduced by [`path_of`].
    pub fn matches(&self, path: &[u8]) -> bool {
        match self {
            PathMatch::Exact(p) => path == p.as_bytes(),
            PathMatch::Prefix(p) => path.starts_with(p.as_bytes()),
            PathMatch::Regex(re) => re.is_match(path),
        }
    }
}

impl HeaderMatch {
    pub fn matches(&self, req: &dyn super::RequestView) -> bool {
        let v = req.header(&self.name);
        match (&self.value, v) {
            (HeaderValueMatch::Present(want), v) => v.is_some() == *want,
            (HeaderValueMatch::Exact(e), Some(v)) => v == e.as_bytes(),
            (HeaderValueMatch::Regex(re), Some(v)) => re.is_match(v),
            (_, None) => false,
        }
    }
}

impl RouteMatch {
    /// `path` is the request path already reduced by [`path_of`].
    pub fn matches(&self, path: &[u8], req: &dyn super::RequestView) -> bool {
        if !self.path.matches(path) {
            return false;
        }
        if !self.methods.is_empty() {
            let m = req.method();
            if !self.methods.iter().any(|x| x.as_bytes() == m) {
                return false;
            }
        }
        self.headers.iter().all(|h| h.matches(req))
    }
}
