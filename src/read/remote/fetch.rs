//! Running the parts of one copy: ranged GETs in parallel (at most the
//! folder's permits across every copy), each body written into the output
//! as it arrives, resumed where it stopped when a connection is cut.
//!
//! A part that gets no byte for the stall timeout fails, whatever the
//! client's own retries and our resumes were doing: the timeout wraps them
//! all, and restarts only when a byte arrives.

use std::cell::Cell;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use futures::{stream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::GetResult;
use tokio::sync::Semaphore;
use tokio::time::{timeout_at, Instant};

use super::parts::Part;
use super::problem::kind_of;
use super::{ObjectInfo, RemoteFolder};
use crate::base::error::{Error, RemoteProblem, Result};

/// Wait before the first resume of a cut body; doubled each time.
const RESUME_BACKOFF: Duration = Duration::from_millis(200);

/// Where the fetch of one part stands.
struct PartState {
    /// Bytes of the part written so far.
    done: u64,
    /// New requests made after a cut.
    resumes: u32,
    /// When the part counts as stalled: pushed back each time a byte
    /// arrives.
    deadline: Instant,
}

/// How one request of a part ended.
enum Attempt {
    /// Every byte of the part is written.
    Done,
    /// The body ended early without an error: a cut the client could not
    /// tell from an end.
    Short,
    /// The request, or its body part-way, failed.
    Failed(object_store::Error),
}

pub(super) struct CopyJob<'a> {
    pub folder: &'a RemoteFolder,
    pub location: &'a ObjectPath,
    pub url: &'a str,
    pub info: &'a ObjectInfo,
    pub out: &'a File,
    pub max_resumes: u32,
    pub stall_timeout: Duration,
    /// Shared by every copy from the folder: one per request in flight.
    pub permits: &'a Semaphore,
    pub on_progress: &'a (dyn Fn(u64) + Sync),
    pub cancel: &'a (dyn Fn() -> Result<()> + Sync),
}

