/* One logging module: leveled lines on stderr. The macros check the level
 * before formatting. SHOAL_LOG=debug|trace (or --log-level) turns on more. */
#ifndef SHOAL_COMMON_LOG_H
#define SHOAL_COMMON_LOG_H

enum common_log_level {
    COMMON_LOG_ERROR,
    COMMON_LOG_WARN,
    COMMON_LOG_INFO,
    COMMON_LOG_DEBUG,
    COMMON_LOG_TRACE,
};

extern enum common_log_level common_log_level;

/* Parses "error", "warn", "info", "debug" or "trace". Returns 0 or -EINVAL. */
int common_log_set_level(const char *name);

void common_log_write(enum common_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define LOG_AT(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) <= common_log_level)                                                             \
            common_log_write((lvl), __VA_ARGS__);                                                  \
    } while (0)
#define LOGE(...) LOG_AT(COMMON_LOG_ERROR, __VA_ARGS__)
#define LOGW(...) LOG_AT(COMMON_LOG_WARN, __VA_ARGS__)
#define LOGI(...) LOG_AT(COMMON_LOG_INFO, __VA_ARGS__)
#define LOGD(...) LOG_AT(COMMON_LOG_DEBUG, __VA_ARGS__)
#define LOGT(...) LOG_AT(COMMON_LOG_TRACE, __VA_ARGS__)

#endif
