//! Which tensors are pruned.
//!
//! The default rule is the original tool's, kept exactly: a tensor is pruned
//! when its name *contains* (substring, not suffix) any of
//! [`PRUNABLE_WEIGHTS`]. So `attention.qkv.weights_scaling_factor` is pruned
//! too, while `attention.dense.weight` (the real output projection) is kept.
//! `--prune_all` prunes everything. User patterns only add to the rule
//! (`--prune`) or carve exceptions out of it (`--keep`); keep always wins.

use std::fmt;

/// Name fragments the original `trtllm-prune` empties.
pub const PRUNABLE_WEIGHTS: [&str; 5] = [
    "attention.qkv.weight",
    "attention.proj.weight",
    "mlp.fc.weight",
    "mlp.proj.weight",
    "mlp.gate.weight",
];

/// A user pattern: a substring, or a glob over the whole name when it
/// contains `*`, `?` or `[`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pattern {
    /// Matches a name that contains it.
    Substring(String),
    /// Matches a whole name: `*` any run of characters, `?` one, `[...]`
    /// one of a set.
    Glob(String),
}

impl Pattern {
    /// The pattern `text` is: a glob when it holds `*`, `?` or `[`.
    pub fn new(text: &str) -> Pattern {
        if text.contains(['*', '?', '[']) {
            Pattern::Glob(text.to_string())
        } else {
            Pattern::Substring(text.to_string())
        }
    }

    /// The pattern as the user gave it.
    pub fn text(&self) -> &str {
        match self {
            Pattern::Substring(s) | Pattern::Glob(s) => s,
        }
    }

    /// Whether it matches the tensor name `name`.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Substring(s) => name.contains(s.as_str()),
            Pattern::Glob(g) => glob_matches(g, name),
        }
    }
}

/// Glob match over the whole name, as a shell matches a file name (but
/// `*` crosses dots): `*` any run of characters, `?` exactly one, `[fg]`
/// one of a set, `[a-z]` a range, `[!0-9]` or `[^0-9]` anything else; `]`
/// first in a set is literal. A `[` without its `]` is a literal `[`.
/// Linear backtracking on the last `*`.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => match class_matches(&pattern[p..], name[n]) {
                Some((hit, len)) => hit.then_some(len),
                None => (name[n] == '[').then_some(1),
            },
            Some(&c) => (c == name[n]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                p += len;
                n += 1;
            }
            (None, Some((sp, sn))) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, n));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether `c` is in the bracket expression at the start of `pattern`,
/// and the expression's length; `None` when the `[` is not closed.
fn class_matches(pattern: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negated = matches!(pattern.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let &start = pattern.get(i)?;
        if start == ']' && !first {
            return Some((hit != negated, i + 1));
        }
        first = false;
        match (pattern.get(i + 1), pattern.get(i + 2)) {
            (Some('-'), Some(&end)) if end != ']' => {
                hit |= (start..=end).contains(&c);
                i += 3;
            }
            _ => {
                hit |= start == c;
                i += 1;
            }
        }
    }
}

/// Why a tensor was pruned or kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Matched one of the original tool's substrings.
    Default(&'static str),
    /// `--prune_all` was given.
    PruneAll,
    /// Matched a `--prune` pattern.
    PrunePattern(String),
    /// Matched a `--keep` pattern.
    KeepPattern(String),
    /// Matched nothing: kept.
    NoMatch,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Default(s) => write!(f, "default rule `{s}`"),
            Reason::PruneAll => f.write_str("--prune_all"),
            Reason::PrunePattern(p) => write!(f, "--prune `{p}`"),
            Reason::KeepPattern(p) => write!(f, "--keep `{p}`"),
            Reason::NoMatch => f.write_str("no rule matched"),
        }
    }
}

/// The decision for one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the tensor is pruned.
    pub prune: bool,
    /// Why.
    pub reason: Reason,
}

/// The complete prune rule of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneRule {
    /// Prune every tensor a `keep` pattern does not match (`--prune_all`).
    pub prune_all: bool,
    /// Prune what these match, on top of the original tool's rule
    /// (`--prune`).
    pub prune: Vec<Pattern>,
    /// Keep what these match, whatever else matches (`--keep`).
    pub keep: Vec<Pattern>,
}

impl PruneRule {
    /// The original tool's rule with `prune_all`, and the `prune` and
    /// `keep` patterns (see the fields).
    pub fn new(prune_all: bool, prune: Vec<Pattern>, keep: Vec<Pattern>) -> PruneRule {
        PruneRule {
            prune_all,
            prune,
            keep,
        }
    }

    /// The original tool's rule, optionally with `--prune_all`.
    pub fn original(prune_all: bool) -> PruneRule {
        PruneRule {
            prune_all,
            ..PruneRule::default()
        }
    }

