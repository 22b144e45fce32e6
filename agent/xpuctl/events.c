// SPDX-License-Identifier: GPL-2.0-or-later
/* Following the daemon's event stream until it ends it or a signal comes. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xpu/client.h"
#include "xpuctl/output.h"
#include "xpuctl/xpuctl.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	stop_requested = 1;
}

struct events_ctx {
	bool json;
	bool output_failed;
};

static void print_event_line(const json_t *ev)
{
	const json_t *dev = json_object_get(ev, "device");
	const char *type = j_str(ev, "type") ?: "?";
	char when[32];

	/* The type padded to the longest known one ("health-changed") keeps IDs aligned. */
	printf("%s ", fmt_time_usec(json_object_get(ev, "time_usec"), when) ?: "-");
	put_sanitized(type, stdout);
	printf("%*s", MAX(14 - (int)strlen(type), 0) + 1, "");
	put_sanitized(j_str(ev, "device_id") ?: j_str(dev, "id") ?: "-", stdout);

	if (streq(type, "health-changed")) {
		const json_t *health = json_object_get(dev, "health");
		const json_t *tr = json_object_get(ev, "transition");
		const char *prev = j_str(json_object_get(ev, "previous"), "state");
		const char *reason = j_str(health, "reason");

		/* the state machine's phases where it made the change, else the states */
		printf(" ");
		put_sanitized((tr ? j_str(tr, "from") : prev) ?: "?", stdout);
		printf(" -> ");
		put_sanitized((tr ? j_str(tr, "to") : health_state(health)) ?: "?", stdout);
		if (tr && j_str(tr, "signal")) {
			printf(" on ");
			put_sanitized(j_str(tr, "signal"), stdout);
		}
		if (tr)
			reason = j_str(tr, "reason");
		if (reason) {
			printf(" (");
			put_sanitized(reason, stdout);
			printf(")");
		}
	} else {
		const char *fields[] = { j_str(dev, "kind"), j_str(dev, "vendor"),
					 j_str(dev, "model") };

		for (size_t i = 0; i < ELEMENTSOF(fields); i++)
			if (fields[i]) {
				putchar(' ');
				put_sanitized(fields[i], stdout);
			}
	}
	putchar('\n');
}

static int on_event(json_t *ev, void *userdata)
{
	struct events_ctx *ctx = userdata;

	if (stop_requested)
		return 1;

	if (ctx->json) {
		_cleanup_free_ char *s = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);

		if (!s)
			return -ENOMEM;
		puts(s);
	} else if (streq_ptr(j_str(ev, "type"), "subscribed")) {
		/* The stream's opening handshake, not an event: only -o json shows it. */
		return 0;
	} else
		print_event_line(ev);

	/* One line per event, promptly, also into a pipe. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctx->output_failed = true;
		return 1;
	}
	return stop_requested ? 1 : 0;
}

int verb_events(struct ctl *ctl, char **args)
{
	struct events_ctx ctx = { .json = ctl->json };
	/* No SA_RESTART: the first signal interrupts the wait; SA_RESETHAND: a second one kills. */
	struct sigaction sa = { .sa_handler = on_stop_signal, .sa_flags = SA_RESETHAND };
	const char *message = NULL;
	int r, status;

	r = ctl_connect(ctl);
	if (r != CTL_EXIT_OK)
		return r;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	r = xpu_client_stream(ctl->client, "/v1/events", on_event, &ctx);
	if (ctx.output_failed)
		return CTL_EXIT_USAGE; /* reported by main()'s final flush check */
	if (r > 0 || r == 0 || stop_requested)
		return CTL_EXIT_OK;

	status = xpu_client_last_error(ctl->client, &message);
	if (status > 0) {
		json_t *doc = message ? json_pack("{s:s}", "message", message) : NULL;

		r = daemon_error(status, doc);
		json_decref(doc);
		return r;
	}
	return transport_error(ctl, r);
}
