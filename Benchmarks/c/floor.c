/* The operating system's floor under our process and IPC figures, in C, measured by
 * Scripts/bench.sh in the same rounds as `swiftmp bench ipc`:
 *
 *   floor RUNS                    fork + _exit + waitpid of this small program
 *                                 (c.process.forkExitWait.tiny), an 8-byte ping-pong between two
 *                                 processes over a socketpair (what our Pipe is) and over two
 *                                 pipe(2)s (c.pipe.pingPong.*; .socketpairSpinning: both sides
 *                                 wait as our library's readers do, spinning 50 µs, then yielding
 *                                 until 1 ms, then sleeping in poll), and a request/reply round trip
 *                                 over a Unix socket bound to a path (what a Manager proxy uses;
 *                                 c.unixSocket.roundTrip)
 *   floor RUNS --padded ANON_KIB LIBRARY...
 *                                 only fork + _exit + waitpid (c.process.forkExitWait.padded),
 *                                 after giving this process the shape of the Swift process it is
 *                                 compared with: every LIBRARY dlopen'ed (the shared libraries the
 *                                 Swift binary loads, so the same file mappings for fork to copy
 *                                 and exit to tear down), then anonymous memory written until this
 *                                 process's RssAnon reaches ANON_KIB KiB (that process's, so about
 *                                 as many private pages whose page-table entries fork copies)
 *
 * Each figure is one JSON line: the median over RUNS of a per-run figure (fork: the median of 50
 * forks; the ping-pongs: the mean of 10 000 round trips after 100 unmeasured ones; the Unix socket:
 * the mean of 2 000 round trips of a 32-byte request and a 16-byte reply), as the Swift side
 * measures its own. Every system call is checked; a failure ends the program with its name. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define FORKS 50
#define PING_ROUNDS 10000
#define WARM_UP 100
#define SOCKET_ROUNDS 2000

static void fail(const char *what) {
    fprintf(stderr, "floor: %s failed: %s\n", what, strerror(errno));
    exit(1);
}

/* Reads or writes exactly `size` bytes, retrying on EINTR and short transfers; 0 at end of file. */
static int read_all(int fd, void *buffer, size_t size) {
    size_t done = 0;
    while (done < size) {
        ssize_t n = read(fd, (char *)buffer + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("read");
        if (n == 0) return 0;
        done += (size_t)n;
    }
    return 1;
}

/* Like read_all on a socket, but waiting as our library's readers do (ReadinessWait): spin
 * for 50 µs, then sched_yield until 1 ms, then sleep in poll. */
static int read_all_spinning(int fd, void *buffer, size_t size) {
    size_t done = 0;
    double started = 0;
    while (done < size) {
        ssize_t n = recv(fd, (char *)buffer + done, size - done, MSG_DONTWAIT);
        if (n > 0) { done += (size_t)n; started = 0; continue; }
        if (n == 0) return 0;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) fail("recv");
        double now = now_seconds();
        if (started == 0) started = now;
        if (now - started < 50e-6) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else if (now - started < 1050e-6) {
            sched_yield();
        } else {
            struct pollfd readable = {.fd = fd, .events = POLLIN};
            if (poll(&readable, 1, -1) < 0 && errno != EINTR) fail("poll");
        }
    }
    return 1;
}

static int spinning = 0;  /* read_message waits as read_all_spinning does */

static int read_message(int fd, void *buffer, size_t size) {
    return spinning ? read_all_spinning(fd, buffer, size) : read_all(fd, buffer, size);
}

static void write_all(int fd, const void *buffer, size_t size) {
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, (const char *)buffer + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("write");
        done += (size_t)n;
    }
}

static void reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) fail("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "floor: child %d did not exit with 0 (status %d)\n", (int)pid, status);
        exit(1);
    }
}

/* Median milliseconds of fork, _exit(0) in the child, waitpid in the parent. */
static double fork_exit_wait(void) {
    double times[FORKS];
    for (int i = 0; i < FORKS; i++) {
        double start = now_seconds();
        pid_t pid = fork();
        if (pid < 0) fail("fork");
        if (pid == 0) _exit(0);
        reap(pid);
        times[i] = (now_seconds() - start) * 1e3;
    }
    return median(times, FORKS);
}

/* A child that echoes `size`-byte messages from `in` to `out` until end of file. */
static pid_t echo_child(int in, int out, int close_in_child[2], size_t size) {
    pid_t pid = fork();
    if (pid < 0) fail("fork");
    if (pid == 0) {
        for (int i = 0; i < 2; i++) {
            if (close_in_child[i] >= 0 && close(close_in_child[i]) != 0) fail("close");
        }
        char message[64];
        while (read_message(in, message, size)) write_all(out, message, size);
        _exit(0);
    }
    return pid;
}

/* Mean microseconds of a round trip of `request` bytes out and `reply` bytes back. */
static double round_trips(int out, int in, int rounds, size_t request, size_t reply) {
    char message[64] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (int i = 0; i < WARM_UP; i++) {
        write_all(out, message, request);
        if (!read_message(in, message, reply)) fail("read (the echo ended early)");
    }
    double start = now_seconds();
    for (int i = 0; i < rounds; i++) {
        write_all(out, message, request);
        if (!read_message(in, message, reply)) fail("read (the echo ended early)");
    }
    return (now_seconds() - start) / rounds * 1e6;
}

static double socketpair_ping_pong(void) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) fail("socketpair");
    int close_in_child[2] = {pair[0], -1};
    pid_t child = echo_child(pair[1], pair[1], close_in_child, 8);
    if (close(pair[1]) != 0) fail("close");
    double micros = round_trips(pair[0], pair[0], PING_ROUNDS, 8, 8);
    if (close(pair[0]) != 0) fail("close");
    reap(child);
    return micros;
}

