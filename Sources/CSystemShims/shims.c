#include "CSystemShims.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/futex.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(uint32_t) == 4, "futex words are 32 bits");

int CSystemShims_WIFEXITED(int status) { return WIFEXITED(status); }
int CSystemShims_WEXITSTATUS(int status) { return WEXITSTATUS(status); }
int CSystemShims_WIFSIGNALED(int status) { return WIFSIGNALED(status); }
int CSystemShims_WTERMSIG(int status) { return WTERMSIG(status); }

int CSystemShims_futex_wait(uint32_t *word, uint32_t expected, int64_t timeoutNanoseconds) {
    struct timespec ts, *tsp = NULL;
    if (timeoutNanoseconds >= 0) {
        ts.tv_sec = (time_t)(timeoutNanoseconds / 1000000000LL);
        ts.tv_nsec = (long)(timeoutNanoseconds % 1000000000LL);
        tsp = &ts;
    }
    // Not FUTEX_PRIVATE_FLAG: the word may be shared between processes.
    long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, tsp, NULL, 0);
    return r == 0 ? 0 : -1;
}

int CSystemShims_futex_wake(uint32_t *word, int count) {
    return (int)syscall(SYS_futex, word, FUTEX_WAKE, count, NULL, NULL, 0);
}

int CSystemShims_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int CSystemShims_ppoll(struct pollfd *fds, unsigned long count, int64_t timeoutNanoseconds) {
    struct timespec ts, *tsp = NULL;
    if (timeoutNanoseconds >= 0) {
        ts.tv_sec = (time_t)(timeoutNanoseconds / 1000000000LL);
        ts.tv_nsec = (long)(timeoutNanoseconds % 1000000000LL);
        tsp = &ts;
    }
    return ppoll(fds, (nfds_t)count, tsp, NULL);
}
int CSystemShims_eventfd(unsigned int initval, int flags) { return eventfd(initval, flags); }
int CSystemShims_memfd_create(const char *name, unsigned int flags) {
    return (int)syscall(SYS_memfd_create, name, flags);
}
int CSystemShims_close_range(unsigned int first, unsigned int last, int flags) {
    return (int)syscall(SYS_close_range, first, last, flags);
}
int CSystemShims_pidfd_open(pid_t pid, unsigned int flags) {
    return (int)syscall(SYS_pidfd_open, pid, flags);
}
int CSystemShims_limit_descriptors(pid_t pid, unsigned long limit) {
    struct rlimit value;
    if (prlimit(pid, RLIMIT_NOFILE, NULL, &value) != 0) return -1;
    value.rlim_cur = limit;
    return prlimit(pid, RLIMIT_NOFILE, &value, NULL);
}
long CSystemShims_process_vm_read(pid_t pid, void *local, const void *remote, size_t count) {
    struct iovec to = {local, count};
    struct iovec from = {(void *)remote, count};
    return (long)syscall(SYS_process_vm_readv, pid, &to, 1UL, &from, 1UL, 0UL);
}

int CSystemShims_process_vm_read_all(pid_t pid, void *local, const void *remote, size_t count) {
    size_t done = 0;
    while (done < count) {
        long n = CSystemShims_process_vm_read(pid, (char *)local + done, (const char *)remote + done, count - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n == 0) return EFAULT;
        if (errno == EINTR) continue;
        return errno;
    }
    return 0;
}

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int CSystemShims_waitid_pidfd(int pidfd, int options, int *status, pid_t *pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | options) != 0) return -1;
    *pid = info.si_pid;
    if (info.si_pid == 0) { *status = 0; return 0; }
    switch (info.si_code) {
    case CLD_EXITED: *status = (info.si_status & 0xff) << 8; break;
    case CLD_KILLED: *status = info.si_status & 0x7f; break;
    case CLD_DUMPED: *status = (info.si_status & 0x7f) | 0x80; break;
    default: *status = (info.si_status & 0xff) << 8; break;
    }
    return 0;
}

int CSystemShims_set_pdeathsig(int signal) { return prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0); }

int CSystemShims_set_timer_slack(unsigned long nanoseconds) {
    return prctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0);
}

long CSystemShims_timer_slack(void) { return prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0); }

