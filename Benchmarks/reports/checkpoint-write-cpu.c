/* What writing a checkpoint journal's 16.7 MB costs the writing thread (Benchmarks/reports/
   checkpoint-overhead.md, "Direct writes"): 16.7 MB in frames of FRAME bytes (default 1 MiB),
   through the page cache or direct (O_DIRECT, lengths rounded up to 4 KiB), with or without
   fallocate, then fsync, then close and unlink; each mode ROUNDS times, interleaved. Columns:
   this thread's CPU time (CLOCK_THREAD_CPUTIME_ID) and wall time of the writes, the same for
   fsync, the CPU time of close + unlink (the eviction of the file's pages); write_sys is
   getrusage's tick-based system time. HUGE=1 puts the buffer in a transparent huge page.

     cc -O2 -o checkpoint-write-cpu checkpoint-write-cpu.c
     HUGE=1 nice -n -10 ./checkpoint-write-cpu DIR [ROUNDS [FRAME]]   # DIR on the file system to test
*/
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <time.h>
#include <errno.h>
#include <sys/mman.h>
#include <linux/falloc.h>

#define TOTAL (16700000L)
static long FRAME = 1L << 20;

static double cpu(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static double sys_(void) { struct rusage r; getrusage(RUSAGE_THREAD, &r); return r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void check(long r, const char *what) { if (r < 0) { perror(what); exit(1); } }

/* modes: 0 buffered, 1 buffered+fallocate keep, 2 direct, 3 direct+fallocate keep, 4 direct+fallocate(size), 5 pwritev buffered 16 iov */
static const char *names[] = {"buffered", "buffered+falloc_keep", "direct", "direct+falloc_keep", "direct+falloc_size", "buffered_pwritev_64k_iov"};

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  int rounds = argc > 2 ? atoi(argv[2]) : 10; if (argc > 3) FRAME = atol(argv[3]);
  char *buf; int huge = getenv("HUGE") != NULL; check(posix_memalign((void **)&buf, huge ? (2L<<20) : 4096, FRAME + (2L<<20)) ? -1 : 0, "memalign"); if (huge) check(madvise(buf, FRAME + (2L<<20), MADV_HUGEPAGE), "madvise");
  for (long i = 0; i < FRAME + (2L<<20); i++) buf[i] = (char)(i * 7);
  char path[256]; snprintf(path, sizeof path, "%s/wbench-%d", dir, getpid());
  printf("mode write_cpu_ms write_sys_ms write_wall_ms fsync_cpu_ms fsync_wall_ms close_unlink_cpu_ms\n");
  for (int r = 0; r < rounds; r++) for (int m = 0; m < 6; m++) {
    int direct = m >= 2 && m <= 4;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644);
    check(fd, "open");
    double c0 = cpu(), s0 = sys_(), t0 = now();
    if (m == 1 || m == 3) check(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 32L << 20), "fallocate");
    if (m == 4) check(fallocate(fd, 0, 0, 32L << 20), "fallocate");
    long off = 0;
    while (off < TOTAL) {
      long n = TOTAL - off < FRAME ? TOTAL - off : FRAME;
      if (direct) n = (n + 4095) & ~4095L;
      if (m == 5) {
        struct iovec iov[16]; for (int k = 0; k < 16; k++) { iov[k].iov_base = buf + k * (n / 16); iov[k].iov_len = n / 16; }
        long w = pwritev(fd, iov, 16, off); check(w, "pwritev"); off += w;
      } else { long w = pwrite(fd, buf, n, off); check(w, "pwrite"); off += w; }
    }
    double c1 = cpu(), s1 = sys_(), t1 = now();
    check(fsync(fd), "fsync");
    double c2 = cpu(), t2 = now();
    close(fd); unlink(path);
    double c3 = cpu();
    printf("%s %.2f %.2f %.2f %.2f %.2f %.2f\n", names[m], (c1 - c0) * 1e3, (s1 - s0) * 1e3, (t1 - t0) * 1e3, (c2 - c1) * 1e3, (t2 - t1) * 1e3, (c3 - c2) * 1e3);
  }
  return 0;
}
