// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * xpuctl top: the devices, the slices per resource and the allocations, redrawn in place. A
 * child process follows /v1/events and writes a byte into a pipe per event (libxpu's stream
 * blocks, and a client is used by one thread), so the main loop polls the keyboard, the signals
 * (through a pipe of their own) and that pipe, and redraws on an event, on a resize, and every
 * --interval otherwise (a second by default: utilisation and memory in use change without
 * events). Plain ANSI sequences: the alternate screen, cursor positioning and erase-in-line. Off
 * a terminal: one frame.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "shared/parse.h"
#include "xpu/client.h"
#include "xpuctl/output.h"
#include "xpuctl/xpuctl.h"

#define REFRESH_MS 1000
#define REFRESH_MIN_MS 100
#define REFRESH_MAX_MS (24LL * 3600 * 1000)

/* What one refresh fetched: the answers of /v1/devices, /v1/capacity and /v1/allocations. */
struct snapshot {
	json_t *devices, *capacity, *allocations;
};

static void snapshot_done(struct snapshot *s)
{
	json_decref(s->devices);
	json_decref(s->capacity);
	json_decref(s->allocations);
	*s = (struct snapshot){};
}

/* GET @path, whose answer must hold the array @key. An exit status; why it failed in *ret_error. */
static int fetch(struct ctl *ctl, const char *path, const char *key, json_t **ret,
		 char **ret_error)
{
	_cleanup_json_ json_t *doc = NULL;
	const char *message = NULL;
	int status, r;

	r = xpu_client_request(ctl->client, "GET", path, NULL, &status, &doc);
	if (r == -ENOMEM)
		return *ret_error = strdup("out of memory"), CTL_EXIT_USAGE;
	if (r == -EBADMSG || r == -EMSGSIZE) {
		if (asprintf(ret_error, "malformed answer from xpud at %s", ctl_socket(ctl)) < 0)
			*ret_error = NULL;
		return CTL_EXIT_MALFORMED;
	}
	if (r < 0) {
		if (asprintf(ret_error, "lost connection to xpud at %s: %s", ctl_socket(ctl),
			     strerror(-r)) < 0)
			*ret_error = NULL;
		return CTL_EXIT_UNREACHABLE;
	}
	if (status < 200 || status > 299) {
		message = j_str(doc, "message");
		if (asprintf(ret_error, "xpud answered %d to GET %s%s%s", status, path,
			     message ? ": " : "", message ?: "") < 0)
			*ret_error = NULL;
		return CTL_EXIT_DAEMON_ERROR;
	}
	if (!json_is_array(json_object_get(doc, key))) {
		if (asprintf(ret_error, "malformed answer from xpud at %s: no \"%s\" array",
			     ctl_socket(ctl), key) < 0)
			*ret_error = NULL;
		return CTL_EXIT_MALFORMED;
	}
	*ret = TAKE_PTR(doc);
	return CTL_EXIT_OK;
}

/* Replaces @s with a new snapshot, or keeps it and returns why not. */
static int refresh(struct ctl *ctl, struct snapshot *s, char **ret_error)
{
	struct snapshot n = {};
	int r;

	*ret_error = NULL;
	r = fetch(ctl, "/v1/devices", "devices", &n.devices, ret_error);
	if (r == CTL_EXIT_OK)
		r = fetch(ctl, "/v1/capacity", "resources", &n.capacity, ret_error);
	if (r == CTL_EXIT_OK)
		r = fetch(ctl, "/v1/allocations", "allocations", &n.allocations, ret_error);
	if (r != CTL_EXIT_OK) {
		snapshot_done(&n);
		return r;
	}
	snapshot_done(s);
	*s = n;
	return CTL_EXIT_OK;
}

/* A number in the device's properties (they are strings), the first of @keys it has. */
static bool device_number(const json_t *d, const char *const keys[2], double *ret, size_t *which)
{
	const json_t *props = json_object_get(d, "properties");

	for (size_t i = 0; i < 2; i++) {
		const char *s = j_str(props, keys[i]);
		char *end = NULL;

		if (isempty(s))
			continue;
		errno = 0;
		*ret = strtod(s, &end);
		if (errno == 0 && end && !*end && *ret >= 0) {
			*which = i;
			return true;
		}
	}
	return false;
}