// A new child resolves every libc function it calls for the first time through the dynamic
// linker (lazy binding: a symbol search through every loaded library, 20–80 µs each here),
// and the parent never called most of them, so every child paid again. The child's start and
// end call libc only through these pointers, which are relocated when the program loads.
// Each libc function also costs a new child a page fault on its code (the child does not
// inherit the parent's page-table entries for code), so the simple system calls go through
// `syscall`, which the child needs anyway.
static long (*volatile libc_syscall)(long, ...) = syscall;
static long (*volatile libc_sysconf)(int) = sysconf;
static int (*volatile libc_close)(int) = close;
static int (*volatile libc_unsetenv)(const char *) = unsetenv;
static int (*volatile libc_fflush)(FILE *) = fflush;
static void (*volatile libc_exit)(int) = _exit;
static void (*volatile libc_fpurge)(FILE *) = __fpurge;
static int (*volatile libc_mutex_init)(pthread_mutex_t *, const pthread_mutexattr_t *) = pthread_mutex_init;
static int (*volatile libc_cond_init)(pthread_cond_t *, const pthread_condattr_t *) = pthread_cond_init;
static int (*volatile libc_sigaction)(int, const struct sigaction *, struct sigaction *) = sigaction;

// A system call made here, without libc: a new child that calls libc's `syscall` faults in
// one more page of libc's code. The result, or -1 with errno set.
static long child_syscall(long number, long a1, long a2, long a3, long a4, long a5) {
    long result;
#if defined(__x86_64__)
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    __asm__ volatile("syscall"
                     : "=a"(result)
                     : "a"(number), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = number;
    register long x0 __asm__("x0") = a1;
    register long x1 __asm__("x1") = a2;
    register long x2 __asm__("x2") = a3;
    register long x3 __asm__("x3") = a4;
    register long x4 __asm__("x4") = a5;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory", "cc");
    result = x0;
#else
    return libc_syscall(number, a1, a2, a3, a4, a5);
#endif
    if (result < 0 && result > -4096) {
        errno = (int)-result;
        return -1;
    }
    return result;
}

/// Whether `entry` ("NAME=value") starts with `prefix` (no libc: see above).
static int has_prefix(const char *entry, const char *prefix) {
    while (*prefix != 0) {
        if (*entry++ != *prefix++) return 0;
    }
    return 1;
}

/// Whether `entry` is one a child must not inherit (see the header).
static int scrubbed(const char *entry, const char *marker) {
    if (has_prefix(entry, "OMPI_") || has_prefix(entry, "PMIX_") || has_prefix(entry, "OPAL_")) return 1;
    while (*marker != 0) {
        if (*entry++ != *marker++) return 0;
    }
    return *entry == '=';
}

int CSystemShims_scrub_environment(void) {
    const char *marker = CSYSTEMSHIMS_MARKER;
    extern char **environ;
    char name[256];
    // unsetenv shifts `environ`: look again from the start after each removal.
    for (;;) {
        const char *found = NULL;
        for (char **cursor = environ; cursor != NULL && *cursor != NULL; cursor++) {
            if (scrubbed(*cursor, marker)) { found = *cursor; break; }
        }
        if (found == NULL) return 0;
        size_t length = 0;
        while (found[length] != 0 && found[length] != '=') {
            if (length + 1 >= sizeof name) { errno = ENAMETOOLONG; return -1; }
            name[length] = found[length];
            length++;
        }
        name[length] = 0;
        if (length == 0 || libc_unsetenv(name) != 0) {
            if (length == 0) errno = EINVAL;
            return -1;
        }
    }
}

/// Closes descriptors first…last (last = ~0U: to the end). 0, or -1 with errno.
static int close_descriptors(unsigned int first, unsigned int last) {
    if (first > last) return 0;
    if (child_syscall(SYS_close_range, first, last, 0, 0, 0) == 0) return 0;
    if (errno != ENOSYS) return -1;
    // Kernels before 5.9: close one by one up to the descriptor limit.
    long limit = libc_sysconf(_SC_OPEN_MAX);
    long end = limit > 0 ? limit : 1024;
    if (last != ~0U && (long)last + 1 < end) end = (long)last + 1;
    for (long fd = first; fd < end; fd++) (void)libc_close((int)fd);
    return 0;
}

/// Standard input from /dev/null, as Python's children have it (`BaseProcess._bootstrap`): a
/// child never takes input meant for its parent. Left as it is if /dev/null cannot be opened.
static void standard_input_from_null(void) {
    long fd = child_syscall(SYS_openat, AT_FDCWD, (long)"/dev/null", O_RDONLY, 0, 0);
    if (fd <= 0) return; // 0: descriptor 0 was closed, and now reads /dev/null
    (void)child_syscall(SYS_dup3, fd, 0, 0, 0, 0);
    (void)child_syscall(SYS_close, fd, 0, 0, 0, 0);
}

int CSystemShims_become_child_keeping(pid_t parent, int deathSignal, unsigned int firstToClose,
                                      const int *keep, int keepCount,
                                      const CSystemShims_affinity *affinity) {
    if (affinity != NULL && CSystemShims_set_affinity_of(0, affinity) != 0) return -5;
    // No signal blocked, whatever the forking thread blocked (a thread of a Dispatch or Swift
    // concurrency pool blocks SIGTERM, SIGINT, …: a child forked from it could not be
    // terminated), as a spawned child starts (`posix_spawnattr_setsigmask`).
    unsigned long nothing = 0;
    if (child_syscall(SYS_rt_sigprocmask, SIG_SETMASK, (long)&nothing, 0, sizeof nothing, 0) != 0) return -6;
    if (child_syscall(SYS_prctl, PR_SET_PDEATHSIG, deathSignal, 0, 0, 0) != 0) return -1;
    if ((pid_t)child_syscall(SYS_getppid, 0, 0, 0, 0, 0) != parent) { errno = ESRCH; return -2; }
    unsigned int next = firstToClose;
    for (int i = 0; i < keepCount; i++) {
        if (keep[i] < 0 || (unsigned int)keep[i] < next) continue;
        if (close_descriptors(next, (unsigned int)keep[i] - 1) != 0) return -3;
        next = (unsigned int)keep[i] + 1;
    }
    if (close_descriptors(next, ~0U) != 0) return -3;
    standard_input_from_null();
    if (CSystemShims_scrub_environment() != 0) return -4;
    return 0;
}

_Static_assert(sizeof(CSystemShims_affinity) == sizeof(cpu_set_t), "CSystemShims_affinity holds a cpu_set_t");

int CSystemShims_pin_to_current_cpu(CSystemShims_affinity *saved) {
    // The raw call fills only the kernel's mask size: the rest must read as zero.
    memset(saved, 0, sizeof *saved);
    if (libc_syscall(SYS_sched_getaffinity, 0, sizeof *saved, saved->bits) < 0) return -1;
    int cpu = sched_getcpu();
    if (cpu < 0) return -1;
    if (cpu >= CPU_SETSIZE) { errno = EINVAL; return -1; }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return libc_syscall(SYS_sched_setaffinity, 0, sizeof one, &one) == 0 ? 0 : -1;
}

int CSystemShims_restore_affinity(const CSystemShims_affinity *saved) {
    return CSystemShims_set_affinity_of(0, saved);
}

int CSystemShims_set_affinity_of(pid_t pid, const CSystemShims_affinity *saved) {
    return child_syscall(SYS_sched_setaffinity, pid, sizeof *saved, (long)saved->bits, 0, 0) == 0 ? 0 : -1;
}

int CSystemShims_become_child(pid_t parent, int deathSignal, unsigned int firstToClose) {
    return CSystemShims_become_child_keeping(parent, deathSignal, firstToClose, NULL, 0, NULL);
}

// MARK: a forked child's first steps

#define MAX_FORK_RESET_LOCKS 64
// The locks a forked child re-initialises live side by side here (two or three pages): the
// child reads them all and writes only those not in their pristine state, so a fork whose
// parent held none of them costs no copy-on-write fault for them.
static struct fork_reset_slot {
    pthread_mutex_t mutex;
    pthread_cond_t condition;
} fork_reset_slots[MAX_FORK_RESET_LOCKS];
static int fork_reset_count;
static pthread_mutex_t fork_reset_pristine_mutex;
static pthread_cond_t fork_reset_pristine_condition;
static pthread_condattr_t fork_reset_condattr;

int CSystemShims_fork_reset_lock_slot(void **mutex, void **condition) {
    static pthread_mutex_t registration = PTHREAD_MUTEX_INITIALIZER;
    int result = 0;
    pthread_mutex_lock(&registration);
    if (fork_reset_count == 0) {
        pthread_condattr_init(&fork_reset_condattr);
        pthread_condattr_setclock(&fork_reset_condattr, CLOCK_MONOTONIC);
        pthread_mutex_init(&fork_reset_pristine_mutex, NULL);
        pthread_cond_init(&fork_reset_pristine_condition, &fork_reset_condattr);
    }
    if (fork_reset_count < MAX_FORK_RESET_LOCKS) {
        struct fork_reset_slot *slot = &fork_reset_slots[fork_reset_count];
        pthread_mutex_init(&slot->mutex, NULL);
        pthread_cond_init(&slot->condition, &fork_reset_condattr);
        *mutex = &slot->mutex;
        *condition = &slot->condition;
        __atomic_store_n(&fork_reset_count, fork_reset_count + 1, __ATOMIC_RELEASE);
    } else {
        errno = ENOSPC;
        result = -1;
    }
    pthread_mutex_unlock(&registration);
    return result;
}

/// memcmp without libc (see the pointers above).
static int differs(const void *a, const void *b, size_t length) {
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < length; i++) {
        if (x[i] != y[i]) return 1;
    }
    return 0;
}

