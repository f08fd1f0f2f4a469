//! Copying the kept bytes: free space first, then the jobs on threads, each
//! copying its ranges in the kernel where it can.

pub(crate) mod jobs;
pub(crate) mod ranges;
pub(crate) mod space;