/* "12.0 GiB / 80.0 GiB" where a property gives the memory in use, else the total. */
static const char *device_memory(const json_t *d, char *buf, size_t size)
{
	static const char *const keys[2] = { "memory_used_bytes", "vram_used_bytes" };
	char total[32], used[32];
	const char *t = fmt_bytes(json_object_get(d, "memory_bytes"), total);
	_cleanup_json_ json_t *u = NULL;
	size_t which;
	double v;

	if (!device_number(d, keys, &v, &which) || v > 9e18)
		return t;
	u = json_integer((json_int_t)v);
	if (!u || !fmt_bytes(u, used))
		return t;
	snprintf(buf, size, "%s / %s", used, t ?: "?");
	return buf;
}

/* The busy share the backend reports, as a percentage ("42%"), or NULL. */
static const char *device_util(const json_t *d, char *buf, size_t size)
{
	static const char *const keys[2] = { "utilization_ratio", "utilization_percent" };
	size_t which;
	double v;

	if (!device_number(d, keys, &v, &which))
		return NULL;
	snprintf(buf, size, "%.0f%%", which == 0 ? v * 100 : v);
	return buf;
}

/* The frame as text, lines not yet cut to the terminal; @events: how the stream goes, if it is
 * followed. 0 or -ENOMEM. */
static int render(const struct ctl *ctl, const struct snapshot *s, const char *error,
		  const char *events, char **ret)
{
	static const struct column devices[] = {
		{ "ID", "id" },
		{ "MODEL", "model" },
		{ "HEALTH", "health", COLUMN_HEALTH },
		{ "PHASE", "health.phase" },
		{ "MEMORY", .get = device_memory },
		{ "UTIL", .get = device_util },
	};
	static const struct column resources[] = {
		{ "RESOURCE", "name" },
		{ "TOTAL", "total", COLUMN_INT },
		{ "FREE", "free", COLUMN_INT },
		{ "ALLOCATED", "allocated", COLUMN_INT },
		{ "HEALTHY", "healthy", COLUMN_INT },
	};
	static const struct column allocations[] = {
		{ "ID", "id" },
		{ "RESOURCE", "resource" },
		{ "SLICES", .get = allocation_slices },
		{ "OWNER", .get = allocation_owner },
	};
	const json_t *dev = json_object_get(s->devices, "devices");
	const json_t *res = json_object_get(s->capacity, "resources");
	const json_t *alloc = json_object_get(s->allocations, "allocations");
	size_t size = 0;
	char when[16] = "";
	time_t now = time(NULL);
	struct tm tm;
	FILE *f;
	int r = 0;

	f = open_memstream(ret, &size);
	if (!f)
		return -ENOMEM;
	if (localtime_r(&now, &tm))
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
	fprintf(f, "xpud at ");
	put_sanitized(ctl_socket(ctl), f);
	fprintf(f, "  %s  %zu device%s, %zu allocation%s", when, json_array_size(dev),
		json_array_size(dev) == 1 ? "" : "s", json_array_size(alloc),
		json_array_size(alloc) == 1 ? "" : "s");
	if (events)
		fprintf(f, "  events: %s  (q quits)", events);
	fputc('\n', f);
	if (error) {
		fputs("! ", f);
		put_sanitized(error, f);
		fputc('\n', f);
	}
	fputs("\nDEVICES\n", f);
	if (json_array_size(dev) == 0)
		fputs("none\n", f);
	else if (table_fprint(f, devices, ELEMENTSOF(devices), dev, true) < 0)
		r = -ENOMEM;
	fputs("\nSLICES\n", f);
	if (json_array_size(res) == 0)
		fputs("none\n", f);
	else if (table_fprint(f, resources, ELEMENTSOF(resources), res, true) < 0)
		r = -ENOMEM;
	fputs("\nALLOCATIONS\n", f);
	if (json_array_size(alloc) == 0)
		fputs("none\n", f);
	else if (table_fprint(f, allocations, ELEMENTSOF(allocations), alloc, true) < 0)
		r = -ENOMEM;
	if (fclose(f) != 0 || r < 0) {
		free(*ret);
		*ret = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Draws @frame from the top left, each line cut to @width columns, at most @height lines. */
static void draw(const char *frame, unsigned width, unsigned height)
{
	unsigned row = 0;

	for (const char *p = frame; *p && row < height; row++) {
		size_t len = strcspn(p, "\n"), n = 0;
		unsigned cols = 0;

		/* count UTF-8 sequences, not bytes (the text is already sanitized) */
		for (; n < len; n++) {
			if (((unsigned char)p[n] & 0xc0) != 0x80 && cols++ == width)
				break;
		}
		printf("\033[%u;1H%.*s\033[K", row + 1, (int)n, p);
		p += len + (p[len] == '\n');
	}
	if (row < height)
		printf("\033[%u;1H\033[J", row + 1);
	fflush(stdout);
}

/* ---- the terminal ----------------------------------------------------------------------- */

static int signal_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;

	(void)!write(signal_pipe[1], &c, 1);
	errno = saved;
}

struct term {
	bool raw; /* saved holds the settings to go back to */
	struct termios saved;
	bool screen; /* on the alternate screen */
	struct sigaction old[4];
	unsigned width, height;
};

static const int handled_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGWINCH };

