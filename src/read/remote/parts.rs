//! The requests a set of [`CopyRange`]s needs: a pure function.
//!
//! Ranges that follow each other in the object (one ends where the next
//! begins) are one request, whatever their places in the output; a request
//! longer than the part size is cut into parts, so that parts can go in
//! parallel and a failure costs at most one part. Each part carries the
//! pieces of output it fills, in object order.

use std::ops::Range;

use crate::base::copy_range::CopyRange;

/// One ranged GET: `src` in the object, written to the output as `pieces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub src: Range<u64>,
    /// Cover `src` exactly, in order.
    pub pieces: Vec<CopyRange>,
}

impl Part {
    pub fn byte_len(&self) -> u64 {
        self.src.end - self.src.start
    }
}

/// The parts for `ranges`, sorted by object offset. Empty ranges need no
/// request. `part_size` 0 counts as 1. The caller has checked that every
/// range's end fits in a `u64`.
pub fn plan_parts(ranges: &[CopyRange], part_size: u64) -> Vec<Part> {
    let part_size = part_size.max(1);
    let mut sorted: Vec<CopyRange> = ranges.iter().copied().filter(|r| r.len > 0).collect();
    sorted.sort_by_key(|r| (r.src, r.dst));
    let mut parts = Vec::new();
    let mut current: Option<Part> = None;
    for range in sorted {
        let mut rest = range;
        while rest.len > 0 {
            // Join the current part when the range continues it and the
            // part has room; otherwise start a new one.
            let joins = current
                .as_ref()
                .is_some_and(|p| p.src.end == rest.src && p.byte_len() < part_size);
            if !joins {
                parts.extend(current.take());
                current = Some(Part {
                    src: rest.src..rest.src,
                    pieces: Vec::new(),
                });
            }
            let Some(part) = current.as_mut() else {
                break;
            };
            let take = rest.len.min(part_size - part.byte_len());
            part.pieces.push(CopyRange {
                src: rest.src,
                dst: rest.dst,
                len: take,
            });
            part.src.end += take;
            rest = CopyRange {
                src: rest.src + take,
                dst: rest.dst + take,
                len: rest.len - take,
            };
        }
    }
    parts.extend(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(src: u64, dst: u64, len: u64) -> CopyRange {
        CopyRange { src, dst, len }
    }

    #[test]
    fn adjacent_ranges_are_one_request_whatever_their_output_places() {
        let parts = plan_parts(&[r(100, 0, 10), r(110, 50, 5), r(200, 10, 4)], 1 << 20);
        assert_eq!(
            parts,
            vec![
                Part {
                    src: 100..115,
                    pieces: vec![r(100, 0, 10), r(110, 50, 5)],
                },
                Part {
                    src: 200..204,
                    pieces: vec![r(200, 10, 4)],
                },
            ]
        );
    }

    #[test]
    fn long_requests_are_cut_into_parts() {
        let parts = plan_parts(&[r(0, 1000, 25), r(25, 0, 10)], 10);
        let spans: Vec<_> = parts.iter().map(|p| p.src.clone()).collect();
        assert_eq!(spans, vec![0..10, 10..20, 20..30, 30..35]);
        assert_eq!(parts[2].pieces, vec![r(20, 1020, 5), r(25, 0, 5)]);
        assert_eq!(parts[3].pieces, vec![r(30, 5, 5)]);
    }

    #[test]
    fn empty_and_overlapping_ranges() {
        let parts = plan_parts(&[r(5, 0, 0), r(0, 0, 8), r(4, 8, 8)], 100);
        let spans: Vec<_> = parts.iter().map(|p| p.src.clone()).collect();
        assert_eq!(spans, vec![0..8, 4..12]);
        assert!(plan_parts(&[], 0).is_empty());
    }

    #[test]
    fn pieces_cover_each_part_in_order() {
        let ranges: Vec<CopyRange> = (0..50).map(|i| r(i * 7, 1000 - i * 7, 7)).collect();
        for size in [1, 3, 7, 8, 100, 1 << 20] {
            let parts = plan_parts(&ranges, size);
            let total: u64 = parts.iter().map(Part::byte_len).sum();
            assert_eq!(total, 350);
            for part in &parts {
                assert!(part.byte_len() <= size);
                let mut at = part.src.start;
                for piece in &part.pieces {
                    assert_eq!(piece.src, at);
                    at += piece.len;
                }
                assert_eq!(at, part.src.end);
            }
        }
    }
}
