//! Maps a config field path (`clusters[1].endpoints[0]`) to the line it was written on, so that
//! errors found after deserialisation (a bad port, an unknown cluster) can still name the line.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Field path → 1-based line number, for every scalar, sequence and mapping in the document.
#[derive(Debug, Default)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
}

impl LineIndex {
    /// Indexes `src`. A document that does not parse yields an empty index (the serde stage
    /// reports the syntax error with its own line).
    pub fn build(src: &str) -> LineIndex {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(src);
        if parser.load(&mut walker, false).is_err() {
            return LineIndex::default();
        }
        LineIndex {
            lines: walker.lines,
        }
    }

    /// The line of `path`, or of its nearest indexed ancestor.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

enum Frame {
    Map {
        path: String,
        key: Option<(String, usize)>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

impl Walker {
    /// The path of the node that starts now, advancing the parent's position. `None` when the
    /// node is a mapping key.
    /// The value's line is the line of its key when it has one (a block sequence under
    /// `endpoints:` is reported at the `endpoints:` line, not its first item).
    fn next_path(&mut self, is_scalar: bool, scalar: &str, line: usize) -> Option<(String, usize)> {
        match self.stack.last_mut() {
            None => Some((String::new(), line)),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some((p, line))
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some((k, l)) if path.is_empty() => Some((k, l)),
                Some((k, l)) => Some((format!("{path}.{k}"), l)),
                None => {
                    if is_scalar {
                        *key = Some((scalar.to_string(), line));
                    }
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(ref s, ..) => {
                if let Some((p, l)) = self.next_path(true, s, line) {
                    self.lines.entry(p).or_insert(l);
                }
            }
            Event::MappingStart(..) => {
                let (path, l) = self.next_path(false, "", line).unwrap_or_default();
                self.lines.entry(path.clone()).or_insert(l);
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let (path, l) = self.next_path(false, "", line).unwrap_or_default();
                self.lines.entry(path.clone()).or_insert(l);
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_of_nested_fields() {
        let src = "a: 1\nclusters:\n  - name: x\n    endpoints:\n      - \"1.2.3.4:80\"\n      - \"h:80x\"\n";
        let idx = LineIndex::build(src);
        assert_eq!(idx.line_of("a"), Some(1));
        assert_eq!(idx.line_of("clusters[0].name"), Some(3));
        assert_eq!(idx.line_of("clusters[0].endpoints[1]"), Some(6));
        assert_eq!(idx.line_of("clusters[0].endpoints[7]"), Some(4));
    }
}