impl CopyJob<'_> {
    /// Fetches every part, `jobs` at a time; the first error stops the
    /// rest (their requests are dropped, nothing more is written).
    pub async fn run(&self, parts: &[Part], jobs: usize) -> Result<u64> {
        // The futures all run on the caller's thread (one block_on), so a
        // plain Cell counts.
        let fetched = Cell::new(0u64);
        stream::iter(parts.iter().map(Ok))
            .try_for_each_concurrent(jobs, |part| {
                let fetched = &fetched;
                async move {
                    let got = self.fetch_part(part).await?;
                    fetched.set(fetched.get() + got);
                    Ok::<(), Error>(())
                }
            })
            .await?;
        Ok(fetched.get())
    }

    /// One part: a ranged GET carrying the object's identity; on a body
    /// cut (or a stall past the read timeout), a new GET for the rest.
    async fn fetch_part(&self, part: &Part) -> Result<u64> {
        let mut state = PartState {
            done: 0,
            resumes: 0,
            deadline: Instant::now() + self.stall_timeout,
        };
        loop {
            (self.cancel)()?;
            match self.request_rest(part, &mut state).await? {
                Attempt::Done => return Ok(state.done),
                Attempt::Short if state.resumes >= self.max_resumes => {
                    return Err(self
                        .folder
                        .short_answer(self.url, part.src.clone(), state.done));
                }
                Attempt::Short => {}
                Attempt::Failed(failure) => {
                    // object_store has already retried the request itself;
                    // what is resumed here is a body that stopped part-way,
                    // and only for transfer failures (never a 403, 404 or
                    // 412).
                    let resumable = kind_of(&failure) == RemoteProblem::Transfer
                        && state.done > 0
                        && state.resumes < self.max_resumes;
                    if !resumable {
                        let range = part.src.start + state.done..part.src.end;
                        return Err(self.folder.identity_error(self.url, range, &failure));
                    }
                }
            }
            // The request's permit is released by now: another request may
            // go while this one waits.
            state.resumes += 1;
            tokio::time::sleep(RESUME_BACKOFF * 2u32.pow(state.resumes - 1)).await;
        }
    }

    /// One ranged GET of what the part still lacks, under one of the
    /// folder's permits (released on return), its body written as it
    /// arrives.
    async fn request_rest(&self, part: &Part, state: &mut PartState) -> Result<Attempt> {
        let asked = part.src.start + state.done..part.src.end;
        let options = self.folder.identity_options(self.info, asked.clone());
        let stalled = || self.stalled(asked.clone());
        let _permit = timeout_at(state.deadline, self.permits.acquire())
            .await
            .map_err(|_| stalled())?
            .map_err(|_| stalled())?;
        let answer = timeout_at(
            state.deadline,
            self.folder.store.get_opts(self.location, options),
        )
        .await
        .map_err(|_| stalled())?;
        let result = match answer {
            Err(e) => return Ok(Attempt::Failed(e)),
            Ok(result) => result,
        };
        self.check_answer(&result, &asked)?;
        self.write_body(part, result, state, asked).await
    }

    /// The answer is of the object identified, and of the bytes asked for.
    fn check_answer(&self, result: &GetResult, asked: &Range<u64>) -> Result<()> {
        if !self.info.matches(&result.meta) {
            return Err(self.folder.changed(self.url, asked.clone()));
        }
        if result.range != *asked {
            return Err(Error::Remote {
                url: self.url.to_string(),
                range: Some(asked.clone()),
                kind: RemoteProblem::Transfer,
                problem: format!(
                    "the server answered bytes {}..{}",
                    result.range.start, result.range.end
                ),
            });
        }
        Ok(())
    }

    /// Writes the body's chunks as they arrive, each byte pushing the
    /// stall deadline back; how the body ended says what comes next.
    async fn write_body(
        &self,
        part: &Part,
        result: GetResult,
        state: &mut PartState,
        asked: Range<u64>,
    ) -> Result<Attempt> {
        let mut body = result.into_stream();
        loop {
            let next = timeout_at(state.deadline, body.next())
                .await
                .map_err(|_| self.stalled(part.src.start + state.done..part.src.end))?;
            let bytes = match next {
                None => break,
                Some(Ok(bytes)) => bytes,
                // Every byte arrived before the error (a body that
                // claimed more): nothing is left to ask for.
                Some(Err(_)) if state.done == part.byte_len() => return Ok(Attempt::Done),
                Some(Err(e)) => return Ok(Attempt::Failed(e)),
            };
            (self.cancel)()?;
            let len = bytes.len() as u64;
            if len > part.byte_len() - state.done {
                return Err(Error::Remote {
                    url: self.url.to_string(),
                    range: Some(asked),
                    kind: RemoteProblem::Transfer,
                    problem: "the server sent more bytes than asked".into(),
                });
            }
            self.write(part, state.done, &bytes)?;
            state.done += len;
            if len > 0 {
                state.deadline = Instant::now() + self.stall_timeout;
            }
            (self.on_progress)(len);
            // All asked for is here: the body's end is not awaited, so an
            // error after it (a length that claimed more) cannot make the
            // client ask again.
            if state.done == part.byte_len() {
                return Ok(Attempt::Done);
            }
        }
        match state.done == part.byte_len() {
            true => Ok(Attempt::Done),
            false => Ok(Attempt::Short),
        }
    }

    /// The error of a part that got no byte for the stall timeout.
    fn stalled(&self, range: Range<u64>) -> Error {
        Error::Remote {
            url: self.url.to_string(),
            range: Some(range),
            kind: RemoteProblem::Transfer,
            problem: super::stalled_problem(self.stall_timeout),
        }
    }

    /// Writes `bytes`, which start `at` bytes into `part`, to the output
    /// places of the pieces they cover.
    fn write(&self, part: &Part, at: u64, bytes: &[u8]) -> Result<()> {
        let start = part.src.start + at;
        let end = start + bytes.len() as u64;
        for piece in &part.pieces {
            let from = piece.src.max(start);
            let to = (piece.src + piece.len).min(end);
            if from >= to {
                continue;
            }
            let slice = &bytes[(from - start) as usize..(to - start) as usize];
            // A network chunk into the page cache: microseconds, so done
            // on the polling thread rather than handed to a blocking pool.
            self.out
                .write_all_at(slice, piece.dst + (from - piece.src))
                .map_err(|e| Error::io(&self.out_path(), "cannot write", e))?;
        }
        Ok(())
    }

    /// The output's path for a message (`/proc/self/fd`), as callers pass
    /// an open file.
    fn out_path(&self) -> PathBuf {
        let link = format!("/proc/self/fd/{}", self.out.as_raw_fd());
        std::fs::read_link(link).unwrap_or_else(|_| PathBuf::from("the output file"))
    }
}
