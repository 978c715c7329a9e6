/* Launcher mode helpers: plain libc, no allocation (the monitor's rule). */
#include "agent/monitor/launch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TAIL_BYTES 8192

pid_t mon_launch_read_pid(const char *path)
{
    char buf[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -EINVAL;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    if (end == buf || pid <= 0 || pid > 4194304)
        return -EINVAL;
    return (pid_t)pid;
}

/* Copies the JSON string starting after the opening quote at s into out,
 * undoing the simple escapes (\" \\ \n \t; \uXXXX becomes '?'). */
static void copy_json_string(const char *s, char *out, size_t size)
{
    size_t len = 0;
    for (; *s && *s != '"' && len + 1 < size; s++) {
        char c = *s;
        if (c == '\\' && s[1]) {
            s++;
            c = *s == 'n' ? ' ' : *s == 't' ? ' ' : *s;
            if (*s == 'u') {
                c = '?';
                for (int i = 0; i < 4 && s[1]; i++)
                    s++;
            }
        }
        out[len++] = c;
    }
    out[len] = '\0';
}

void mon_launch_last_error(const char *path, char *out, size_t size)
{
    static char buf[TAIL_BYTES + 1];
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t start = end > TAIL_BYTES ? end - TAIL_BYTES : 0;
    ssize_t n = pread(fd, buf, TAIL_BYTES, start);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    /* The last line at level error (runc logs its failure last). */
    char *line = NULL;
    for (char *p = buf; (p = strstr(p, "\"level\":\"error\"")) != NULL; p++)
        line = p;
    if (!line)
        return;
    while (line > buf && line[-1] != '\n')
        line--;
    char *msg = strstr(line, "\"msg\":\"");
    if (msg)
        copy_json_string(msg + 7, out, size);
}
