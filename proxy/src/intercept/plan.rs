//! A plan: the exact commands an install or uninstall runs, in order. Plans are data, built by
//! pure functions, so `--dry-run`, the golden tests and the files in `kernel-config/` all print
//! the very commands that a real run executes.

use std::fmt::Write as _;

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run a program with these arguments; a non-zero exit stops the plan.
    Run(Vec<String>),
    /// Feed this document to `nft -f -` (applied atomically by the kernel).
    Nft(String),
}

/// Builds a [`Step::Run`] from words.
pub fn run<I, S>(words: I) -> Step
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Step::Run(words.into_iter().map(Into::into).collect())
}

/// Splits a rule written as one string (`"-p tcp --dport 80 -j RETURN"`) into words. Rules
/// we write never contain quoted arguments.
pub fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split_whitespace().map(str::to_string)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn push(&mut self, s: Step) {
        self.steps.push(s);
    }
    pub fn extend(&mut self, other: Plan) {
        self.steps.extend(other.steps);
    }
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The plan as a POSIX shell script body (no shebang), one command per line.
    pub fn to_shell(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            match s {
                Step::Run(argv) => {
                    let line: Vec<String> = argv.iter().map(|a| quote(a)).collect();
                    let _ = writeln!(out, "{}", line.join(" "));
                }
                Step::Nft(doc) => {
                    let _ = write!(out, "nft -f - <<'EOF'\n{doc}EOF\n");
                }
            }
        }
        out
    }
}

/// Quotes a word for the shell when it needs it.
fn quote(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,=+@%".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_rendering_quotes_only_what_needs_it() {
        let mut p = Plan::default();
        p.push(run(["iptables", "-t", "nat", "-N", "SHARDCAR_INBOUND"]));
        p.push(run(["echo", "a b", "it's"]));
        p.push(Step::Nft("table ip x {\n}\n".into()));
        assert_eq!(
            p.to_shell(),
            "iptables -t nat -N SHARDCAR_INBOUND\necho 'a b' 'it'\\''s'\nnft -f - <<'EOF'\ntable ip x {\n}\nEOF\n"
        );
    }
}