static void term_size(struct term *t)
{
	struct winsize ws = {};

	t->width = 80;
	t->height = 24;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
		t->width = ws.ws_col;
		t->height = ws.ws_row;
	}
}

/* Keys one at a time, no echo, no signals from the keyboard (Ctrl-C comes as a key). */
static void term_enter(struct term *t)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ELEMENTSOF(handled_signals); i++)
		sigaction(handled_signals[i], &sa, &t->old[i]);

	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
		struct termios raw = t->saved;

		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ISIG | IEXTEN);
		raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		t->raw = tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0;
	}
	/* the alternate screen, cursor hidden */
	fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout);
	t->screen = true;
	term_size(t);
}

static void term_leave(struct term *t)
{
	if (t->screen)
		fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	if (t->raw)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
	for (size_t i = 0; i < ELEMENTSOF(handled_signals); i++)
		sigaction(handled_signals[i], &t->old[i], NULL);
	*t = (struct term){};
}

/* ---- the event stream, followed by a child ---------------------------------------------- */

static int on_stream_event(json_t *ev, void *userdata)
{
	int fd = *(int *)userdata;

	if (streq_ptr(j_str(ev, "type"), "subscribed"))
		return 0;
	/* a full pipe already holds a redraw */
	if (write(fd, "e", 1) < 0 && errno != EAGAIN)
		return 1;
	return 0;
}

/* Forks the follower of /v1/events; its pid, and the pipe it writes to in *ret_fd. */
static pid_t follow_events(struct ctl *ctl, int *ret_fd)
{
	pid_t parent = getpid(), pid;
	int fds[2];

	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		int r = -errno;

		close(fds[0]);
		close(fds[1]);
		return r;
	}
	if (pid == 0) {
		struct xpu_client *c = NULL;

		close(fds[0]);
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
			_exit(0);
		if (xpu_client_new(ctl->socket_arg, &c) == 0)
			xpu_client_stream(c, "/v1/events", on_stream_event, &fds[1]);
		/* _exit: nothing of the parent's (stdout's buffer, its client) is the child's */
		_exit(0);
	}
	close(fds[1]);
	*ret_fd = fds[0];
	return pid;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Drains @fd; false at its end (or on an error). */
static bool drain(int fd, unsigned char *last)
{
	unsigned char buf[256];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		*last = buf[n - 1];
	return n < 0 && (errno == EAGAIN || errno == EINTR);
}

/* Whether the keys read from stdin hold 'q' or Ctrl-C; *ret_eof at stdin's end. */
static bool keys_quit(bool *ret_eof)
{
	unsigned char buf[64];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n <= 0) {
		*ret_eof = n == 0 || (errno != EAGAIN && errno != EINTR);
		return false;
	}
	return memchr(buf, 'q', (size_t)n) || memchr(buf, 3, (size_t)n);
}

