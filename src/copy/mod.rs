//! Copying the kept bytes: free space first, then the jobs on threads, each
//! copying its ranges in the kernel where it can.

pub mod jobs;
pub mod ranges;
pub mod space;
