/* shoal: tables and JSON on stdout. */
#include <stdarg.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "ctl/ctl.h"

#define COMMAND_COLUMN_MAX 60 /* bytes of the COMMAND/IMAGE column before "..." */

void ctl_table_init(struct ctl_table *t, size_t ncols, const char *const *headers)
{
    *t = (struct ctl_table){.ncols = ncols};
    for (size_t i = 0; headers && i < ncols; i++)
        ctl_table_cell(t, headers[i]);
}

void ctl_table_cell(struct ctl_table *t, const char *s)
{
    if (t->ncells == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 32;
        t->cells = xrealloc(t->cells, t->cap * sizeof(*t->cells));
    }
    char *copy = xstrdup(s ? s : "");
    for (char *p = copy; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    t->cells[t->ncells++] = copy;
}

void ctl_table_cellf(struct ctl_table *t, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fprintf(stderr, "shoal: out of memory formatting a table cell\n");
        abort();
    }
    ctl_table_cell(t, s);
    free(s);
}

/* Width on a terminal, counting each UTF-8 sequence as one column. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

void ctl_table_print(const struct ctl_table *t, FILE *out, int indent)
{
    size_t width[16] = {0};
    size_t ncols = t->ncols < ARRAY_SIZE(width) ? t->ncols : ARRAY_SIZE(width);
    for (size_t i = 0; i < t->ncells; i++) {
        size_t col = i % t->ncols, w = text_width(t->cells[i]);
        if (col < ncols && w > width[col])
            width[col] = w;
    }
    for (size_t i = 0; i < t->ncells; i++) {
        size_t col = i % t->ncols;
        if (col == 0)
            fprintf(out, "%*s", indent, "");
        fputs(t->cells[i], out);
        if (col + 1 == t->ncols || i + 1 == t->ncells) {
            fputc('\n', out);
            continue;
        }
        size_t pad = (col < ncols ? width[col] : 0) - text_width(t->cells[i]) + 3;
        fprintf(out, "%*s", (int)pad, "");
    }
}

void ctl_table_free(struct ctl_table *t)
{
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    *t = (struct ctl_table){0};
}

void ctl_print_json(const json_t *j)
{
    /* 15 significant digits print 0.1 as 0.1, not 0.10000000000000001. */
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    if (!s) {
        fprintf(stderr, "shoal: cannot encode JSON for printing\n");
        return;
    }
    puts(s);
    free(s);
}

json_t *ctl_json_get(const json_t *root, const char *path)
{
    json_t *j = (json_t *)root;
    while (j && *path) {
        size_t n = strcspn(path, ".");
        j = json_object_getn(j, path, n);
        path += n + (path[n] == '.');
    }
    return j;
}

const char *ctl_json_str(const json_t *root, const char *path, const char *fallback)
{
    const char *s = json_string_value(ctl_json_get(root, path));
    return s ? s : fallback;
}

static int needs_quotes(const char *w)
{
    if (!*w)
        return 1;
    for (; *w; w++) {
        if (!((*w >= 'a' && *w <= 'z') || (*w >= 'A' && *w <= 'Z') || (*w >= '0' && *w <= '9') ||
              strchr("_@%+=:,./-", *w)))
            return 1;
    }
    return 0;
}

char *ctl_join_words(const json_t *list)
{
    struct common_buf b = {0};
    size_t i;
    json_t *word;
    json_array_foreach(list, i, word)
    {
        const char *w = json_string_value(word);
        if (!w)
            continue;
        if (b.len)
            common_buf_puts(&b, " ");
        if (!needs_quotes(w)) {
            common_buf_puts(&b, w);
            continue;
        }
        common_buf_puts(&b, "'");
        for (; *w; w++)
            common_buf_puts(&b, *w == '\'' ? "'\\''" : (char[]){*w, '\0'});
        common_buf_puts(&b, "'");
    }
    return common_buf_take(&b, NULL);
}