void CSystemShims_after_fork_in_child(void) {
    // Bytes the parent had buffered (another thread may have printed between its fflush and
    // the fork) are the parent's to write: the child drops its copy of them.
    if (stdout->_IO_write_ptr != stdout->_IO_write_base) libc_fpurge(stdout);
    if (stderr->_IO_write_ptr != stderr->_IO_write_base) libc_fpurge(stderr);
    // Only the forking thread exists here: a lock another thread of the parent held at the
    // fork (or a condition it waited on) would stay so for ever. Those start over.
    int count = __atomic_load_n(&fork_reset_count, __ATOMIC_ACQUIRE);
    for (int i = 0; i < count; i++) {
        struct fork_reset_slot *slot = &fork_reset_slots[i];
        if (differs(&slot->mutex, &fork_reset_pristine_mutex, sizeof slot->mutex)) {
            (void)libc_mutex_init(&slot->mutex, NULL);
        }
        if (differs(&slot->condition, &fork_reset_pristine_condition, sizeof slot->condition)) {
            (void)libc_cond_init(&slot->condition, &fork_reset_condattr);
        }
    }
}

// glibc's list of open streams (exported; `struct _IO_FILE_plus *`, whose first member is the
// FILE), read without its lock: see CSystemShims_flush_all.
extern FILE *_IO_list_all;

