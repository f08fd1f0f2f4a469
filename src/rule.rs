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
/// contains `*` or `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Substring(String),
    Glob(String),
}

impl Pattern {
    pub fn new(text: &str) -> Pattern {
        if text.contains(['*', '?']) {
            Pattern::Glob(text.to_string())
        } else {
            Pattern::Substring(text.to_string())
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Pattern::Substring(s) | Pattern::Glob(s) => s,
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Substring(s) => name.contains(s.as_str()),
            Pattern::Glob(g) => glob_matches(g.as_bytes(), name.as_bytes()),
        }
    }
}

/// Glob match over the whole name: `*` matches any run of bytes (dots
/// included), `?` exactly one character. Linear backtracking on the last `*`.
fn glob_matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == b'?' {
            // `?` is one character, however many UTF-8 bytes it takes.
            p += 1;
            n += utf8_len(name[n]);
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if p < pattern.len() && pattern[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + utf8_len(name[sn]);
            star = Some((sp, n));
        } else {
            return false;
        }
    }
    n == name.len() && pattern[p..].iter().all(|&c| c == b'*')
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Why a tensor was pruned or kept.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub prune: bool,
    pub reason: Reason,
}

/// The complete prune rule of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneRule {
    pub prune_all: bool,
    pub prune: Vec<Pattern>,
    pub keep: Vec<Pattern>,
}

impl PruneRule {
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
}
