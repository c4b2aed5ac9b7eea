//! Group commit: the queue writers hand their batches to, who commits them,
//! and how each writer learns its result.
//!
//! A batch enters the queue in a [`Slot`]. Whoever finds no leader becomes
//! the leader, takes every queued slot as one group and commits it with one
//! fsync (`Inner::lead_group` in `engine`), then hands the leadership to the
//! first slot still queued. Two kinds of writers share the queue:
//!
//! - **threads** blocked in [`crate::Database::write`]: such a writer leads
//!   itself when no one else does, and otherwise sleeps on its own slot's
//!   condition variable until its result is set or it is handed the lead;
//! - **pending writes** ([`PendingWrite`], from
//!   [`crate::Database::write_pending`]): the caller holds no thread while
//!   the write waits for its group. A per-database committer thread,
//!   started by a pending write when none runs, leads the groups that such
//!   writes open; it ends after `Options::committer_idle` with nothing to
//!   do. The writer awaits the [`PendingWrite`] (a `Future` that needs no
//!   particular runtime) or blocks in [`PendingWrite::wait`].
//!
//! A group mixes both kinds freely; every slot of a group gets the group's
//! verdict (one fsync covers all of them, a failure fails all of them).
//!
//! A pending write's optional hook runs on the committing thread as soon as
//! the outcome is known, before anyone waiting for the write can see it:
//! work that must happen exactly once per committed write (settling a quota
//! reservation, metering) happens even if the `PendingWrite` is dropped.
//! Dropping a `PendingWrite` never cancels its write.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::batch::{CommitOutcome, WriteBatch};
use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::options::Durability;

/// Runs once with a pending write's outcome, on the thread that committed
/// it, before the outcome is handed to the writer (see the module docs). It
/// must not write to the same database: the group that called it is still
/// being finished.
pub(crate) type CommitHook = Box<dyn FnOnce(&Result<CommitOutcome>) + Send + 'static>;

/// Most a leader waits for more batches before taking its group, as a
/// fraction of the last fsync's duration (so a fast disk waits little).
const GATHER_SYNC_DIVISOR: u32 = 4;
/// ... and never longer than this.
const GATHER_MAX: Duration = Duration::from_millis(2);
/// The leader keeps waiting while each step of this length brings batches.
const GATHER_STEP: Duration = Duration::from_micros(100);

/// One writer's batch in the commit queue.
pub(crate) struct Slot {
    batch: Mutex<Option<WriteBatch>>,
    waiter: Waiter,
    /// Set by [`Slot::complete`]: the slot has its result.
    completed: AtomicBool,
}

enum Waiter {
    /// A thread in `Database::write`. It sleeps on `ready` (with the queue's
    /// mutex) and is woken only when its result is set or when it should
    /// lead the next group: never by another writer's commit.
    Thread {
        result: Mutex<Option<Result<CommitOutcome>>>,
        ready: Condvar,
    },
    /// A [`PendingWrite`].
    Pending {
        state: Mutex<PendingState>,
        /// For [`PendingWrite::wait`].
        done: Condvar,
    },
}

struct PendingState {
    result: Option<Result<CommitOutcome>>,
    /// Set once the result has been taken by the writer.
    taken: bool,
    waker: Option<Waker>,
    hook: Option<CommitHook>,
}

impl Slot {
    fn thread(batch: WriteBatch) -> Slot {
        Slot {
            batch: Mutex::new(Some(batch)),
            completed: AtomicBool::new(false),
            waiter: Waiter::Thread {
                result: Mutex::new(None),
                ready: Condvar::new(),
            },
        }
    }

    fn pending(batch: WriteBatch, hook: Option<CommitHook>) -> Slot {
        Slot {
            batch: Mutex::new(Some(batch)),
            completed: AtomicBool::new(false),
            waiter: Waiter::Pending {
                state: Mutex::new(PendingState {
                    result: None,
                    taken: false,
                    waker: None,
                    hook,
                }),
                done: Condvar::new(),
            },
        }
    }

    /// The batch, for the leader of its group (each slot is led once).
    pub(crate) fn take_batch(&self) -> Option<WriteBatch> {
        self.batch.lock().take()
    }

    /// Sets the slot's result. A pending write's hook runs first, then its
    /// waiter is woken; a thread is woken by [`GroupCommit`] under the
    /// queue's mutex (see `lead`).
    pub(crate) fn complete(&self, result: Result<CommitOutcome>) {
        self.completed.store(true, Ordering::SeqCst);
        match &self.waiter {
            Waiter::Thread { result: slot, .. } => *slot.lock() = Some(result),
            Waiter::Pending { state, done } => {
                let hook = state.lock().hook.take();
                if let Some(hook) = hook {
                    // A panicking hook is its caller's bug: it must not stop
                    // this group's other writers from learning their outcome.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        hook(&result);
                    }));
                }
                let waker = {
                    let mut state = state.lock();
                    state.result = Some(result);
                    state.waker.take()
                };
                done.notify_all();
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
        }
    }

    fn is_thread(&self) -> bool {
        matches!(self.waiter, Waiter::Thread { .. })
    }

    /// Wakes a thread writer (its result is set, or it should lead).
    fn notify_thread(&self) {
        if let Waiter::Thread { ready, .. } = &self.waiter {
            ready.notify_one();
        }
    }

    fn take_thread_result(&self) -> Option<Result<CommitOutcome>> {
        match &self.waiter {
            Waiter::Thread { result, .. } => result.lock().take(),
            Waiter::Pending { .. } => None,
        }
    }
}