void CSystemShims_flush_all(void) {
    // fflush(NULL) flushes the streams that hold output (`_IO_flush_all`: write pointer past
    // the write base, or wide-oriented). A child that has none skips the call: it costs a new
    // child page faults on libc's code and on the list's lock. A stream opened or closed
    // meanwhile by another thread is one fflush(NULL) would race with too (its own fclose
    // flushes it).
    for (FILE *stream = _IO_list_all; stream != NULL; stream = stream->_chain) {
        if (stream->_mode > 0 || stream->_IO_write_ptr > stream->_IO_write_base) {
            (void)libc_fflush(NULL);
            return;
        }
    }
}

void CSystemShims_exit_child(int status) {
    CSystemShims_flush_all();
    libc_exit(status);
    __builtin_unreachable();
}

int CSystemShims_set_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }

int CSystemShims_affinity_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    return CPU_COUNT(&set);
}

unsigned long long CSystemShims_memory_and_swap_bytes(void) {
    struct sysinfo info;
    if (sysinfo(&info) != 0) return 0;
    return ((unsigned long long)info.totalram + info.totalswap) * (info.mem_unit ? info.mem_unit : 1);
}

pid_t CSystemShims_gettid(void) { return (pid_t)syscall(SYS_gettid); }

int CSystemShims_accept_cloexec(int socket) {
    int fd;
    do { fd = accept4(socket, NULL, NULL, SOCK_CLOEXEC); } while (fd < 0 && errno == EINTR);
    return fd;
}

int CSystemShims_accept_cloexec_from(int socket, void *address, unsigned int *length) {
    int fd;
    socklen_t room = *length;
    do { fd = accept4(socket, (struct sockaddr *)address, &room, SOCK_CLOEXEC); } while (fd < 0 && errno == EINTR);
    *length = room;
    return fd;
}

long long CSystemShims_peer_uid(int socket) {
    struct ucred credentials;
    socklen_t size = sizeof credentials;
    if (getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) return -1;
    return (long long)credentials.uid;
}

static char cleanup_file[4096];
static char cleanup_directory[4096];

static void cleanup_and_exit(int signal) {
    (void)signal;
    if (cleanup_file[0]) unlink(cleanup_file);
    if (cleanup_directory[0]) rmdir(cleanup_directory);
    _exit(0);
}

int CSystemShims_cleanup_on_termination(const char *file, const char *directory) {
    if (strlen(file) >= sizeof cleanup_file || strlen(directory) >= sizeof cleanup_directory) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(cleanup_file, file);
    strcpy(cleanup_directory, directory);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = cleanup_and_exit;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGTERM, &action, NULL) != 0) return -1;
    if (sigaction(SIGHUP, &action, NULL) != 0) return -1;
    return CSystemShims_ignore_interrupts(1);
}

int CSystemShims_robust_list_touches(const void *start, size_t length) {
    struct robust_list_head *head = NULL;
    size_t headLength = 0;
    if (syscall(SYS_get_robust_list, 0, &head, &headLength) != 0 || head == NULL) return -1;
    const char *low = start, *high = (const char *)start + length;
    const char *pending = (const char *)head->list_op_pending;
    if (pending >= low && pending < high) return 1;
    // glibc marks the entries of priority-inheriting mutexes with the pointer's lowest bit.
    struct robust_list *entry = (struct robust_list *)((uintptr_t)head->list.next & ~(uintptr_t)1);
    for (int seen = 0; entry != &head->list && entry != NULL && seen < 4096; seen++) {
        if ((const char *)entry >= low && (const char *)entry < high) return 1;
        entry = (struct robust_list *)((uintptr_t)entry->next & ~(uintptr_t)1);
    }
    return 0;
}

