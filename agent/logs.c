#include "agent/logs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/supervisor.h"
#include "api/server.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"

#define LOG_NAME   "log"
#define WINDOW     (64u << 10)  /* backward scans read this much at a time */
#define CHUNK      (256u << 10) /* forward reads: many entries (at most 16 KiB each) at a time */
#define READ_TRIES 3            /* a rotation under the reader makes it start again */
#define TS         AGENT_LOGS_TS_LEN

struct log_file {
    int fd;
    unsigned idx; /* 0 for "log", N for "log.N" */
    uint64_t ino;
    uint64_t size; /* when listed */
};

/* The log files of a task, oldest first, open. */
struct log_set {
    struct log_file *files; /* owned */
    size_t n, cap;
};

/* One entry as it stands in a file: "<ts> <stream> <text>". */
struct entry_view {
    const char *ts; /* TS chars */
    const char *stream;
    const char *text;
    size_t text_len;
};

static void set_close(struct log_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        close(s->files[i].fd);
    free(s->files);
    *s = (struct log_set){0};
}

/* "log" is 0, "log.N" N (1 <= N < AGENT_LOGS_MAX_FILES, no leading zero). */
static int parse_index(const char *name, unsigned *idx)
{
    if (strcmp(name, LOG_NAME) == 0) {
        *idx = 0;
        return 0;
    }
    if (strncmp(name, LOG_NAME ".", sizeof(LOG_NAME)) != 0)
        return -1;
    const char *p = name + sizeof(LOG_NAME);
    if (*p < '1' || *p > '9')
        return -1;
    unsigned v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (unsigned)(*p - '0');
        if (v >= AGENT_LOGS_MAX_FILES)
            return -1;
    }
    *idx = v;
    return 0;
}

static int oldest_first(const void *a, const void *b)
{
    const struct log_file *x = a, *y = b;
    return x->idx < y->idx ? 1 : x->idx > y->idx ? -1 : 0;
}

static uint64_t ino_of(int dfd, const char *name)
{
    struct stat st;
    return fstatat(dfd, name, &st, 0) == 0 ? (uint64_t)st.st_ino : 0;
}

/* Opens the log files of dir into s (empty before). Returns 0, -EAGAIN when
 * "log" was rotated meanwhile (s then holds what was seen), or -errno. */
static int list_once(const char *dir, struct log_set *s)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int dfd = dirfd(d);
    uint64_t before = ino_of(dfd, LOG_NAME);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned idx;
        if (parse_index(e->d_name, &idx) != 0)
            continue;
        int fd = openat(dfd, e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (fd < 0)
            continue; /* rotated out since readdir */
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            continue;
        }
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 8;
            s->files = xrealloc(s->files, s->cap * sizeof(*s->files));
        }
        s->files[s->n++] = (struct log_file){fd, idx, (uint64_t)st.st_ino, (uint64_t)st.st_size};
    }
    uint64_t after = ino_of(dfd, LOG_NAME);
    closedir(d);
    if (s->n > 1)
        qsort(s->files, s->n, sizeof(*s->files), oldest_first);
    /* A file renamed during the listing can be seen twice: keep it once. */
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        int seen = 0;
        for (size_t j = 0; j < k && !seen; j++)
            seen = s->files[j].ino == s->files[i].ino;
        if (seen)
            close(s->files[i].fd);
        else
            s->files[k++] = s->files[i];
    }
    s->n = k;
    return before == after ? 0 : -EAGAIN;
}