static double pipes_ping_pong(void) {
    int there[2], back[2];
    if (pipe2(there, O_CLOEXEC) != 0 || pipe2(back, O_CLOEXEC) != 0) fail("pipe2");
    int close_in_child[2] = {there[1], back[0]};
    pid_t child = echo_child(there[0], back[1], close_in_child, 8);
    if (close(there[0]) != 0 || close(back[1]) != 0) fail("close");
    double micros = round_trips(there[1], back[0], PING_ROUNDS, 8, 8);
    if (close(there[1]) != 0 || close(back[0]) != 0) fail("close");
    reap(child);
    return micros;
}

/* A server process accepting one connection on a Unix socket path and answering every 32-byte
 * request with 16 bytes, as a Manager's server answers a proxy. */
static double unix_socket_round_trip(void) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof address.sun_path, "/tmp/swiftmp-floor-%d.sock", (int)getpid());
    unlink(address.sun_path);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0) fail("socket");
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0) fail("bind");
    if (listen(listener, 1) != 0) fail("listen");
    pid_t server = fork();
    if (server < 0) fail("fork");
    if (server == 0) {
        int connection;
        while ((connection = accept(listener, NULL, NULL)) < 0) {
            if (errno != EINTR) fail("accept");
        }
        char request[32], reply[16] = {0};
        while (read_all(connection, request, sizeof request)) write_all(connection, reply, sizeof reply);
        _exit(0);
    }
    if (close(listener) != 0) fail("close");
    int client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (client < 0) fail("socket");
    if (connect(client, (struct sockaddr *)&address, sizeof address) != 0) fail("connect");
    if (unlink(address.sun_path) != 0) fail("unlink");
    double micros = round_trips(client, client, SOCKET_ROUNDS, 32, 16);
    if (close(client) != 0) fail("close");
    reap(server);
    return micros;
}

/* The number of mappings (lines of /proc/self/maps) and RssAnon in KiB of this process. */
static void shape(int *mappings, long *anon_kib) {
    char line[512];
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) fail("fopen /proc/self/maps");
    *mappings = 0;
    while (fgets(line, sizeof line, maps)) {
        if (strchr(line, '\n')) (*mappings)++;
    }
    fclose(maps);
    FILE *status = fopen("/proc/self/status", "r");
    if (!status) fail("fopen /proc/self/status");
    *anon_kib = -1;
    while (fgets(line, sizeof line, status)) {
        if (sscanf(line, "RssAnon: %ld kB", anon_kib) == 1) break;
    }
    fclose(status);
}

static void print_figure(const char *name, const char *unit, double *values, int runs, int with_shape) {
    double low = values[0], high = values[0];
    for (int i = 1; i < runs; i++) {
        if (values[i] < low) low = values[i];
        if (values[i] > high) high = values[i];
    }
    printf("{\"name\":\"%s\",\"value\":%.6g,\"unit\":\"%s\",\"min\":%.6g,\"max\":%.6g", name,
           median(values, runs), unit, low, high);
    if (with_shape) {
        int mappings;
        long anon_kib;
        shape(&mappings, &anon_kib);
        printf(",\"mappings\":%d,\"rss_anon_kib\":%ld", mappings, anon_kib);
    }
    printf("}\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    int runs = run_count(argc, argv);
    double *values = malloc(sizeof(double) * (size_t)runs);
    if (!values) fail("malloc");
    if (argc > 2 && strcmp(argv[2], "--padded") == 0) {
        if (argc < 4) {
            fprintf(stderr, "usage: floor RUNS --padded ANON_KIB LIBRARY...\n");
            return 2;
        }
        for (int i = 4; i < argc; i++) {
            if (!dlopen(argv[i], RTLD_NOW | RTLD_GLOBAL)) {
                fprintf(stderr, "floor: dlopen %s failed: %s\n", argv[i], dlerror());
                return 1;
            }
        }
        int mappings;
        long anon_kib;
        shape(&mappings, &anon_kib);
        long missing = atol(argv[3]) - anon_kib;  /* what the libraries did not already make */
        size_t bytes = missing > 0 ? (size_t)missing * 1024 : 0;
        char *padding = malloc(bytes + 1);
        if (!padding) fail("malloc (padding)");
        for (size_t i = 0; i < bytes; i += 4096) padding[i] = (char)i;  /* one write per page */
        for (int r = 0; r < runs; r++) values[r] = fork_exit_wait();
        print_figure("c.process.forkExitWait.padded", "ms", values, runs, 1);
        free(padding);
        return 0;
    }
    if (argc > 2) {
        fprintf(stderr, "usage: floor RUNS [--padded ANON_KIB LIBRARY...]\n");
        return 2;
    }
    for (int r = 0; r < runs; r++) values[r] = fork_exit_wait();
    print_figure("c.process.forkExitWait.tiny", "ms", values, runs, 1);
    for (int r = 0; r < runs; r++) values[r] = socketpair_ping_pong();
    print_figure("c.pipe.pingPong.socketpair", "µs", values, runs, 0);
    spinning = 1;
    for (int r = 0; r < runs; r++) values[r] = socketpair_ping_pong();
    print_figure("c.pipe.pingPong.socketpairSpinning", "µs", values, runs, 0);
    spinning = 0;
    for (int r = 0; r < runs; r++) values[r] = pipes_ping_pong();
    print_figure("c.pipe.pingPong.pipe2", "µs", values, runs, 0);
    for (int r = 0; r < runs; r++) values[r] = unix_socket_round_trip();
    print_figure("c.unixSocket.roundTrip", "µs", values, runs, 0);
    return 0;
}
