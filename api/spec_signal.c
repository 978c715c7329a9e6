/* Service specs: signal names, as the stop_signal field accepts them and as
 * the canonical form writes them ("SIGTERM", "SIGRTMIN+3"). */
#include "api/spec.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/spec_internal.h"
#include "common/util.h"

static const struct {
    const char *name; /* without "SIG" */
    int number;
} signals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},
    {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},     {"BUS", SIGBUS},   {"FPE", SIGFPE},
    {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT},
    {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
    {"IO", SIGIO},     {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

/* Writes the canonical name of signal n ("SIGTERM", "SIGRTMIN+3"). Returns
 * false when n is no signal. */
static bool signal_name(int n, char *out, size_t out_size)
{
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++) {
        if (signals[i].number == n) {
            snprintf(out, out_size, "SIG%s", signals[i].name);
            return true;
        }
    }
    if (n < SIGRTMIN || n > SIGRTMAX)
        return false;
    snprintf(out, out_size, "SIGRTMIN+%d", n - SIGRTMIN);
    return true;
}

/* Parses "TERM", "SIGTERM", "sigterm" or "SIGRTMIN+3". Returns 0 when s is
 * no signal name. */
static int signal_number(const char *s)
{
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
        if (strcasecmp(s, signals[i].name) == 0)
            return signals[i].number;
    if (strncasecmp(s, "RTMIN", 5) != 0)
        return 0;
    s += 5;
    if (*s == '\0')
        return SIGRTMIN;
    if (*s != '+' || !api__spec_is_digit(s[1]) || strlen(s) > 3 ||
        (s[2] && !api__spec_is_digit(s[2])))
        return 0;
    int n = SIGRTMIN + atoi(s + 1);
    return n <= SIGRTMAX ? n : 0;
}

int api__spec_signal(const struct api__spec_field *f, const json_t *val, const char *path,
                     json_t *out, struct api__spec_walk *w)
{
    static const char rule[] = "must be a signal name such as \"SIGTERM\" or its number";
    char name[32];
    int n = SIGTERM;
    if (json_is_integer(val)) {
        json_int_t v = json_integer_value(val);
        n = v >= 1 && v <= 64 ? (int)v : 0;
    } else if (val) {
        const char *s;
        if (!json_is_string(val) || api__spec_get_str(val, path, w, &s) < 0)
            return api__spec_bad(w, path, rule);
        n = signal_number(s);
    }
    if (n == 0 || !signal_name(n, name, sizeof(name)))
        return api__spec_bad(w, path, rule);
    json_object_set_new(out, f->key, json_string(name));
    return 0;
}

int api_spec_signal_number(const char *name)
{
    char canon[32];
    int n = name ? signal_number(name) : 0;
    if (n == 0 || !signal_name(n, canon, sizeof(canon)) || strcmp(canon, name) != 0)
        return -1;
    return n;
}
