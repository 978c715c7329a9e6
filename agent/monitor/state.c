/* The state file: formatted into one buffer, written to state.tmp and
 * renamed over state (no fsync: it describes processes, which a reboot
 * ends anyway). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/monitor/state.h"

#define STATE_TMP  "state.tmp"
#define STATE_FILE "state"

int64_t mon_state_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Formats s into buf (size bytes) and returns the length; 512 bytes hold
 * every key with a 255-byte error, so nothing is ever cut. */
static size_t format_state(const struct mon_state *s, char *buf, size_t size)
{
    size_t len = 0;
    len += snprintf(buf + len, size - len, "monitor_pid=%d\n", (int)s->monitor_pid);
    if (s->pid > 0)
        len += snprintf(buf + len, size - len, "pid=%d\nstarted_ms=%lld\n", (int)s->pid,
                        (long long)s->started_ms);
    if (!s->done)
        return len;
    len += snprintf(buf + len, size - len,
                    "exited_ms=%lld\nexit_code=%d\nsignal=%d\noom=%d\nstopped=%d\n",
                    (long long)s->exited_ms, s->exit_code, s->signal, s->oom, s->stopped);
    if (s->error[0] != '\0') {
        char *start = buf + len;
        len += snprintf(buf + len, size - len, "error=%s\n", s->error);
        /* One line: a newline inside the message would start a new key. */
        for (char *p = start; p < buf + len - 1; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
    }
    return len;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int mon_state_write(int dirfd, const struct mon_state *s, char *errmsg)
{
    char buf[512];
    size_t len = format_state(s, buf, sizeof(buf));
    int fd = openat(dirfd, STATE_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int r = -errno;
        snprintf(errmsg, 256, "open \"%s\": %s", STATE_TMP, strerror(-r));
        return r;
    }
    int r = write_all(fd, buf, len);
    if (close(fd) < 0 && r == 0 && errno != EINTR)
        r = -errno;
    if (r < 0) {
        snprintf(errmsg, 256, "write \"%s\": %s", STATE_TMP, strerror(-r));
        return r;
    }
    if (renameat(dirfd, STATE_TMP, dirfd, STATE_FILE) < 0) {
        r = -errno;
        snprintf(errmsg, 256, "rename \"%s\": %s", STATE_TMP, strerror(-r));
        return r;
    }
    return 0;
}
