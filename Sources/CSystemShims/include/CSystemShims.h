// Only what Glibc does not import into Swift: macros, variadic syscalls, atomics on raw
// shared memory, SCM_RIGHTS helpers and the start-up hook. Named CSystemShims_<C name>.
#ifndef CSYSTEMSHIMS_H
#define CSYSTEMSHIMS_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <poll.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: wait status macros
int CSystemShims_WIFEXITED(int status);
int CSystemShims_WEXITSTATUS(int status);
int CSystemShims_WIFSIGNALED(int status);
int CSystemShims_WTERMSIG(int status);

// MARK: syscalls without a Glibc import
/// futex(FUTEX_WAIT) on a word that may live in memory shared between processes.
/// `timeoutNanoseconds < 0` waits without limit. Returns 0 or -1 with errno
/// (EAGAIN: the word did not hold `expected`; ETIMEDOUT; EINTR).
int CSystemShims_futex_wait(uint32_t *word, uint32_t expected, int64_t timeoutNanoseconds);
/// futex(FUTEX_WAKE); returns the number of woken waiters or -1 with errno.
int CSystemShims_futex_wake(uint32_t *word, int count);
int CSystemShims_pipe2(int fds[2], int flags);
/// ppoll with a relative timeout in nanoseconds (< 0: without limit) and no signal mask
/// change. Returns what ppoll returns (-1 with errno, EINTR included).
int CSystemShims_ppoll(struct pollfd *fds, unsigned long count, int64_t timeoutNanoseconds);
int CSystemShims_eventfd(unsigned int initval, int flags);
int CSystemShims_memfd_create(const char *name, unsigned int flags);
int CSystemShims_close_range(unsigned int first, unsigned int last, int flags);
int CSystemShims_pidfd_open(pid_t pid, unsigned int flags);
/// Sets the soft RLIMIT_NOFILE of process `pid` (0: this one) with prlimit(2).
int CSystemShims_limit_descriptors(pid_t pid, unsigned long limit);
/// process_vm_readv of one range: copies up to `count` bytes at `remote` in process `pid` to
/// `local`. Returns the bytes copied (fewer when the range ends in an unmapped page) or -1
/// with errno (EPERM: not allowed to read that process; ESRCH: it is gone; EFAULT).
long CSystemShims_process_vm_read(pid_t pid, void *local, const void *remote, size_t count);
/// Reads all `count` bytes at `remote` in process `pid` into `local` (process_vm_readv, again
/// after a short read or EINTR). Returns 0 or an errno (EFAULT for a range that ends early).
int CSystemShims_process_vm_read_all(pid_t pid, void *local, const void *remote, size_t count);
/// waitid(P_PIDFD, fd, …, WEXITED | options). Fills `*status` in waitpid's encoding
/// and `*pid`. Returns 0, or -1 with errno. With WNOHANG and no change, *pid = 0.
int CSystemShims_waitid_pidfd(int pidfd, int options, int *status, pid_t *pid);
/// Sets the calling thread's timer slack (`PR_SET_TIMERSLACK`, in nanoseconds): how late
/// the kernel may end its timed sleeps. The default, 50 µs, makes a 20 µs sleep take ~70 µs.
/// Returns 0, or -1 with errno.
int CSystemShims_set_timer_slack(unsigned long nanoseconds);
/// The CPU the calling thread runs on (sched_getcpu; -1 with errno when unknown).
int CSystemShims_current_cpu(void);
/// Moves the calling process to `cpu` now and lets it run where it could before (its
/// affinity set to that CPU alone, then back): the scheduler then prefers that CPU when it
/// next wakes it. 0, or -1 with errno (EINVAL: `cpu` is not one this process may use).
int CSystemShims_move_to_cpu(int cpu);
/// The calling thread's timer slack in nanoseconds (`PR_GET_TIMERSLACK`), or -1 with errno.
long CSystemShims_timer_slack(void);
int CSystemShims_set_pdeathsig(int signal);
/// The environment variable that makes the start-up hook run a child role (the spawn marker;
/// `ChildLauncher.markerVariable` in Swift).
#define CSYSTEMSHIMS_MARKER "SWIFTMP_WORKER"
/// Removes the variables a child must not inherit inside an mpirun job (`OMPI_*`, `PMIX_*`,
/// `OPAL_*`) and the spawn marker from the environment, without allocating in the caller's
/// heap. Returns 0, or -1 with errno.
int CSystemShims_scrub_environment(void);
/// The start of a new child (right after fork, or first thing in a spawned one): die with
/// the parent (`PR_SET_PDEATHSIG` with `deathSignal`), check that `parent` still lives,
/// close every descriptor from `firstToClose` up, scrub the environment (above).
/// Returns 0; -1 (prctl), -2 (the parent already ended), -3 (close_range) or -4 (the
/// environment), with errno. Calls libc only through pointers relocated at load time, so a
/// forked child does not resolve symbols lazily (see shims.c).
int CSystemShims_become_child(pid_t parent, int deathSignal, unsigned int firstToClose);
/// `fflush(NULL)` if a stream holds output (else no call: a new child that wrote nothing does
/// not fault in libc's stdio code), through a pointer relocated at load time.
void CSystemShims_flush_all(void);
/// The end of a child: `CSystemShims_flush_all` then `_exit(status)`, through pointers
/// relocated at load time (a forked child that calls `_exit` through the PLT resolves it first).
__attribute__((noreturn)) void CSystemShims_exit_child(int status);
/// A thread's CPU affinity (up to 1024 CPUs), saved by `CSystemShims_pin_to_current_cpu`.
typedef struct {
    unsigned long bits[1024 / (8 * sizeof(unsigned long))];
} CSystemShims_affinity;
/// Saves the calling thread's CPU affinity in `saved`, then restricts the thread to the CPU
/// it runs on, so that a child it forks next is queued on that CPU (ProcessLauncher). 0, or
/// -1 with errno, the affinity unchanged (e.g. a machine with more than 1024 CPUs).
int CSystemShims_pin_to_current_cpu(CSystemShims_affinity *saved);
/// Sets the calling thread's CPU affinity back to `saved`. 0, or -1 with errno. Calls libc
/// only through a pointer relocated at load time (a forked child calls it first).
int CSystemShims_restore_affinity(const CSystemShims_affinity *saved);
/// Sets the CPU affinity of thread or process `pid` to `saved`. 0, or -1 with errno.
int CSystemShims_set_affinity_of(pid_t pid, const CSystemShims_affinity *saved);
/// `CSystemShims_become_child`, but descriptors in `keep` (ascending) stay open, and with
/// `affinity` (not NULL) the child first takes that CPU affinity (-5 with errno if it cannot).
int CSystemShims_become_child_keeping(pid_t parent, int deathSignal, unsigned int firstToClose,
                                      const int *keep, int keepCount,
                                      const CSystemShims_affinity *affinity);