/* Reads up to n bytes at off; fewer only at the end of the file. */
static ssize_t pread_full(int fd, char *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int parse_line(const char *p, size_t len, struct entry_view *v)
{
    if (len < TS + 7 || p[TS] != ' ' || p[4] != '-' || p[10] != 'T' || p[TS - 1] != 'Z')
        return -1;
    const char *s = p + TS + 1;
    size_t rest = len - TS - 1;
    if (memcmp(s, "stdout", 6) != 0 && memcmp(s, "stderr", 6) != 0)
        return -1;
    if (rest > 6 && s[6] != ' ')
        return -1;
    v->ts = p;
    v->stream = s[3] == 'o' ? "stdout" : "stderr";
    v->text = rest > 6 ? s + 7 : s + 6;
    v->text_len = rest > 6 ? rest - 7 : 0;
    return 0;
}

/* 1 when the entry is one to read (at or after since). */
static int wanted(const struct entry_view *v, const char *since)
{
    return !since || memcmp(v->ts, since, TS) >= 0;
}

/* Length of the valid UTF-8 sequence at p (n bytes available), 0 if none. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len = p[0] >= 0xC2 && p[0] <= 0xDF   ? 2
                 : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
                 : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4
                                                : 0;
    if (len == 0 || len > n)
        return 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (p[0] == 0xE0)
        lo = 0xA0;
    else if (p[0] == 0xED)
        hi = 0x9F;
    else if (p[0] == 0xF0)
        lo = 0x90;
    else if (p[0] == 0xF4)
        hi = 0x8F;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

/* The text as a JSON string, invalid UTF-8 bytes replaced by U+FFFD. */
static json_t *text_json(const char *p, size_t n)
{
    json_t *j = json_stringn(p, n);
    if (j)
        return j;
    struct common_buf b = {0};
    const unsigned char *u = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(u + i, n - i);
        if (len == 0) {
            common_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            common_buf_append(&b, u + i, len);
            i += len;
        }
    }
    common_buf_append(&b, "", 0);
    j = json_stringn(b.data, b.len);
    common_buf_free(&b);
    return j ? j : json_string("");
}

static void append_entry(json_t *entries, const struct entry_view *v, const char *task)
{
    json_t *e = json_object();
    if (task)
        json_object_set_new(e, "task", json_string(task));
    json_object_set_new(e, "ts", json_stringn(v->ts, TS));
    json_object_set_new(e, "stream", json_string(v->stream));
    json_object_set_new(e, "line", text_json(v->text, v->text_len));
    json_array_append_new(entries, e);
}

/* The offset just past the last newline at or before size (0 when none). */
static int64_t complete_end(const struct log_file *f, char *buf)
{
    uint64_t hi = f->size;
    while (hi > 0) {
        uint64_t lo = hi > WINDOW ? hi - WINDOW : 0;
        ssize_t n = pread_full(f->fd, buf, (size_t)(hi - lo), lo);
        if (n < 0)
            return n;
        if ((uint64_t)n < hi - lo)
            return -EAGAIN; /* emptied under the reader */
        for (size_t k = (size_t)n; k > 0; k--)
            if (buf[k - 1] == '\n')
                return (int64_t)(lo + k);
        hi = lo;
    }
    return 0;
}

/* Walks the entries of f backwards from end (just past a newline). Each
 * readable entry at or after since counts one off *want; stops at an older
 * entry or when *want reaches 0, with *start where reading must begin.
 * Returns 1 when it stopped, 0 when it reached the start of the file. */
static int scan_back(const struct log_file *f, uint64_t end, const char *since, int64_t *want,
                     char *buf, uint64_t *start)
{
    uint64_t pos = end;
    while (pos > 0) {
        uint64_t lo = pos > WINDOW ? pos - WINDOW : 0;
        ssize_t n = pread_full(f->fd, buf, (size_t)(pos - lo), lo);
        if (n < 0)
            return (int)n;
        if ((uint64_t)n < pos - lo)
            return -EAGAIN;
        size_t e = (size_t)n; /* the current entry ends at e - 1 (its newline) */
        while (e > 0) {
            size_t s = e - 1;
            while (s > 0 && buf[s - 1] != '\n')
                s--;
            if (s == 0 && lo > 0)
                break; /* may start before the window: read again from here */
            struct entry_view v;
            if (parse_line(buf + s, e - 1 - s, &v) == 0) {
                if (!wanted(&v, since)) {
                    *start = lo + e;
                    return 1;
                }
                if (--*want <= 0) {
                    *start = lo + s;
                    return 1;
                }
            }
            e = s;
        }
        if (e == (size_t)n && lo > 0)
            e = 0; /* a line longer than the window: not an entry the monitor writes */
        pos = lo + e;
    }
    return 0;
}

/* Parses "INODE:OFFSET" (decimal digits only). Returns 0 or -EINVAL. */
static int parse_cursor(const char *c, uint64_t *ino, uint64_t *off)
{
    size_t a = strspn(c, "0123456789");
    if (a == 0 || a > 20 || c[a] != ':')
        return -EINVAL;
    size_t b = strspn(c + a + 1, "0123456789");
    if (b == 0 || b > 20 || c[a + 1 + b])
        return -EINVAL;
    *ino = strtoull(c, NULL, 10);
    *off = strtoull(c + a + 1, NULL, 10);
    return 0;
}