#[derive(Default)]
pub(crate) struct Queue {
    pending: Vec<Arc<Slot>>,
    leader_active: bool,
    /// Batches in the last group, and how long its fsync took: what
    /// [`Inner::gather`] goes by.
    last_group_len: usize,
    last_sync: Duration,
    /// The database is being dropped: the committer thread ends.
    shutdown: bool,
    /// A committer thread is running (it ends after `committer_idle` with
    /// nothing to do; a pending write starts one if none runs).
    committer_running: bool,
}

/// The commit queue of one database, shared with its committer thread
/// (which holds the database itself only weakly, so dropping the last
/// handle drops the database).
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
    /// Only the gathering leader's timed wait uses it (see `gather`).
    gather_cv: Condvar,
    /// Wakes the committer thread: a pending write is first in the queue
    /// and nobody leads.
    committer_cv: Condvar,
    committer: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    /// Ends the committer thread and fails every write still queued with
    /// [`Error::Closed`]: the database is being dropped, so nobody else can
    /// commit them. Called from the database's `Drop`.
    pub(crate) fn shut_down(&self) {
        let orphans = {
            let mut queue = self.queue.lock();
            queue.shutdown = true;
            self.committer_cv.notify_all();
            std::mem::take(&mut queue.pending)
        };
        for slot in orphans {
            slot.complete(Err(Error::Closed));
            slot.notify_thread();
        }
        if let Some(handle) = self.committer.lock().take() {
            // The committer may itself be dropping the last handle.
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

/// A write queued for group commit by [`crate::Database::write_pending`].
/// Await it (it is a `Future`, independent of any async runtime) or call
/// [`PendingWrite::wait`]. Dropping it does not cancel the write.
#[must_use = "a pending write commits anyway; await it or wait() to learn its outcome"]
pub struct PendingWrite {
    slot: Arc<Slot>,
}

impl std::fmt::Debug for PendingWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingWrite").finish_non_exhaustive()
    }
}

impl PendingWrite {
    fn parts(&self) -> (&Mutex<PendingState>, &Condvar) {
        match &self.slot.waiter {
            Waiter::Pending { state, done } => (state, done),
            Waiter::Thread { .. } => unreachable!("a PendingWrite holds a pending slot"),
        }
    }

    /// Blocks until the write's group is committed (or failed).
    pub fn wait(self) -> Result<CommitOutcome> {
        let (state, done) = self.parts();
        let mut state = state.lock();
        loop {
            if let Some(result) = state.result.take() {
                state.taken = true;
                return result;
            }
            done.wait(&mut state);
        }
    }
}