/// A process-wide mutex (`*mutex`, a `pthread_mutex_t *`) and condition variable
/// (`*condition`, a `pthread_cond_t *` on CLOCK_MONOTONIC), initialised, that a child
/// re-initialises right after a fork when they are not in their pristine state
/// (`CSystemShims_after_fork_in_child`). They live as long as the process. For locks that
/// the forking thread never holds while it forks. Returns 0, or -1 with errno ENOSPC (64 at most).
int CSystemShims_fork_reset_lock_slot(void **mutex, void **condition);
/// In a child right after `fork()`: drops what the parent had buffered in `stdout` and
/// `stderr` (the parent writes it; the child must not write it again) and re-initialises
/// the locks of `CSystemShims_fork_reset_lock_slot` that a thread held (or waited on) at the
/// fork. Allocates nothing; calls libc through load-time pointers; writes only what it resets.
void CSystemShims_after_fork_in_child(void);
/// In a forked child, first: makes `lock` (a `pthread_rwlock_t *` the forking thread held for
/// writing) a copy of `pristine` (one initialised with the same attributes and never used:
/// what `pthread_rwlock_init` would write, without a call into another page of libc), clears
/// this thread's fork activity, then does `CSystemShims_after_fork_in_child`.
void CSystemShims_forked_child_reset(void *lock, const void *pristine);
int CSystemShims_set_name(const char *name);
/// In a pool worker: a crash signal writes the crash report (Swift's backtracer's output) to
/// the file `<directory>/<this process's pid>` (the directory made then, private) instead of
/// standard output/error, for the parent to read; `raw_frames`: also the raw return addresses
/// (when Swift's backtracer is off). -1 with errno.
int CSystemShims_install_crash_report(const char *directory, int raw_frames);
/// In a `Process` child: a crash signal the child sends itself (raise, kill) ends it with that
/// signal, whatever handler it inherited (Swift's backtracer returns from a sent signal). -1
/// with errno.
int CSystemShims_die_of_sent_crash_signals(void);
/// In a `.fork` child of a `Process`, right after the fork: records this process's pid as
/// the forked child's (`CurrentProcess.prepareForkedChild`). No libc call but `syscall`.
void CSystemShims_mark_forked_child(void);
/// Room for ForkGuard's lock (a `pthread_rwlock_t`, not initialised), on the page a new
/// `Process` child writes anyway (`CSystemShims_mark_forked_child`).
void *CSystemShims_fork_guard_lock(void);
/// getpid() without a call into libc (a new child that calls it faults in another page).
pid_t CSystemShims_process_id(void);
/// The pid `CSystemShims_mark_forked_child` recorded (inherited by a further fork), or 0.
pid_t CSystemShims_forked_child_pid(void);
/// Standard output line-buffered (a pool worker whose output is a pipe, `OutputTagging`).
void CSystemShims_line_buffer_stdout(void);
/// The number of CPUs in this thread's affinity mask (sched_getaffinity), or -1.
int CSystemShims_affinity_cpu_count(void);

