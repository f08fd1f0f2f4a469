//! Ranks: the names of rank files and the set of ranks a run processes.

/// Name of rank `rank`'s weights file.
pub fn rank_file_name(rank: u64) -> String {
    format!("rank{rank}.safetensors")
}

/// The rank number of a file named `rank{N}.safetensors`.
pub fn parse_rank_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("rank")?.strip_suffix(".safetensors")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // `rank01` is not a name the original would read for rank 1: it is an
    // ordinary file, copied like any other.
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// Most ranks a `--ranks` list may name (far beyond any real world size).
const MAX_RANKS: u64 = 1 << 20;

/// The set of ranks a run processes (`--ranks 0-3,6`), sorted, unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankSet(Vec<u64>);

impl RankSet {
    /// Parses `0-3,6`: comma-separated ranks and inclusive ranges.
    pub fn parse(text: &str) -> std::result::Result<RankSet, String> {
        let mut ranks = Vec::new();
        for part in text.split(',').map(str::trim) {
            let number = |s: &str| {
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("`{s}` is not a rank number (in `{text}`)"))
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (number(a)?, number(b)?);
                    if a > b {
                        return Err(format!("range `{part}` is empty"));
                    }
                    if b - a >= MAX_RANKS {
                        return Err(format!("range `{part}` is too large"));
                    }
                    ranks.extend(a..=b);
                }
                None => ranks.push(number(part)?),
            }
            // Bounded as a whole, not only per range: `0-1048575,1048576-…`
            // repeated would otherwise grow without limit.
            if ranks.len() as u64 > MAX_RANKS {
                return Err(format!("`{text}` lists more than {MAX_RANKS} ranks"));
            }
        }
        ranks.sort_unstable();
        ranks.dedup();
        Ok(RankSet(ranks))
    }

    /// The ranks, sorted, each once.
    pub fn ranks(&self) -> &[u64] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rank_lists() {
        assert_eq!(RankSet::parse("0-3,6").unwrap().ranks(), &[0, 1, 2, 3, 6]);
        assert_eq!(RankSet::parse("5, 1,1").unwrap().ranks(), &[1, 5]);
        assert!(RankSet::parse("3-1").is_err());
        assert!(RankSet::parse("a").is_err());
        assert!(RankSet::parse("").is_err());
    }

    #[test]
    fn a_rank_list_is_bounded_as_a_whole() {
        let many: Vec<String> = (0..4u64)
            .map(|i| format!("{}-{}", i << 20, (i << 20) + (1 << 20) - 1))
            .collect();
        let err = RankSet::parse(&many.join(",")).unwrap_err();
        assert!(err.contains("lists more than 1048576 ranks"), "{err}");
        assert_eq!(RankSet::parse("0-1048575").unwrap().ranks().len(), 1 << 20);
    }

    #[test]
    fn parses_rank_file_names() {
        assert_eq!(parse_rank_file_name("rank0.safetensors"), Some(0));
        assert_eq!(parse_rank_file_name("rank17.safetensors"), Some(17));
        assert_eq!(parse_rank_file_name("rank.safetensors"), None);
        assert_eq!(parse_rank_file_name("rank01.safetensors"), None);
        assert_eq!(parse_rank_file_name("rank10.safetensors"), Some(10));
        assert_eq!(parse_rank_file_name("rank-1.safetensors"), None);
        assert_eq!(parse_rank_file_name("model.safetensors"), None);
    }
}