impl Future for PendingWrite {
    type Output = Result<CommitOutcome>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (state, _) = self.parts();
        let mut state = state.lock();
        if let Some(result) = state.result.take() {
            state.taken = true;
            return Poll::Ready(result);
        }
        assert!(!state.taken, "PendingWrite polled after it completed");
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Inner {
    /// Commits `batch` with its group, blocking this thread: it leads the
    /// group itself when nobody else does.
    pub(crate) fn commit(&self, batch: WriteBatch) -> Result<CommitOutcome> {
        self.check_open()?;
        let slot = Arc::new(Slot::thread(batch));
        let group = &*self.group;
        let mut queue = group.queue.lock();
        queue.pending.push(Arc::clone(&slot));
        loop {
            if let Some(result) = slot.take_thread_result() {
                return result;
            }
            if !queue.leader_active {
                queue = self.lead(group, queue);
                continue;
            }
            let Waiter::Thread { ready, .. } = &slot.waiter else {
                unreachable!("a thread slot")
            };
            ready.wait(&mut queue);
        }
    }

    /// Queues `batch` for the committer thread and returns at once.
    pub(crate) fn commit_pending(
        self: &Arc<Self>,
        batch: WriteBatch,
        hook: Option<CommitHook>,
    ) -> PendingWrite {
        let slot = Arc::new(Slot::pending(batch, hook));
        if let Err(error) = self.check_open() {
            slot.complete(Err(error));
            return PendingWrite { slot };
        }
        let mut queue = self.group.queue.lock();
        if !queue.committer_running {
            // Under the queue's lock, so a committer that decides to end
            // (under the same lock, with nothing queued) and this write
            // cannot miss each other.
            if let Err(error) = self.start_committer() {
                drop(queue);
                slot.complete(Err(error));
                return PendingWrite { slot };
            }
            queue.committer_running = true;
        }
        queue.pending.push(Arc::clone(&slot));
        if !queue.leader_active {
            self.group.committer_cv.notify_one();
        }
        PendingWrite { slot }
    }

    fn start_committer(self: &Arc<Self>) -> Result<()> {
        let group = Arc::clone(&self.group);
        let database = Arc::downgrade(self);
        let idle = self.committer_idle;
        let handle = std::thread::Builder::new()
            .name("aerolith-commit".into())
            .spawn(move || run_committer(&group, &database, idle))
            .map_err(|e| Error::io("spawn commit thread", &self.dir, e))?;
        // A committer that ended on its own is finished: dropping its handle
        // only detaches it.
        *self.group.committer.lock() = Some(handle);
        Ok(())
    }

    /// Leads one group: takes every queued slot (after the gather wait),
    /// commits them, wakes their threads and hands the lead on to the first
    /// slot still queued. Called with the queue locked and no leader.
    fn lead<'g>(
        &self,
        group: &'g GroupCommit,
        mut queue: MutexGuard<'g, Queue>,
    ) -> MutexGuard<'g, Queue> {
        queue.leader_active = true;
        self.gather(group, &mut queue);
        let slots = std::mem::take(&mut queue.pending);
        drop(queue);
        let sync = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.lead_group(&slots)
        })) {
            Ok(sync) => sync,
            Err(_) => {
                // A bug on the commit path. The group's bytes may be partly
                // appended and its state partly built: nothing of it is
                // published, the database is poisoned (so no later group
                // appends after a torn one; a reopen recovers) and every
                // writer of the group learns it, instead of waiting forever
                // for a leader that is gone.
                self.poison();
                for slot in slots.iter().filter(|s| !s.completed.load(Ordering::SeqCst)) {
                    slot.complete(Err(Error::Poisoned));
                }
                Duration::ZERO
            }
        };
        let mut queue = group.queue.lock();
        queue.leader_active = false;
        queue.last_group_len = slots.len();
        queue.last_sync = sync;
        // Wake exactly the threads of this group (their results are set) and
        // whoever should lead the next group. Waking every waiter instead
        // cost each commit a context switch per writer in the queue (64
        // writers: most of the CPU of an insert). Results are set before
        // this lock is taken and threads check theirs under it before
        // sleeping, so no wake-up is lost.
        for done in &slots {
            done.notify_thread();
        }
        match queue.pending.first() {
            Some(next) if next.is_thread() => next.notify_thread(),
            Some(_) => {
                group.committer_cv.notify_one();
            }
            None => {}
        }
        queue
    }

    /// Group commit under fsync: when the last group had several writers,
    /// they are likely on their way back with their next batches (a writer
    /// waits for its fsync, answers its caller, gets the next request). A
    /// leader that took its group at once would split the writers into two
    /// cohorts, each waiting for the other's fsync: two fsyncs per round
    /// trip. So the leader waits while batches keep arriving (each
    /// [`GATHER_STEP`] brings some), at most a quarter of the last fsync's
    /// duration ([`GATHER_MAX`] at most). A single writer, or a clock that
    /// does not move (tests), never waits.
    fn gather(&self, group: &GroupCommit, queue: &mut MutexGuard<'_, Queue>) {
        if !matches!(self.durability, Durability::Always) || queue.last_group_len < 2 {
            return;
        }
        let budget = (queue.last_sync / GATHER_SYNC_DIVISOR).min(GATHER_MAX);
        let step = GATHER_STEP.min(budget);
        if step.is_zero() {
            return;
        }
        let mut waited = Duration::ZERO;
        while waited + step <= budget {
            let before = queue.pending.len();
            // Nobody notifies the leader's wait: it always lasts the step.
            group.gather_cv.wait_for(queue, step);
            waited += step;
            if queue.pending.len() == before {
                break;
            }
        }
    }
}

/// The committer thread: leads whenever writes are queued and nobody leads,
/// until the database is dropped or it has waited `idle` with nothing to do.
fn run_committer(group: &GroupCommit, database: &Weak<Inner>, idle: Duration) {
    let mut queue = group.queue.lock();
    loop {
        if queue.shutdown {
            queue.committer_running = false;
            return;
        }
        if queue.leader_active || queue.pending.is_empty() {
            let waited = group.committer_cv.wait_for(&mut queue, idle);
            if waited.timed_out() && queue.pending.is_empty() && !queue.leader_active {
                // Idle: end. The next pending write starts a new committer.
                queue.committer_running = false;
                return;
            }
            continue;
        }
        let Some(inner) = database.upgrade() else {
            // Being dropped: `shut_down` fails what is queued.
            queue.committer_running = false;
            return;
        };
        let led = inner.lead(group, queue);
        drop(led);
        // Dropping the last handle here runs the database's `Drop`, which
        // takes the queue's lock: release it first.
        drop(inner);
        queue = group.queue.lock();
    }
}
