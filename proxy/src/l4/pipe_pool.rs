//! A per-shard pool of non-blocking pipes for splice mode. Creating a pipe costs a syscall and
//! two fds; a proxied connection needs two (one per direction), so they are reused. Only pipes
//! known to be empty come back; a pipe abandoned mid-transfer is closed instead.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sys;

/// Pipe capacity: 64 KiB, the Linux default, stated so that a changed default cannot surprise.
pub const PIPE_CAPACITY: usize = 64 * 1024;
const MAX_POOLED: usize = 256;

#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
    pub fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }
}

#[derive(Debug, Default)]
pub struct PipePool {
    free: RefCell<Vec<Pipe>>,
}

impl PipePool {
    pub fn take(&self) -> io::Result<Pipe> {
        if let Some(p) = self.free.borrow_mut().pop() {
            return Ok(p);
        }
        let (read, write) = sys::pipe()?;
        // Best effort: a smaller pipe only means more splice calls.
        let _ = sys::set_pipe_size(&write, PIPE_CAPACITY);
        Ok(Pipe { read, write })
    }

    /// Returns an empty pipe for reuse.
    pub fn give_back(&self, pipe: Pipe) {
        let mut free = self.free.borrow_mut();
        if free.len() < MAX_POOLED {
            free.push(pipe);
        }
    }

    pub fn pooled(&self) -> usize {
        self.free.borrow().len()
    }
}