int CSystemShims_ignore_interrupts(int ignore) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = ignore ? SIG_IGN : SIG_DFL;
    sigemptyset(&action.sa_mask);
    return sigaction(SIGINT, &action, NULL);
}

static struct sigaction saved_interrupt_action;
static int interrupt_action_saved = 0;

int CSystemShims_ignore_interrupts_saving(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_IGN;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGINT, &action, &saved_interrupt_action) != 0) return -1;
    interrupt_action_saved = 1;
    return 0;
}

int CSystemShims_restore_interrupts(void) {
    if (!interrupt_action_saved) return CSystemShims_ignore_interrupts(0);
    return sigaction(SIGINT, &saved_interrupt_action, NULL);
}

#define MAX_PASSED_FDS 64

ssize_t CSystemShims_send_with_fds(int socket, const void *bytes, size_t length,
                                   const int *fds, int fdCount) {
    if (fdCount < 0 || fdCount > MAX_PASSED_FDS) { errno = EINVAL; return -1; }
    struct iovec iov = { .iov_base = (void *)bytes, .iov_len = length };
    union { char buf[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fdCount > 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)fdCount);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)fdCount);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)fdCount);
    }
    ssize_t r;
    do { r = sendmsg(socket, &msg, MSG_NOSIGNAL); } while (r < 0 && errno == EINTR);
    return r;
}

ssize_t CSystemShims_recv_with_fds(int socket, void *bytes, size_t length,
                                   int *fds, int maxFds, int *fdCount, int *truncated) {
    struct iovec iov = { .iov_base = bytes, .iov_len = length };
    union { char buf[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)]; struct cmsghdr align; } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t r;
    do { r = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC); } while (r < 0 && errno == EINTR);
    *fdCount = 0;
    *truncated = 0;
    if (r < 0) return r;
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) *truncated = 1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *data = (int *)CMSG_DATA(c);
        for (int i = 0; i < n; i++) {
            if (*fdCount < maxFds) fds[(*fdCount)++] = data[i];
            else { close(data[i]); *truncated = 1; }
        }
    }
    return r;
}