/// This machine's memory and swap in bytes (sysinfo), or 0 when sysinfo fails.
unsigned long long CSystemShims_memory_and_swap_bytes(void);
pid_t CSystemShims_gettid(void);

/// accept4(…, SOCK_CLOEXEC), retrying EINTR.
int CSystemShims_accept_cloexec(int socket);
/// The same, with the peer's address in `address` (`*length` bytes of room, then its length).
int CSystemShims_accept_cloexec_from(int socket, void *address, unsigned int *length);
/// The user id of the peer of a connected Unix socket (SO_PEERCRED), or -1 with errno.
long long CSystemShims_peer_uid(int socket);

/// On SIGTERM (and SIGHUP): unlink `file`, remove `directory`, _exit(0); SIGINT ignored.
/// For a server whose owner's death is signalled with PR_SET_PDEATHSIG(SIGTERM): Ctrl-C in a
/// terminal reaches the whole process group, and the server goes with its owner, not before
/// (Python's manager server ignores SIGINT too).
int CSystemShims_cleanup_on_termination(const char *file, const char *directory);
/// Whether the calling thread holds a robust mutex in [`start`, `start + length`): 1 if its
/// robust list (`get_robust_list`) has an entry there, 0 if not, -1 with errno. Memory that
/// holds one must stay mapped: glibc walks the list, through it, at the thread's next
/// robust unlock.
int CSystemShims_robust_list_touches(const void *start, size_t length);
/// SIGINT ignored (`ignore` ≠ 0) or back to its default action; -1 with errno on failure.
int CSystemShims_ignore_interrupts(int ignore);
/// Ignores SIGINT, keeping the action it had for `CSystemShims_restore_interrupts`.
int CSystemShims_ignore_interrupts_saving(void);
/// SIGINT's action as `CSystemShims_ignore_interrupts_saving` found it (its default if
/// that never ran).
int CSystemShims_restore_interrupts(void);

// MARK: the Swift runtime's demangler
/// A Swift mangled type name (as `_mangledTypeName` gives it, without the `$s` prefix) as
/// Swift prints it (`swift_demangle` of libswiftCore, which every Swift program links):
/// a string to free(), or NULL when `name` is not a mangled name.
char *CSystemShims_swift_demangle_type(const char *name, size_t length);

// MARK: descriptor passing (SCM_RIGHTS)
/// Sends `length` bytes and `fdCount` descriptors in one message. Returns bytes sent or -1.
ssize_t CSystemShims_send_with_fds(int socket, const void *bytes, size_t length,
                                   const int *fds, int fdCount);
/// Receives one message; descriptors (at most `maxFds`) land in `fds` with close-on-exec
/// set, their number in `*fdCount`. Returns bytes received (0 = peer closed) or -1.
/// Sets `*truncated` when the message or its descriptors did not fit.
ssize_t CSystemShims_recv_with_fds(int socket, void *bytes, size_t length,
                                   int *fds, int maxFds, int *fdCount, int *truncated);

