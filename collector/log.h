/*
 * One logging macro for the daemon. The level is checked before anything is
 * formatted, so a debug line on the hot path costs a compare. Lines go to
 * stderr as "flowstored: <level>: message" (journald adds the time).
 */
#ifndef FLOWSTORE_LOG_H
#define FLOWSTORE_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern enum log_level log_threshold;

/* "error", "warn", "info", "debug" → level; -1 if none of those. */
int log_level_parse(const char *s);

void log_write(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define LOG(level, ...)                                                        \
	do {                                                                   \
		if ((level) <= log_threshold)                                  \
			log_write((level), __VA_ARGS__);                       \
	} while (0)

#endif /* FLOWSTORE_LOG_H */