uint32_t CSystemShims_load_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
void CSystemShims_store_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
uint32_t CSystemShims_load_u32_seqcst(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
void CSystemShims_store_u32_seqcst(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
uint32_t CSystemShims_fetch_add_u32(uint32_t *p, uint32_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
uint32_t CSystemShims_exchange_u32(uint32_t *p, uint32_t v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
int CSystemShims_cas_u32(uint32_t *p, uint32_t *expected, uint32_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
uint64_t CSystemShims_load_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
void CSystemShims_store_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
uint64_t CSystemShims_load_u64_seqcst(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
void CSystemShims_store_u64_seqcst(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
int CSystemShims_cas_u64(uint64_t *p, uint64_t *expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
uint64_t CSystemShims_fetch_add_u64(uint64_t *p, uint64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
int64_t CSystemShims_fetch_add_i64(int64_t *p, int64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
void CSystemShims_fence_seqcst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
void CSystemShims_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// MARK: the start-up hook

static int parse_rank(const char *value) {
    if (value == NULL || *value == '\0') return -1;
    char *end = NULL;
    long r = strtol(value, &end, 10);
    if (end == NULL || *end != '\0' || r < 0 || r > 1 << 24) return -1;
    return (int)r;
}

static pid_t root_pid;

// A worker or child that never ran main (spawned, forked by the fork server, an MPI worker
// rank) and crashes with SIGSEGV/SIGBUS says why that may be: the globals of main.swift are
// initialised by main. Then the previous handler (Swift's backtracer, or the default action)
// takes the signal, so the process still dies of it.
static struct sigaction previous_segv, previous_bus;
static const char crash_hint[] =
    "swiftmp: this process crashed (SIGSEGV/SIGBUS). It never ran main() (a .spawn or .forkserver "
    "worker or child, or an MPI worker rank): globals declared in main.swift are uninitialised "
    "here. If the code reads one, declare it in another source file (initialised on first use) "
    "or store the value in the function value.\n";

// Hands a crash signal on to the handler that was there before ours (`previous`, restored).
// A fault happens again when our handler returns, and the previous handler takes it then. A
// signal that was sent (raise, kill, abort: si_code <= 0) does not happen again: the previous
// handler is called here, and the process then dies of the signal by its default action (the
// signal is blocked in the handler; it is delivered when the handler returns). Swift's
// backtracer returns after writing its report, expecting the fault again: a task's
// `raise(SIGSEGV)` would otherwise be survived, and the task would go on. All async-signal-safe.
static void chain_crash_signal(int signal, siginfo_t *info, void *context, const struct sigaction *previous) {
    sigaction(signal, previous, NULL);
    if (info != NULL && info->si_code > 0) return;
    // Unblocked first, as the kernel leaves it for a handler installed with SA_NODEFER (Swift's
    // backtracer is): while its report is written, the crashed process serves the reports's
    // memory reads and recovers from the faults some of them cause (a register that points
    // nowhere). A fault with the signal blocked would kill the process in the middle of the
    // report, and the backtracer process, left waiting for an answer, would never end.
    sigset_t unblocked;
    sigemptyset(&unblocked);
    sigaddset(&unblocked, signal);
    pthread_sigmask(SIG_UNBLOCK, &unblocked, NULL);
    if (previous->sa_flags & SA_SIGINFO) {
        if (previous->sa_sigaction != NULL) previous->sa_sigaction(signal, info, context);
    } else if (previous->sa_handler == SIG_IGN) {
        return;
    } else if (previous->sa_handler != SIG_DFL) {
        previous->sa_handler(signal);
    }
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigemptyset(&fallback.sa_mask);
    sigaction(signal, &fallback, NULL);
    raise(signal);
}

static void crash_hint_handler(int signal, siginfo_t *info, void *context) {
    ssize_t ignored = write(2, crash_hint, sizeof crash_hint - 1);
    (void)ignored;
    chain_crash_signal(signal, info, context, signal == SIGSEGV ? &previous_segv : &previous_bus);
}

// A crash signal's action: `handler` with the signal's details, on the alternate stack, no
// signal blocked (the zeroed mask is glibc's empty set).
static struct sigaction crash_action(void (*handler)(int, siginfo_t *, void *)) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = handler;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    return action;
}

static void install_crash_hint(void) {
    struct sigaction action = crash_action(crash_hint_handler);
    // Best effort: without it a crash is only less explained.
    (void)sigaction(SIGSEGV, &action, &previous_segv);
    (void)sigaction(SIGBUS, &action, &previous_bus);
}

// A pool worker's crash report: on a crash signal the report (Swift's backtracer writes it to
// standard output, or standard error with SWIFT_BACKTRACE=output-to=stderr) goes to the file
// `crash_report_path`, which the parent reads when the worker has ended. The handler opens
// the file, points descriptors 1 and 2 at it and gives the signal to the previous handler
// (Swift's backtracer, or the crash hint above); with `raw_frames` (the backtracer is off) it
// first writes the raw return addresses itself (backtrace_symbols_fd). All async-signal-safe.
static char crash_report_directory[4096];
static char crash_report_path[4096];
static struct sigaction crash_previous[NSIG];
static const int crash_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP };
static int crash_raw_frames;

static void crash_report_handler(int signal, siginfo_t *info, void *context) {
    struct sigaction *previous = &crash_previous[signal];
    // The directory is made at the first crash, private to this user; one that is not ours
    // and private is not used (the report then goes where it would have gone).
    // Twice: the parent removes the directory when it has read another worker's report.
    int fd = -1;
    for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
        struct stat directory;
        (void)mkdir(crash_report_directory, 0700);
        if (lstat(crash_report_directory, &directory) != 0 || !S_ISDIR(directory.st_mode)
            || directory.st_uid != getuid() || (directory.st_mode & 077) != 0) break;
        fd = open(crash_report_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    }
    if (fd >= 0) {
        if (crash_raw_frames) {
            void *frames[64];
            int count = backtrace(frames, 64);
            backtrace_symbols_fd(frames, count, fd);
        }
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    chain_crash_signal(signal, info, context, previous);
}

// A `Process` child: a crash signal the target sends itself (raise, kill) ends the child with
// it, whatever handler the child inherited (Swift's backtracer returns from a sent signal and
// the process would go on). A fault goes to the inherited handler as before.
// What a `Process` child writes of this file's data before its target runs, on one page (each
// page a new child writes is copied): its mark and the handlers its own chain to.
// ForkGuard's lock is here too: every forked child (a pool worker as well) writes it first.
static struct {
    pthread_rwlock_t fork_guard;
    pid_t forked_child;
    struct sigaction replaced;  // what die_of_sent_crash_signals replaced (not on the stack)
    struct sigaction sent_previous[NSIG];
} process_child __attribute__((aligned(4096)));
_Static_assert(offsetof(__typeof__(process_child), sent_previous) + (SIGSEGV + 1) * sizeof(struct sigaction) <= 4096,
               "the crash signals' entries share the mark's page");

void *CSystemShims_fork_guard_lock(void) { return &process_child.fork_guard; }

void CSystemShims_mark_forked_child(void) { process_child.forked_child = CSystemShims_process_id(); }

pid_t CSystemShims_process_id(void) { return (pid_t)child_syscall(SYS_getpid, 0, 0, 0, 0, 0); }

pid_t CSystemShims_forked_child_pid(void) { return process_child.forked_child; }

static void sent_crash_handler(int signal, siginfo_t *info, void *context) {
    chain_crash_signal(signal, info, context, &process_child.sent_previous[signal]);
}

// The action, a constant (crash_action's, the zeroed mask glibc's empty set): a new child
// builds none on its stack.
static const struct sigaction sent_crash_action = {
    .sa_sigaction = sent_crash_handler, .sa_flags = SA_SIGINFO | SA_ONSTACK};

int CSystemShims_die_of_sent_crash_signals(void) {
    struct sigaction *replaced = &process_child.replaced;
    for (size_t i = 0; i < sizeof crash_signals / sizeof crash_signals[0]; i++) {
        int signal = crash_signals[i];
        // One call that installs ours and returns what was there (usually a handler: Swift's
        // backtracer); the rare cases below put it back.
        if (libc_sigaction(signal, &sent_crash_action, replaced) != 0) return -1;
        // Already ours (a child of a child): keep the handler it chains to.
        if ((replaced->sa_flags & SA_SIGINFO) && replaced->sa_sigaction == sent_crash_handler) continue;
        // Ignored or default: a sent signal already does what it should.
        if (!(replaced->sa_flags & SA_SIGINFO) && (replaced->sa_handler == SIG_DFL || replaced->sa_handler == SIG_IGN)) {
            if (libc_sigaction(signal, replaced, NULL) != 0) return -1;
            continue;
        }
        // Copied inline: memcpy would be one more page of libc's code to fault in.
        __builtin_memcpy_inline(&process_child.sent_previous[signal], replaced, sizeof *replaced);
    }
    return 0;
}

void CSystemShims_line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

int CSystemShims_install_crash_report(const char *directory, int raw_frames) {
    // The path by hand, not snprintf: a forked worker runs this at its start, and each page of
    // libc's formatting code it touched was a page fault there.
    char digits[16];
    size_t count = 0;
    for (unsigned long pid = (unsigned long)getpid(); count == 0 || pid > 0; pid /= 10) digits[count++] = (char)('0' + pid % 10);
    size_t directory_length = strlen(directory);
    if (directory_length + 1 > sizeof crash_report_directory || directory_length + 1 + count + 1 > sizeof crash_report_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(crash_report_directory, directory, directory_length + 1);
    memcpy(crash_report_path, directory, directory_length);
    crash_report_path[directory_length] = '/';
    for (size_t i = 0; i < count; i++) crash_report_path[directory_length + 1 + i] = digits[count - 1 - i];
    crash_report_path[directory_length + 1 + count] = '\0';
    crash_raw_frames = raw_frames;
    // backtrace() loads its unwinder on first use (it allocates): not in the handler. Only the
    // raw frames need it: it costs a worker ~0.1 ms at its start (the unwinder's tables read in,
    // page by page, after the fork; `perf`), paid on every pool's start-up.
    if (raw_frames) {
        void *frame[1];
        (void)backtrace(frame, 1);
    }
    struct sigaction action = crash_action(crash_report_handler);
    for (size_t i = 0; i < sizeof crash_signals / sizeof crash_signals[0]; i++) {
        if (libc_sigaction(crash_signals[i], &action, &crash_previous[crash_signals[i]]) != 0) return -1;
    }
    return 0;
}

// Rank 0's exit handler: terminates the worker ranks and finalises MPI (only in the process
// that registered it, not in a child forked from it).
static void mpi_root_exit(void) {
    if (getpid() == root_pid && swiftmp_mpi_root_exit != NULL) swiftmp_mpi_root_exit();
}

__attribute__((constructor))
static void CSystemShims_startup_hook(void) {
    if (swiftmp_startup_entry == NULL) return;  // Multiprocessing is not linked in.
    const char *spec = getenv(CSYSTEMSHIMS_MARKER);
    if (spec != NULL) {
        char copy[512];
        strncpy(copy, spec, sizeof copy - 1);
        copy[sizeof copy - 1] = '\0';
        unsetenv(CSYSTEMSHIMS_MARKER);
        install_crash_hint();
        int status = swiftmp_startup_entry(CSYSTEMSHIMS_ENTRY_SPAWNED, copy);
        fflush(NULL);
        _exit(status);
    }
    if (swiftmp_launch_check != NULL) {
        int status = swiftmp_launch_check();
        if (status != 0) {
            fflush(NULL);
            _exit(status);
        }
    }
    const char *mode = getenv("SWIFTMP_MPI_MODE");
    if (mode != NULL && strcmp(mode, "spmd") == 0) return;
    int rank = parse_rank(getenv("OMPI_COMM_WORLD_RANK"));
    if (rank < 0) rank = parse_rank(getenv("PMIX_RANK"));
    if (rank == 0 && swiftmp_mpi_root_exit != NULL) {
        // Ranks >= 1 wait in MPI_Init for rank 0: it must start MPI and release them at exit
        // even if the program never makes a pool.
        root_pid = getpid();
        atexit(mpi_root_exit);
    }
    if (rank >= 1) {
        install_crash_hint();
        int status = swiftmp_startup_entry(CSYSTEMSHIMS_ENTRY_MPI_WORKER, "");
        if (status >= 0) {  // -1: the library lets this rank run main (SPMD)
            fflush(NULL);
            _exit(status);
        }
    }
}

/* Whether this thread holds ForkGuard's activity (read) side: ForkGuard.whileBlocked lets go
   of it only where it is held. */
static _Thread_local int swiftmp_fork_activity;
int CSystemShims_fork_activity(void) { return swiftmp_fork_activity; }
void CSystemShims_set_fork_activity(int held) { swiftmp_fork_activity = held; }

void CSystemShims_forked_child_reset(void *lock, const void *pristine) {
    *(pthread_rwlock_t *)lock = *(const pthread_rwlock_t *)pristine;
    // Written only when set: the page of this thread's TLS is the parent's until written.
    if (swiftmp_fork_activity != 0) swiftmp_fork_activity = 0;
    CSystemShims_after_fork_in_child();
}

int CSystemShims_fallocate_keep_size(int fd, int64_t offset, int64_t length) {
    return (int)syscall(SYS_fallocate, fd, FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}

int CSystemShims_enable_direct_io(int fd) {
#ifdef STATX_DIOALIGN
    struct statx status;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &status) != 0) return 0;
    if (!(status.stx_mask & STATX_DIOALIGN) || status.stx_dio_offset_align == 0 || status.stx_dio_mem_align == 0)
        return 0;
    unsigned alignment = 4096;
    if (status.stx_dio_offset_align > alignment) alignment = status.stx_dio_offset_align;
    if (status.stx_dio_mem_align > alignment) alignment = status.stx_dio_mem_align;
    // Powers of two up to 64 KiB (what a frame's padding may cost).
    if (alignment > 65536 || (alignment & (alignment - 1)) != 0) return 0;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_DIRECT) != 0) return 0;
    return (int)alignment;
#else
    (void)fd;
    return 0;
#endif
}

int CSystemShims_disable_direct_io(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, flags & ~O_DIRECT);
}

int CSystemShims_advise_huge_pages(void *address, size_t length) {
    return madvise(address, length, MADV_HUGEPAGE);
}

int CSystemShims_current_cpu(void) { return sched_getcpu(); }

int CSystemShims_move_to_cpu(int cpu) {
    cpu_set_t allowed, one;
    if (cpu < 0 || cpu >= CPU_SETSIZE) {
        errno = EINVAL;
        return -1;
    }
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return -1;
    if (!CPU_ISSET(cpu, &allowed)) {
        errno = EINVAL;
        return -1;
    }
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) return -1;
    return sched_setaffinity(0, sizeof allowed, &allowed);
}

// MARK: the Swift runtime's demangler

/// Exported by libswiftCore: with outputBuffer NULL the result is malloc'd; a name it cannot
/// read comes back unchanged (or NULL).
extern char *swift_demangle(
    const char *mangledName, size_t mangledNameLength, char *outputBuffer, size_t *outputBufferSize, uint32_t flags);

char *CSystemShims_swift_demangle_type(const char *name, size_t length) {
    // A type's mangled name lacks the "$s" prefix of a symbol; "D" marks a type mangling.
    size_t total = length + 3;
    char *symbol = malloc(total + 1);
    if (symbol == NULL) return NULL;
    memcpy(symbol, "$s", 2);
    memcpy(symbol + 2, name, length);
    symbol[total - 1] = 'D';
    symbol[total] = 0;
    char *result = swift_demangle(symbol, total, NULL, NULL, 0);
    if (result != NULL && strcmp(result, symbol) == 0) {
        free(result);
        result = NULL;
    }
    free(symbol);
    return result;
}