// MARK: atomics on raw (possibly shared) memory
uint32_t CSystemShims_load_u32(const uint32_t *p);          // acquire
void CSystemShims_store_u32(uint32_t *p, uint32_t v);       // release
uint32_t CSystemShims_load_u32_seqcst(const uint32_t *p);
void CSystemShims_store_u32_seqcst(uint32_t *p, uint32_t v);
uint32_t CSystemShims_fetch_add_u32(uint32_t *p, uint32_t v); // seq_cst
uint32_t CSystemShims_exchange_u32(uint32_t *p, uint32_t v);  // seq_cst
int CSystemShims_cas_u32(uint32_t *p, uint32_t *expected, uint32_t desired); // seq_cst
uint64_t CSystemShims_load_u64(const uint64_t *p);          // acquire
void CSystemShims_store_u64(uint64_t *p, uint64_t v);       // release
uint64_t CSystemShims_load_u64_seqcst(const uint64_t *p);
void CSystemShims_store_u64_seqcst(uint64_t *p, uint64_t v);
uint64_t CSystemShims_fetch_add_u64(uint64_t *p, uint64_t v); // seq_cst
int CSystemShims_cas_u64(uint64_t *p, uint64_t *expected, uint64_t desired); // seq_cst
int64_t CSystemShims_fetch_add_i64(int64_t *p, int64_t v);    // seq_cst
void CSystemShims_fence_seqcst(void);
void CSystemShims_cpu_relax(void);

/* Per-thread flag: this thread holds ForkGuard's activity side. */
int CSystemShims_fork_activity(void);
void CSystemShims_set_fork_activity(int held);

/* fallocate(2) with FALLOC_FL_KEEP_SIZE (blocks allocated beyond the end, the size kept): 0,
   or -1 with errno (EOPNOTSUPP where the file system has no fallocate). The checkpoint
   journal's writer allocates ahead of its writes. */
int CSystemShims_fallocate_keep_size(int fd, int64_t offset, int64_t length);

/* Direct I/O (O_DIRECT) for the checkpoint journal's writes, where the file system says it
   supports it (statx's STATX_DIOALIGN; not tmpfs, for one): sets O_DIRECT on fd and returns the
   alignment (a power of two, 4096 or more) that the writes' offsets, lengths and buffers then
   keep; 0 where direct I/O is not offered or fcntl refuses it (fd unchanged: write through the
   page cache). */
int CSystemShims_enable_direct_io(int fd);
/* Clears O_DIRECT on fd (a write refused it after all): 0, or -1 with errno. */
int CSystemShims_disable_direct_io(int fd);
/* madvise(MADV_HUGEPAGE): 0, or -1 with errno (only advice: a kernel without transparent huge
   pages refuses it). */
int CSystemShims_advise_huge_pages(void *address, size_t length);

// MARK: the start-up hook
/// Set by the library when its Swift entry point exists (weak symbol below).
/// The hook (a constructor in this target) looks at the environment before `main`:
///  - SWIFTMP_WORKER=<spec> : a spawned worker or fork server; runs the entry and _exits.
///  - OMPI_COMM_WORLD_RANK / PMIX_RANK >= 1 (and not SWIFTMP_MPI_MODE=spmd): an MPI worker
///    rank; runs the entry and _exits.
/// The entry returns the exit status. The marker variable is removed before the call.
int swiftmp_startup_entry(int kind, const char *spec) __attribute__((weak));
#define CSYSTEMSHIMS_ENTRY_SPAWNED 1
#define CSYSTEMSHIMS_ENTRY_MPI_WORKER 2
/// On rank 0 of an mpirun job (not SWIFTMP_MPI_MODE=spmd) the hook registers an `atexit`
/// handler that calls this (defined by the library): it stops a live MPI pool, tells every
/// worker rank to terminate, and finalises MPI (or aborts the job if a worker is stuck).
void swiftmp_mpi_root_exit(void) __attribute__((weak));
/// Called by the hook before anything else but a spawned child's entry (defined by the
/// library): non-zero when this process is one of several Slurm tasks that MPI did not
/// launch (`srun -n 4` without `--mpi=pmix`); the hook then _exits with that status instead
/// of running `main` once per task (the library has printed how to launch the program).
int swiftmp_launch_check(void) __attribute__((weak));

#ifdef __cplusplus
}
#endif
#endif
