// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "bounded.h"

/* Shared by the thread and the caller; the last of the two destroys it. */
struct bounded {
	atomic_int refs;
	int (*fn)(void *data);
	void *data;
	void (*destroy)(void *data);
	int result;
};

static void bounded_unref(struct bounded *b)
{
	if (atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	if (b->destroy)
		b->destroy(b->data);
	free(b);
}

static void *bounded_thread(void *userdata)
{
	struct bounded *b = userdata;

	b->result = b->fn(b->data);
	bounded_unref(b);
	return NULL;
}

int bounded_call(int (*fn)(void *data), void *data, void (*destroy)(void *data),
		 uint64_t timeout_usec)
{
	struct timespec deadline;
	struct bounded *b;
	pthread_t t;
	int r;

	b = calloc(1, sizeof(*b));
	if (!b) {
		if (destroy)
			destroy(data);
		return -ENOMEM;
	}
	*b = (struct bounded){ .fn = fn, .data = data, .destroy = destroy };
	atomic_init(&b->refs, 2);
	if (pthread_create(&t, NULL, bounded_thread, b) != 0) {
		atomic_store(&b->refs, 1);
		bounded_unref(b);
		return -EAGAIN;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += (time_t)(timeout_usec / 1000000);
	deadline.tv_nsec += (long)(timeout_usec % 1000000) * 1000;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	if (pthread_timedjoin_np(t, NULL, &deadline) != 0) {
		pthread_detach(t);
		bounded_unref(b);
		return -ETIMEDOUT;
	}
	r = b->result;
	bounded_unref(b);
	return r;
}