void ctl_print_answers(const json_t *answers, int nnames)
{
    if (nnames == 1 && json_array_size(answers) == 1)
        ctl_print_json(json_array_get(answers, 0));
    else if (nnames != 1)
        ctl_print_json(answers);
}

/* The COMMAND/IMAGE column: the image for runc, else command and args, cut
 * at COMMAND_COLUMN_MAX bytes (on a UTF-8 boundary) with "...". */
static char *command_column(const json_t *svc)
{
    const char *image = ctl_json_str(svc, "task.image", "");
    if (*image && strcmp(ctl_json_str(svc, "task.driver", ""), "runc") == 0)
        return xstrdup(image);
    json_auto_t *words = json_array();
    json_array_extend(words, ctl_json_get(svc, "task.command"));
    json_array_extend(words, ctl_json_get(svc, "task.args"));
    char *s = ctl_join_words(words);
    if (strlen(s) > COMMAND_COLUMN_MAX) {
        size_t cut = COMMAND_COLUMN_MAX - 3;
        while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
            cut--;
        strcpy(s + cut, "...");
    }
    return s;
}

void ctl_print_service_table(const json_t *list)
{
    static const char *const headers[] = {"NAME",   "MODE",    "REPLICAS",
                                          "DRIVER", "VERSION", "COMMAND/IMAGE"};
    struct ctl_table t;
    ctl_table_init(&t, ARRAY_SIZE(headers), headers);
    size_t i;
    json_t *svc;
    json_array_foreach(list, i, svc)
    {
        const char *mode = ctl_json_str(svc, "mode", "replicated");
        json_t *replicas = json_object_get(svc, "replicas");
        ctl_table_cell(&t, ctl_json_str(svc, "name", "?"));
        ctl_table_cell(&t, mode);
        if (strcmp(mode, "global") == 0 || !json_is_integer(replicas))
            ctl_table_cell(&t, "-");
        else
            ctl_table_cellf(&t, "%" JSON_INTEGER_FORMAT, json_integer_value(replicas));
        ctl_table_cell(&t, ctl_json_str(svc, "task.driver", "process"));
        ctl_table_cellf(&t, "%" JSON_INTEGER_FORMAT,
                        json_integer_value(json_object_get(svc, "version")));
        _cleanup_free_ char *cmd = command_column(svc);
        ctl_table_cell(&t, cmd);
    }
    ctl_table_print(&t, stdout, 0);
    ctl_table_free(&t);
}

/* The MANAGER column of a node: "leader" or its Raft role for a manager,
 * empty for a worker. */
static const char *manager_column(const json_t *node)
{
    json_t *m = json_object_get(node, "manager");
    if (!json_is_object(m))
        return strcmp(ctl_json_str(node, "role", ""), "manager") == 0 ? "-" : "";
    if (json_is_true(json_object_get(m, "leader")))
        return "leader";
    return ctl_json_str(m, "raft_role", "-");
}

void ctl_print_node_table(const json_t *list)
{
    static const char *const headers[] = {"ID",           "NAME",    "ROLE",   "STATUS",
                                          "AVAILABILITY", "MANAGER", "ADDRESS"};
    struct ctl_table t;
    ctl_table_init(&t, ARRAY_SIZE(headers), headers);
    size_t i;
    json_t *node;
    json_array_foreach(list, i, node)
    {
        ctl_table_cell(&t, ctl_json_str(node, "id", "?"));
        ctl_table_cell(&t, ctl_json_str(node, "name", "?"));
        ctl_table_cell(&t, ctl_json_str(node, "role", "-"));
        ctl_table_cell(&t, ctl_json_str(node, "status", "-"));
        ctl_table_cell(&t, ctl_json_str(node, "availability", "-"));
        ctl_table_cell(&t, manager_column(node));
        ctl_table_cell(&t, ctl_json_str(node, "api_address", "-"));
    }
    ctl_table_print(&t, stdout, 0);
    ctl_table_free(&t);
}
