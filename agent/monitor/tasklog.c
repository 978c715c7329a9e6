/* Log entries "<time> <stream> <line>\n", each written with one writev to
 * a file opened O_APPEND; rotation renames log.(N-2) -> log.(N-1) ... log ->
 * log.1 before a write that would take log past its maximum size. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agent/monitor/tasklog.h"

#define LOG_NAME       "log"
#define DRAIN_MAX_READ 1024 /* reads of up to 16 KiB each */

static void __attribute__((format(printf, 2, 3)))
set_error(struct mon_tasklog *l, const char *fmt, ...)
{
    if (l->failing)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->errmsg, sizeof(l->errmsg), fmt, ap);
    va_end(ap);
    l->failing = true;
    l->error_new = true;
}

/* Days since 1970-01-01 to a civil date (Howard Hinnant's
 * civil_from_days). gmtime_r would link glibc's time-zone code into the
 * static binary: 136 KiB more resident text for each monitor. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void mon_tasklog_stamp(char *out, const struct timespec *ts)
{
    int64_t days = ts->tv_sec / 86400, secs = ts->tv_sec % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    int64_t year;
    unsigned month, day;
    civil_from_days(days, &year, &month, &day);
    snprintf(out, MON_STAMP_SIZE, "%04lld-%02u-%02uT%02d:%02d:%02d.%09ldZ", (long long)year, month,
             day, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), (long)ts->tv_nsec);
}

static int open_log(struct mon_tasklog *l, bool truncate)
{
    int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0);
    l->fd = openat(l->dirfd, LOG_NAME, flags, 0640);
    struct stat st;
    if (l->fd < 0 || fstat(l->fd, &st) < 0) {
        set_error(l, "open \"%s\": %s", LOG_NAME, strerror(errno));
        if (l->fd >= 0)
            close(l->fd);
        l->fd = -1;
        return -1;
    }
    l->size = (uint64_t)st.st_size;
    return 0;
}

void mon_tasklog_open(struct mon_tasklog *l, int dirfd, uint64_t max_size, unsigned max_files)
{
    *l = (struct mon_tasklog){
        .dirfd = dirfd,
        .fd = -1,
        .max_size = max_size,
        .max_files = max_files,
    };
    open_log(l, false);
}

void mon_tasklog_close(struct mon_tasklog *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
}

/* Shifts the rotated copies up by one, the oldest falling off, and starts a
 * new log; with max_files 1 the log is only emptied. */
static void rotate(struct mon_tasklog *l)
{
    char from[32], to[32];
    for (unsigned i = l->max_files - 1; i >= 2; i--) {
        snprintf(from, sizeof(from), LOG_NAME ".%u", i - 1);
        snprintf(to, sizeof(to), LOG_NAME ".%u", i);
        if (renameat(l->dirfd, from, l->dirfd, to) < 0 && errno != ENOENT)
            set_error(l, "rename \"%s\": %s", from, strerror(errno));
    }
    if (l->max_files >= 2 && renameat(l->dirfd, LOG_NAME, l->dirfd, LOG_NAME ".1") < 0 &&
        errno != ENOENT)
        set_error(l, "rename \"%s\": %s", LOG_NAME, strerror(errno));
    mon_tasklog_close(l);
    open_log(l, l->max_files == 1);
}

static int write_iov(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        for (; n > 0 && (size_t)w >= iov->iov_len; iov++, n--)
            w -= (ssize_t)iov->iov_len;
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static void write_entry(struct mon_tasklog *l, const char *stream, const char *line, size_t len)
{
    struct timespec ts;
    char prefix[MON_STAMP_SIZE + 16];
    clock_gettime(CLOCK_REALTIME, &ts);
    mon_tasklog_stamp(prefix, &ts);
    size_t plen = strlen(prefix);
    plen += snprintf(prefix + plen, sizeof(prefix) - plen, " %s ", stream);
    struct iovec iov[3] = {
        {.iov_base = prefix, .iov_len = plen},
        {.iov_base = (char *)line, .iov_len = len},
        {.iov_base = "\n", .iov_len = 1},
    };
    uint64_t need = plen + len + 1;
    if (l->fd >= 0 && l->size > 0 && l->size + need > l->max_size)
        rotate(l);
    if (l->fd < 0 && open_log(l, false) < 0)
        return;
    int r = write_iov(l->fd, iov, 3);
    if (r < 0) {
        set_error(l, "write \"%s\": %s", LOG_NAME, strerror(-r));
        struct stat st;
        if (fstat(l->fd, &st) == 0)
            l->size = (uint64_t)st.st_size;
        return;
    }
    l->size += need;
    l->failing = false;
}

/* Logs the complete lines held in p, and with flush the rest too. A line
 * that fills the buffer without a newline is logged in pieces. */
static void log_lines(struct mon_pipe *p, struct mon_tasklog *l, bool flush)
{
    size_t start = 0;
    while (start < p->len) {
        size_t avail = p->len - start;
        size_t scan = avail < MON_LINE_MAX + 1 ? avail : MON_LINE_MAX + 1;
        const char *nl = memchr(p->buf + start, '\n', scan);
        size_t n;
        if (nl != NULL) {
            n = (size_t)(nl - (p->buf + start));
            write_entry(l, p->name, p->buf + start, n);
            start += n + 1;
        } else if (avail > MON_LINE_MAX || flush) {
            n = avail < MON_LINE_MAX ? avail : MON_LINE_MAX;
            write_entry(l, p->name, p->buf + start, n);
            start += n;
        } else {
            break;
        }
    }
    memmove(p->buf, p->buf + start, p->len - start);
    p->len -= start;
}

static void close_pipe(struct mon_pipe *p, struct mon_tasklog *l)
{
    log_lines(p, l, true);
    close(p->fd);
    p->fd = -1;
}

int mon_pipe_read(struct mon_pipe *p, struct mon_tasklog *l)
{
    if (p->fd < 0)
        return 0;
    ssize_t n;
    do {
        n = read(p->fd, p->buf + p->len, sizeof(p->buf) - p->len);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
        return -EAGAIN;
    if (n <= 0) {
        int r = n < 0 ? -errno : 0;
        close_pipe(p, l);
        return r;
    }
    p->len += (size_t)n;
    log_lines(p, l, false);
    return (int)n;
}

void mon_pipe_drain(struct mon_pipe *p, struct mon_tasklog *l)
{
    for (int i = 0; i < DRAIN_MAX_READ && mon_pipe_read(p, l) > 0; i++)
        ;
    if (p->fd >= 0)
        close_pipe(p, l);
}