    /// The user patterns that match none of `names`, spelled as given on
    /// the command line (`--prune `x``): almost always a typo.
    pub fn unmatched<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let patterns: Vec<(&str, &Pattern)> = self
            .prune
            .iter()
            .map(|p| ("--prune", p))
            .chain(self.keep.iter().map(|p| ("--keep", p)))
            .collect();
        let mut matched = vec![false; patterns.len()];
        for name in names {
            for (hit, (_, p)) in matched.iter_mut().zip(&patterns) {
                *hit = *hit || p.matches(name);
            }
            if matched.iter().all(|&m| m) {
                break;
            }
        }
        patterns
            .iter()
            .zip(matched)
            .filter(|(_, hit)| !hit)
            .map(|((flag, p), _)| format!("{flag} `{}`", p.text()))
            .collect()
    }

    /// Whether the rule prunes `name`: [`PruneRule::decide`] without the
    /// reason (and without allocating), for planning.
    pub fn prunes(&self, name: &str) -> bool {
        if self.keep.iter().any(|p| p.matches(name)) {
            return false;
        }
        self.prune_all
            || PRUNABLE_WEIGHTS.iter().any(|w| name.contains(w))
            || self.prune.iter().any(|p| p.matches(name))
    }

    /// Whether the tensor `name` is pruned, and why.
    pub fn decide(&self, name: &str) -> Decision {
        if let Some(p) = self.keep.iter().find(|p| p.matches(name)) {
            return Decision {
                prune: false,
                reason: Reason::KeepPattern(p.text().to_string()),
            };
        }
        let reason = if self.prune_all {
            Reason::PruneAll
        } else if let Some(w) = PRUNABLE_WEIGHTS.iter().find(|w| name.contains(*w)) {
            Reason::Default(w)
        } else if let Some(p) = self.prune.iter().find(|p| p.matches(name)) {
            Reason::PrunePattern(p.text().to_string())
        } else {
            return Decision {
                prune: false,
                reason: Reason::NoMatch,
            };
        };
        Decision {
            prune: true,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rule_is_substring_not_suffix() {
        let rule = PruneRule::original(false);
        let l = "transformer.layers.3.";
        assert!(rule.decide(&format!("{l}attention.qkv.weight")).prune);
        assert!(
            rule.decide(&format!("{l}attention.qkv.weights_scaling_factor"))
                .prune
        );
        assert!(rule.decide(&format!("{l}mlp.gate.weight")).prune);
        assert!(!rule.decide(&format!("{l}attention.dense.weight")).prune);
        assert!(!rule.decide(&format!("{l}attention.qkv.bias")).prune);
        assert!(!rule.decide(&format!("{l}mlp.router.weight")).prune);
        assert!(!rule.decide("transformer.vocab_embedding.weight").prune);
        assert!(!rule.decide("lm_head.weight").prune);
    }

    #[test]
    fn keep_wins_over_prune_all_and_patterns() {
        let rule = PruneRule {
            prune_all: true,
            prune: vec![Pattern::new("dense")],
            keep: vec![Pattern::new("*layernorm*")],
        };
        let d = rule.decide("transformer.layers.0.input_layernorm.weight");
        assert_eq!(
            d,
            Decision {
                prune: false,
                reason: Reason::KeepPattern("*layernorm*".into())
            }
        );
        assert!(rule.decide("lm_head.weight").prune);
    }

    #[test]
    fn prune_pattern_adds_to_default_rule() {
        let rule = PruneRule {
            prune: vec![Pattern::new("attention.dense.weight")],
            ..PruneRule::default()
        };
        let d = rule.decide("transformer.layers.1.attention.dense.weight");
        assert_eq!(
            d.reason,
            Reason::PrunePattern("attention.dense.weight".into())
        );
        assert!(
            !rule
                .decide("transformer.layers.1.attention.dense.bias")
                .prune
        );
    }

    #[test]
    fn names_the_patterns_that_match_nothing() {
        let rule = PruneRule {
            prune_all: false,
            prune: vec![Pattern::new("dense"), Pattern::new("*.bais")],
            keep: vec![Pattern::new("lm_head"), Pattern::new("norm")],
        };
        let names = ["a.attention.dense.weight", "lm_head.weight"];
        assert_eq!(rule.unmatched(names), ["--prune `*.bais`", "--keep `norm`"]);
        assert!(PruneRule::original(false).unmatched(names).is_empty());
    }

    #[test]
    fn glob_matches_whole_name() {
        let g = |p: &str, n: &str| Pattern::new(p).matches(n);
        assert!(g("*.weight", "a.b.weight"));
        assert!(!g("*.weight", "a.b.weight.x"));
        assert!(g(
            "transformer.layers.?.mlp*",
            "transformer.layers.7.mlp.fc.weight"
        ));
        assert!(!g(
            "transformer.layers.?.mlp*",
            "transformer.layers.17.mlp.fc.weight"
        ));
        assert!(g("*", ""));
        assert!(g("a*b*c", "aXbYbZc"));
        assert!(!g("a*b*c", "aXbYbZ"));
        assert!(g("?", "é"));
        // Without wildcards a pattern is a substring, like the original rule.
        assert!(g("lm_head", "lm_head.weight"));
        assert_eq!(
            Pattern::new("lm_head"),
            Pattern::Substring("lm_head".into())
        );
    }

    #[test]
    fn glob_bracket_classes() {
        let g = |p: &str, n: &str| Pattern::new(p).matches(n);
        assert!(g("*mlp.[fg]*", "transformer.layers.0.mlp.fc.weight"));
        assert!(g("*mlp.[fg]*", "transformer.layers.0.mlp.gate.weight"));
        assert!(!g("*mlp.[fg]*", "transformer.layers.0.mlp.proj.weight"));
        assert!(g("layers.[0-3].*", "layers.2.mlp"));
        assert!(!g("layers.[0-3].*", "layers.7.mlp"));
        assert!(g("layers.[!0-3].*", "layers.7.mlp"));
        assert!(g("layers.[^0-3].*", "layers.7.mlp"));
        assert!(!g("layers.[!0-3].*", "layers.1.mlp"));
        assert!(g("a[]]b", "a]b"));
        assert!(g("a[-x]b", "a-b"));
        assert!(g("[é]", "é"));
        // An unclosed `[` is itself.
        assert!(g("x[1", "x[1"));
        assert!(!g("x[1", "x1"));
        assert_eq!(Pattern::new("a[0]"), Pattern::Glob("a[0]".into()));
    }
}
