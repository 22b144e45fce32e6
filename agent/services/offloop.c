// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "services/offloop.h"
#include "shared/macro.h"

struct offloop {
	offloop_work_t work;
	offloop_done_t done;
	void *data;
	int result;
	pthread_t thread;
	int efd;
	sd_event_source *source;
};

static void offloop_free(struct offloop *j)
{
	sd_event_source_disable_unref(j->source);
	safe_close(j->efd);
	free(j);
}

static void *offloop_thread(void *userdata)
{
	struct offloop *j = userdata;
	uint64_t one = 1;

	j->result = j->work(j->data);
	/* an eventfd write of 1 fails only on a counter overflow */
	if (write(j->efd, &one, sizeof(one)) < 0)
		return NULL;
	return NULL;
}

static int on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct offloop *j = userdata;
	offloop_done_t done = j->done;
	void *data = j->data;
	int result;

	(void)pthread_join(j->thread, NULL);
	result = j->result;
	offloop_free(j);
	done(result, data);
	return 0;
}

int offloop_start(sd_event *e, const char *description, offloop_work_t work, offloop_done_t done,
		  void *data, struct offloop **ret)
{
	struct offloop *j = calloc(1, sizeof(*j));
	int r;

	if (!j)
		return -ENOMEM;
	*j = (struct offloop){ .work = work, .done = done, .data = data };
	j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (j->efd < 0) {
		r = -errno;
		free(j);
		return r;
	}
	r = sd_event_add_io(e, &j->source, j->efd, EPOLLIN, on_done, j);
	if (r < 0) {
		offloop_free(j);
		return r;
	}
	(void)sd_event_source_set_description(j->source, description);
	r = -pthread_create(&j->thread, NULL, offloop_thread, j);
	if (r < 0) {
		offloop_free(j);
		return r;
	}
	*ret = j;
	return 0;
}

void offloop_cancel(struct offloop *j)
{
	if (!j)
		return;
	(void)pthread_join(j->thread, NULL);
	offloop_free(j);
}
