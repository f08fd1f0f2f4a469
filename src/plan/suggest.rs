//! Patterns to suggest when a rule prunes nothing: the folder's largest
//! families of weight matrices, named the way `--prune` takes them. Pure:
//! names and sizes in, patterns out.
//!
//! A family is what a tensor's name says after its last numeric component
//! (the layer or expert index): `model.layers.7.mlp.down_proj.weight` is
//! of the family `*.mlp.down_proj.weight`. Only matrices (two dimensions or
//! more) count: norms and biases are small, and pruning them buys nothing.

use std::collections::HashMap;

use crate::plan::rule::Pattern;
use crate::read::header::TensorEntry;

/// One family of weights, with the pattern that selects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Family {
    /// A `--prune` pattern matching every tensor of the family.
    pub pattern: String,
    pub tensors: usize,
    pub bytes: u64,
}

/// The `limit` largest families of matrices among `tensors`, largest first;
/// each pattern is checked to match its tensors with the rule's own matcher,
/// so it works as typed.
pub(crate) fn largest_families<'a>(
    tensors: impl IntoIterator<Item = TensorEntry<'a>>,
    limit: usize,
) -> Vec<Family> {
    let mut families: HashMap<String, (usize, u64, &'a str)> = HashMap::new();
    for t in tensors {
        if t.shape().len() < 2 || t.byte_len() == 0 {
            continue;
        }
        let Some(pattern) = family_pattern(t.name()) else {
            continue;
        };
        let entry = families.entry(pattern).or_insert((0, 0, t.name()));
        entry.0 += 1;
        entry.1 = entry.1.saturating_add(t.byte_len());
    }
    let mut found: Vec<Family> = families
        .into_iter()
        .filter(|(pattern, (_, _, example))| Pattern::new(pattern).matches(example))
        .map(|(pattern, (tensors, bytes, _))| Family {
            pattern,
            tensors,
            bytes,
        })
        .collect();
    found.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then_with(|| a.pattern.cmp(&b.pattern))
    });
    found.truncate(limit);
    found
}

/// `*.<rest>` after the last all-digit component of `name`, or the name
/// itself when it has none. `None` for a name a shell's single quotes or the
/// glob syntax would change (quotes, glob characters, controls).
fn family_pattern(name: &str) -> Option<String> {
    if name
        .chars()
        .any(|c| matches!(c, '\'' | '*' | '?' | '[' | ']' | '\\') || c.is_control())
    {
        return None;
    }
    let parts: Vec<&str> = name.split('.').collect();
    let last_index = parts
        .iter()
        .rposition(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    match last_index {
        Some(i) if i + 1 < parts.len() => Some(format!("*.{}", parts[i + 1..].join("."))),
        Some(_) => None,
        None => Some(name.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::header::Dtype;

    fn tensor<'a>(name: &'a str, shape: &'a [u64]) -> TensorEntry<'a> {
        TensorEntry::for_test(name, Dtype::BF16, shape, 0)
    }

    #[test]
    fn families_are_named_after_the_last_index_and_ranked_by_size() {
        let mut specs: Vec<(String, &[u64])> = Vec::new();
        for l in 0..3 {
            specs.push((format!("model.layers.{l}.mlp.down_proj.weight"), &[64, 32]));
            specs.push((
                format!("model.layers.{l}.self_attn.q_proj.weight"),
                &[32, 32],
            ));
            specs.push((format!("model.layers.{l}.input_layernorm.weight"), &[32]));
            for e in 0..2 {
                specs.push((format!("model.layers.{l}.experts.{e}.w1.weight"), &[8, 8]));
            }
        }
        specs.push(("lm_head.weight".to_string(), &[100, 32]));
        let tensors: Vec<TensorEntry> = specs.iter().map(|(n, s)| tensor(n, s)).collect();
        let found = largest_families(tensors.iter().copied(), 3);
        let patterns: Vec<&str> = found.iter().map(|f| f.pattern.as_str()).collect();
        assert_eq!(
            patterns,
            [
                "*.mlp.down_proj.weight",
                "lm_head.weight",
                "*.self_attn.q_proj.weight"
            ]
        );
        assert_eq!((found[0].tensors, found[0].bytes), (3, 3 * 64 * 32 * 2));
        // Norms (one dimension) are never suggested; experts are one family.
        let all = largest_families(tensors.iter().copied(), 10);
        assert!(all.iter().all(|f| !f.pattern.contains("layernorm")));
        assert!(all
            .iter()
            .any(|f| f.pattern == "*.w1.weight" && f.tensors == 6));
    }

    #[test]
    fn names_a_shell_or_the_glob_would_change_are_not_suggested() {
        let tensors = [
            tensor("a.0.it's.weight", &[4, 4]),
            tensor("b.0.x[1].weight", &[4, 4]),
            tensor("c.0.ok.weight", &[4, 4]),
        ];
        let found = largest_families(tensors.iter().copied(), 5);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].pattern, "*.ok.weight");
    }
}
