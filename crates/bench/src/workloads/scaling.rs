//! `thread_scaling/N`: N threads churn a window of blocks each and pass every
//! `SCALING_REMOTE_EVERY`-th leaving block to the next thread, which frees it (a remote
//! free). See [`Kind::ThreadScaling`](super::Kind::ThreadScaling).

use core::hint::black_box;
use core::ptr::NonNull;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::thread;
use std::time::Duration;

use super::{Lcg, SCALING_BATCH, SCALING_INBOX, SCALING_REMOTE_EVERY, SCALING_WINDOW, poisoned, threaded_on};
use crate::BenchError;
use crate::subjects::{Subject, ThreadCtx};

/// Blocks (address, request size) passed to the next thread in `thread_scaling`.
#[derive(Clone, Copy)]
struct Batch {
    len: usize,
    blocks: [(usize, usize); SCALING_BATCH],
}

impl Batch {
    const EMPTY: Self = Self { len: 0, blocks: [(0, 0); SCALING_BATCH] };
}

/// The channel ends of one `thread_scaling` thread: to the next thread, from the previous.
type ScalingEnds = (SyncSender<Batch>, Receiver<Batch>);

/// Frees every block of `batch` through `ctx`.
fn free_batch<T: ThreadCtx>(ctx: &mut T, batch: &Batch) -> Result<(), BenchError> {
    for &(address, size) in &batch.blocks[..batch.len] {
        let ptr = NonNull::new(address as *mut u8).ok_or_else(|| BenchError::Thread("null block passed".into()))?;
        // SAFETY: a sender passes only live blocks of this run with their request sizes,
        // and never touches them again.
        unsafe { ctx.free(ptr, size)? };
    }
    Ok(())
}

/// Frees every batch already waiting in `rx`.
fn drain_inbox<T: ThreadCtx>(ctx: &mut T, rx: &Receiver<Batch>) -> Result<(), BenchError> {
    loop {
        match rx.try_recv() {
            Ok(batch) => free_batch(ctx, &batch)?,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(()),
        }
    }
}

/// Sends `batch` to the next thread; while its inbox is full, frees what waits in our own
/// (so a ring of full inboxes cannot deadlock) and yields.
fn pass_batch<T: ThreadCtx>(ctx: &mut T, ends: &ScalingEnds, mut batch: Batch) -> Result<(), BenchError> {
    loop {
        match ends.0.try_send(batch) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(back)) => {
                batch = back;
                drain_inbox(ctx, &ends.1)?;
                thread::yield_now();
            }
            Err(TrySendError::Disconnected(_)) => return Err(BenchError::Thread("next thread gone".into())),
        }
    }
}

/// `thread_scaling/N`: see [`Kind::ThreadScaling`]. Thread `i` sends to thread
/// `(i + 1) % threads`; when done it sends its last partial batch, drops its sender, frees
/// its window and then frees what arrives until its previous thread has hung up too. All of
/// it is timed: a run ends when every block is back.
///
/// # Errors
/// As [`run`](super::run).
pub fn thread_scaling_on<S: Subject>(
    run: &Arc<S::Run>,
    threads: usize,
    per_thread: usize,
) -> Result<Duration, BenchError> {
    let (mut senders, mut receivers) = (Vec::with_capacity(threads), Vec::with_capacity(threads));
    for _ in 0..threads {
        let (tx, rx) = sync_channel::<Batch>(SCALING_INBOX);
        senders.push(tx);
        receivers.push(rx);
    }
    senders.rotate_left(1 % threads.max(1));
    let ends: Vec<std::sync::Mutex<Option<ScalingEnds>>> =
        senders.into_iter().zip(receivers).map(|ends| std::sync::Mutex::new(Some(ends))).collect();
    let ends = Arc::new(ends);
    threaded_on::<S>(run, threads, move |index, ctx| {
        let mine = ends[index].lock().map_err(|_| poisoned())?.take();
        let mine = mine.ok_or_else(|| BenchError::Thread("channel ends taken twice".into()))?;
        let mut rng = Lcg(0x5CA1_AB1E ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut window = [(0usize, 0usize); SCALING_WINDOW];
        let mut out = Batch::EMPTY;
        let mut leaving = 0u64;
        let result = (|| {
            for _ in 0..per_thread {
                let slot = rng.next() % SCALING_WINDOW;
                let (address, size) = core::mem::take(&mut window[slot]);
                if address != 0 {
                    leaving += 1;
                    if leaving.is_multiple_of(SCALING_REMOTE_EVERY) {
                        out.blocks[out.len] = (address, size);
                        out.len += 1;
                        if out.len == SCALING_BATCH {
                            drain_inbox(ctx, &mine.1)?;
                            pass_batch(ctx, &mine, out)?;
                            out = Batch::EMPTY;
                        }
                    } else {
                        let ptr =
                            NonNull::new(address as *mut u8).ok_or_else(|| BenchError::Thread("null slot".into()))?;
                        // SAFETY: the window holds live blocks of `ctx` with their request sizes.
                        unsafe { ctx.free(ptr, size)? };
                    }
                }
                let size = rng.scaling_size();
                window[slot] = (black_box(ctx.alloc(size)?).as_ptr() as usize, size);
            }
            if out.len > 0 {
                pass_batch(ctx, &mine, out)?;
            }
            Ok(())
        })();
        let (tx, rx) = mine;
        drop(tx);
        for &(address, size) in &window {
            if let Some(ptr) = NonNull::new(address as *mut u8) {
                // SAFETY: the window holds live blocks of `ctx` with their request sizes.
                unsafe { ctx.free(ptr, size)? };
            }
        }
        result?;
        while let Ok(batch) = rx.recv() {
            free_batch(ctx, &batch)?;
        }
        Ok(())
    })
}