/* Where reading starts: the cursor's position, tail entries before the end,
 * the first file that reaches since, or the oldest file. */
static int find_start(const struct log_set *s, const struct agent_logs_opts *o, char *buf,
                      size_t *file, uint64_t *off)
{
    *file = 0;
    *off = 0;
    if (o->cursor) {
        uint64_t ino, pos;
        if (parse_cursor(o->cursor, &ino, &pos) != 0)
            return -EINVAL;
        for (size_t i = 0; i < s->n; i++) {
            if (s->files[i].ino != ino)
                continue;
            *file = i;
            *off = pos;
            char before;
            /* Past the end, or not after a newline: the file was emptied and
             * written again (a log kept in one file); read it from its start. */
            if (pos > s->files[i].size ||
                (pos > 0 &&
                 (pread_full(s->files[i].fd, &before, 1, pos - 1) != 1 || before != '\n')))
                *off = 0;
            return 0;
        }
        return 0; /* rotated out: from the oldest file */
    }
    if (o->tail >= 0) {
        int64_t want = o->tail;
        for (size_t i = s->n; i-- > 0;) {
            int64_t end = complete_end(&s->files[i], buf);
            if (end < 0)
                return (int)end;
            if (want == 0) {
                *file = i;
                *off = (uint64_t)end;
                return 0;
            }
            int rv = scan_back(&s->files[i], (uint64_t)end, o->since, &want, buf, off);
            if (rv < 0)
                return rv;
            if (rv == 1) {
                *file = i;
                return 0;
            }
        }
        *off = 0;
        return 0;
    }
    if (o->since) {
        /* Files whose last entry is older than since are skipped whole. */
        for (size_t i = 0; i < s->n; i++) {
            int64_t end = complete_end(&s->files[i], buf);
            if (end < 0)
                return (int)end;
            int64_t one = 1;
            uint64_t start = 0;
            int rv =
                end > 0 ? scan_back(&s->files[i], (uint64_t)end, o->since, &one, buf, &start) : 0;
            if (rv < 0)
                return rv;
            *file = i;
            *off = (uint64_t)end;
            if (end > 0 && start < (uint64_t)end) {
                *off = 0; /* its last entry is at or after since */
                return 0;
            }
        }
    }
    return 0;
}

static void set_cursor(struct agent_logs_result *res, const struct log_file *f, uint64_t off)
{
    snprintf(res->cursor, sizeof(res->cursor), "%llu:%llu", (unsigned long long)f->ino,
             (unsigned long long)off);
}

/* Reads forward from (file, off) to the end of the newest file or until the
 * budget is spent. */
static int read_forward(const struct log_set *s, size_t file, uint64_t off,
                        const struct agent_logs_opts *o, json_t *entries,
                        struct agent_logs_result *res, char *buf)
{
    size_t used = 0;
    int any = 0;
    for (size_t i = file; i < s->n; i++) {
        const struct log_file *f = &s->files[i];
        uint64_t pos = i == file ? off : 0;
        for (;;) {
            ssize_t n = pread_full(f->fd, buf, CHUNK, pos);
            if (n < 0)
                return (int)n;
            size_t st = 0;
            const char *nl;
            while ((nl = memchr(buf + st, '\n', (size_t)n - st)) != NULL) {
                size_t len = (size_t)(nl - (buf + st));
                struct entry_view v;
                if (parse_line(buf + st, len, &v) == 0 && wanted(&v, o->since)) {
                    if (any && used + len > o->budget) {
                        set_cursor(res, f, pos + st);
                        res->bytes = used;
                        res->cut = 1;
                        return 0;
                    }
                    append_entry(entries, &v, o->task);
                    used += len;
                    any = 1;
                }
                st = (size_t)(nl - buf) + 1;
            }
            if (st == 0 && (size_t)n == CHUNK)
                st = CHUNK; /* no newline in a whole chunk: not the monitor's; skipped */
            pos += st;
            if ((size_t)n < CHUNK)
                break; /* the end; a partial line stays for the next read */
        }
        set_cursor(res, f, pos);
    }
    res->bytes = used;
    return 0;
}

/* The fast path of a reader waiting for new lines: 1 when the cursor is at
 * the end of "log", so nothing is new. */
