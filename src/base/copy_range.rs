//! The unit of copying: a run of bytes from an input file to an output
//! file. The planner makes them, the copy and the remote fetch carry them
//! out.

/// Bytes to copy from the input file to the output file (file offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyRange {
    /// Where the bytes are in the input file.
    pub src: u64,
    /// Where they go in the output file.
    pub dst: u64,
    /// How many.
    pub len: u64,
}