static int top_interactive(struct ctl *ctl, struct snapshot *s, char *error, long long every)
{
	_cleanup_free_ char *err = error;
	struct term t = {};
	int events_fd = -1, r = CTL_EXIT_OK;
	bool quit = false, watch_stdin = true;
	long long last;
	pid_t child;

	child = follow_events(ctl, &events_fd);
	if (child < 0) {
		fprintf(stderr, "xpuctl: cannot follow events: %s\n", strerror((int)-child));
		return CTL_EXIT_USAGE;
	}
	if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		fprintf(stderr, "xpuctl: cannot watch signals: %s\n", strerror(errno));
		r = CTL_EXIT_USAGE;
		goto out;
	}
	term_enter(&t);

	last = now_ms();
	for (bool redraw = true; !quit;) {
		struct pollfd pfd[3] = {
			{ .fd = signal_pipe[0], .events = POLLIN },
			{ .fd = events_fd, .events = POLLIN },
			{ .fd = watch_stdin ? STDIN_FILENO : -1, .events = POLLIN },
		};
		bool changed = false;
		long long wait;

		if (redraw) {
			_cleanup_free_ char *frame = NULL;

			if (render(ctl, s, err, events_fd >= 0 ? "following" : "ended", &frame) < 0) {
				r = oom();
				break;
			}
			draw(frame, t.width, t.height);
			if (ferror(stdout)) {
				r = CTL_EXIT_USAGE;
				break;
			}
			redraw = false;
		}
		wait = MAX(last + every - now_ms(), 0LL);
		if (poll(pfd, ELEMENTSOF(pfd), (int)wait) < 0 && errno != EINTR) {
			r = CTL_EXIT_USAGE;
			break;
		}
		if (pfd[0].revents) {
			unsigned char sig = 0;

			drain(signal_pipe[0], &sig);
			if (sig == SIGWINCH) {
				term_size(&t);
				redraw = true;
			} else if (sig)
				quit = true;
		}
		if (pfd[2].revents) {
			bool eof = false;

			quit |= keys_quit(&eof);
			watch_stdin = !eof;
		}
		if (pfd[1].revents) {
			unsigned char byte;

			changed = true;
			if (!drain(events_fd, &byte)) {
				/* xpud ended the stream (it stopped, or restarts) */
				events_fd = safe_close(events_fd);
				waitpid(child, NULL, 0);
				child = 0;
			}
		}
		if (!quit && (changed || now_ms() - last >= every)) {
			free(err);
			refresh(ctl, s, &err);
			last = now_ms();
			redraw = true;
		}
	}

	term_leave(&t);
out:
	signal_pipe[0] = safe_close(signal_pipe[0]);
	signal_pipe[1] = safe_close(signal_pipe[1]);
	safe_close(events_fd);
	if (child > 0) {
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
	}
	return r;
}

int verb_top(struct ctl *ctl, char **args)
{
	_cleanup_(snapshot_done) struct snapshot s = {};
	long long every = REFRESH_MS;
	char *error = NULL;
	uint64_t usec;
	int r;

	if (ctl->json) {
		fprintf(stderr, "xpuctl: top has no JSON output (see devices, capacity, allocations)\n");
		return CTL_EXIT_USAGE;
	}
	if (ctl->interval) {
		if (parse_duration(ctl->interval, &usec) < 0 || usec < REFRESH_MIN_MS * 1000ULL ||
		    usec > REFRESH_MAX_MS * 1000ULL) {
			fprintf(stderr,
				"xpuctl: --interval: expected a duration from 100ms to 24h, not "
				"'%s'\n",
				ctl->interval);
			return CTL_EXIT_USAGE;
		}
		every = (long long)(usec / 1000);
	}
	r = ctl_connect(ctl);
	if (r != CTL_EXIT_OK)
		return r;

	r = refresh(ctl, &s, &error);
	if (r != CTL_EXIT_OK) {
		fprintf(stderr, "xpuctl: %s\n", error ?: "out of memory");
		free(error);
		return r;
	}
	if (!isatty(STDOUT_FILENO)) {
		_cleanup_free_ char *frame = NULL;

		if (render(ctl, &s, NULL, NULL, &frame) < 0)
			return oom();
		fputs(frame, stdout);
		return CTL_EXIT_OK;
	}
	return top_interactive(ctl, &s, error, every);
}