static int nothing_new(const char *dir, const char *cursor)
{
    uint64_t ino, pos;
    if (parse_cursor(cursor, &ino, &pos) != 0)
        return 0;
    char path[4200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/" LOG_NAME, dir);
    return stat(path, &st) == 0 && (uint64_t)st.st_ino == ino && (uint64_t)st.st_size == pos;
}

int agent_logs_read(const char *dir, const struct agent_logs_opts *o, json_t *entries,
                    struct agent_logs_result *res)
{
    *res = (struct agent_logs_result){0};
    if (o->since && strlen(o->since) != TS)
        return -EINVAL;
    if (o->cursor && nothing_new(dir, o->cursor)) {
        common_strlcpy(res->cursor, o->cursor, sizeof(res->cursor));
        return 0;
    }
    _cleanup_free_ char *buf = xmalloc(CHUNK);
    size_t mark = json_array_size(entries);
    int rv = -EAGAIN;
    for (int tries = 0; tries < READ_TRIES && rv == -EAGAIN; tries++) {
        struct log_set s = {0};
        rv = list_once(dir, &s);
        if (rv == -EAGAIN && tries + 1 < READ_TRIES) {
            set_close(&s);
            continue;
        }
        if (rv == 0 || rv == -EAGAIN) {
            size_t file;
            uint64_t off;
            rv = s.n == 0 ? -ENOENT : find_start(&s, o, buf, &file, &off);
            if (rv == 0)
                rv = read_forward(&s, file, off, o, entries, res, buf);
        }
        set_close(&s);
        /* A file emptied under the reader: forget this try's entries. */
        while (rv == -EAGAIN && json_array_size(entries) > mark)
            json_array_remove(entries, json_array_size(entries) - 1);
    }
    return rv;
}

/* ---- the node's answer ---- */

/* Sorts entries by time, keeping the file order of equal times. */
static json_t *sort_entries(json_t *entries)
{
    json_t *out = api_log_entries_sorted(entries);
    json_decref(entries);
    return out;
}

int agent_logs_query(void *data, const json_t *query, json_t **answer, char *errmsg)
{
    const struct agent_node *node = data;
    json_t *tasks = json_object_get(query, "tasks");
    if (!json_is_object(tasks)) {
        snprintf(errmsg, 256, "the query holds no \"tasks\" object");
        return -EINVAL;
    }
    json_t *tail = json_object_get(query, "tail");
    json_t *max = json_object_get(query, "max_bytes");
    size_t budget = AGENT_LOGS_BUDGET;
    if (json_is_integer(max) && json_integer_value(max) > 0 &&
        json_integer_value(max) < AGENT_LOGS_BUDGET)
        budget = (size_t)json_integer_value(max);
    size_t n = json_object_size(tasks);
    struct agent_logs_opts o = {
        .tail =
            json_is_integer(tail) && json_integer_value(tail) >= 0 ? json_integer_value(tail) : -1,
        .since = json_string_value(json_object_get(query, "since")),
        .budget = n > 1 ? budget / n : budget,
    };
    json_t *entries = json_array(), *cursors = json_object(), *missing = json_array();
    json_t *errors = json_object();
    int more = 0;
    const char *id;
    json_t *cursor;
    json_object_foreach(tasks, id, cursor)
    {
        if (!api_task_id_valid(id)) {
            json_array_append_new(missing, json_string(id));
            continue;
        }
        char dir[4200];
        agent_supervisor_task_dir(node, id, dir, sizeof(dir));
        o.cursor = json_string_value(cursor);
        o.task = id;
        struct agent_logs_result res;
        int rv = agent_logs_read(dir, &o, entries, &res);
        if (rv == -ENOENT) {
            json_array_append_new(missing, json_string(id));
        } else if (rv < 0) {
            char why[300];
            snprintf(why, sizeof(why), "reading the logs of task %s: %s", id, strerror(-rv));
            LOGW("logs: %s", why);
            json_object_set_new(errors, id, json_string(why));
        } else {
            json_object_set_new(cursors, id, json_string(res.cursor));
            more |= res.cut;
        }
    }
    *answer = json_pack("{s:o, s:o, s:o, s:o, s:b}", "entries", sort_entries(entries), "cursors",
                        cursors, "missing", missing, "errors", errors, "more", more);
    return 0;
}
