// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for libxpu's response parser: the input is everything a server answers on one
 * connection. It is read as the answer to a plain request and as an event stream, through the
 * code xpu_client_request() and xpu_client_stream() run once their request is sent
 * (lib/client-internal.h). The bytes travel over a socketpair whose far end closes after the
 * last of them, so no input can make the parser wait; nothing touches the file system.
 *
 * Each way is read twice: in one piece, and in pieces whose size derives from the input, and
 * both must come out the same (where reads split an answer must not change how it parses). A
 * SOCK_SEQPACKET pair, written by a thread that lives as long as the process, hands the parser
 * exactly one piece per read. Pieces are powers of two, so a record never meets a smaller free
 * space in the parser's 64 KiB buffer (which would truncate it); inputs of that size or more
 * are only read in one piece, over a stream socket.
 *
 * Besides memory errors, the harness checks the documented contract: results are 0 or one of
 * the listed errors, output parameters are written only on success, and last_error reports
 * exactly the HTTP error answers. A stream may also end in -EINTR, as documented: libFuzzer's
 * SIGALRM (its -timeout check, installed without SA_RESTART) can land while the parser waits
 * for the writer thread. That thread blocks all signals, so the alarm always reaches the
 * fuzzing thread, where libFuzzer needs it.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/client-internal.h"
#include "shared/macro.h"
#include "xpu/client.h"

#define READ_BUF_SIZE (64 * 1024) /* the parser's, in client.c */
#define IO_TIMEOUT_SEC 5	  /* a safety net: the writer always finishes and closes */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct writer {
	int fd, flags;
	const uint8_t *data;
	size_t size, piece;
};

/* Writes @w's data, then closes its end. */
static void writer_write(const struct writer *w)
{
	for (size_t off = 0; off < w->size;) {
		ssize_t k = send(w->fd, w->data + off, MIN(w->piece, w->size - off),
				 MSG_NOSIGNAL | w->flags);

		if (k <= 0)
			break; /* the parser stopped reading and closed its end: fine */
		off += (size_t)k;
	}
	close(w->fd);
}

/* The writer thread: one job at a time, handed over in @job_ready, finished in @job_done. */
static struct writer job;
static sem_t job_ready, job_done;

static void *writer_thread(void *userdata)
{
	for (;;) {
		while (sem_wait(&job_ready) < 0)
			;
		writer_write(&job);
		sem_post(&job_done);
	}
	return NULL;
}

static void writer_thread_start(void)
{
	static bool started;
	sigset_t all, saved;
	pthread_t thread;

	if (started)
		return;
	/* The thread inherits the mask in force when it is created. */
	sigfillset(&all);
	if (sem_init(&job_ready, 0, 0) < 0 || sem_init(&job_done, 0, 0) < 0 ||
	    pthread_sigmask(SIG_SETMASK, &all, &saved) != 0 ||
	    pthread_create(&thread, NULL, writer_thread, NULL) != 0 ||
	    pthread_sigmask(SIG_SETMASK, &saved, NULL) != 0 || pthread_detach(thread) != 0)
		abort();
	started = true;
}

static void set_timeout(int fd, int optname)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_SEC };

	if (setsockopt(fd, SOL_SOCKET, optname, &tv, sizeof(tv)) < 0)
		abort();
}

/*
 * Serves @data on a new connection and calls @consume with its client end, which @consume
 * takes over. Returns what @consume returned.
 */
static int serve(const uint8_t *data, size_t size, size_t piece,
		 int (*consume)(int fd, void *userdata), void *userdata)
{
	struct writer w = { .data = data, .size = size, .piece = piece };
	bool threaded = piece < size && size < READ_BUF_SIZE;
	int sv[2], sndbuf = 1024 * 1024, r;

	if (socketpair(AF_UNIX, (threaded ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC, 0, sv) <
	    0)
		abort();
	set_timeout(sv[0], SO_RCVTIMEO);
	set_timeout(sv[1], SO_SNDTIMEO);
	w.fd = sv[1];

	if (threaded) {
		writer_thread_start();
		job = w;
		sem_post(&job_ready);
	} else {
		/*
		 * All of it fits the enlarged socket buffer: one write, then the close. Should
		 * the system cap the buffer below the input, the tail is dropped, never waited on.
		 */
		(void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		w.piece = SIZE_MAX;
		w.flags = MSG_DONTWAIT;
		writer_write(&w);
	}

	r = consume(sv[0], userdata);

	/* @consume closed its end: the writer is done or about to fail on the closed socket. */
	if (threaded)
		while (sem_wait(&job_done) < 0)
			;
	return r;
}

static bool is_listed_error(int r)
{
	switch (r) {
	case -EBADMSG:	  /* not HTTP, not JSON */
	case -EMSGSIZE:	  /* over a limit */
	case -ECONNRESET: /* the answer ended early */
	case -ENOMEM:
		return true;
	default:
		return false;
	}
}

/* The errno xpu_client_stream() documents for an HTTP error status instead of a stream. */
static int status_errno(int status)
{
	switch (status) {
	case 400:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 405:
	case 501:
		return -EOPNOTSUPP;
	case 429:
	case 503:
		return -EAGAIN;
	default:
		return status >= 500 ? -EIO : -EPROTO;
	}
}

static bool is_status_error(int r)
{
	return r == -EINVAL || r == -EACCES || r == -ENOENT || r == -EOPNOTSUPP || r == -EAGAIN ||
	       r == -EPROTO || r == -EIO;
}

static void check_result(const char *what, int r, bool stream)
{
	if (r == 0 || is_listed_error(r) || (stream && (is_status_error(r) || r == -EINTR)))
		return;
	fprintf(stderr, "%s: unexpected result %d (%s)\n", what, r, strerror(r < 0 ? -r : r));
	abort();
}

/* ---- a plain request ------------------------------------------------------------------- */

struct request {
	struct xpu_client *client;
	int r, status, last;
	json_t *doc;
};

static int request_read(int fd, void *userdata)
{
	struct request *q = userdata;

	return client_request_fd(q->client, fd, &q->status, &q->doc);
}

/* Reads @data as the answer to a plain request and checks the contract; the caller owns ->doc. */
static void request_once(struct xpu_client *c, const uint8_t *data, size_t size, size_t piece,
			 struct request *ret)
{
	json_t *const unset = (json_t *)(uintptr_t)0x1;
	struct request q = { .client = c, .status = -1, .doc = unset };
	const char *message = NULL;

	q.r = serve(data, size, piece, request_read, &q);
	check_result("request", q.r, false);
	q.last = xpu_client_last_error(c, &message);

	if (q.r < 0) {
		if (q.status != -1 || q.doc != unset || q.last != 0)
			abort(); /* written on failure */
		q.doc = NULL;
	} else {
		if (q.status < 200 || q.status > 599)
			abort();
		if (q.last != (q.status >= 400 ? q.status : 0))
			abort();
		if (message && strlen(message) > size)
			abort();
	}
	*ret = q;
}

static bool doc_equal(const json_t *a, const json_t *b)
{
	return a == b || (a && b && json_equal(a, b));
}

static void fuzz_request(struct xpu_client *c, const uint8_t *data, size_t size, size_t piece)
{
	struct request whole, split;

	request_once(c, data, size, SIZE_MAX, &whole);
	if (piece < size && size < READ_BUF_SIZE) {
		request_once(c, data, size, piece, &split);
		if (split.r != whole.r || split.status != whole.status || split.last != whole.last ||
		    !doc_equal(split.doc, whole.doc)) {
			fprintf(stderr, "request: %d (status %d) whole, %d (status %d) in pieces of %zu\n",
				whole.r, whole.status, split.r, split.status, piece);
			abort();
		}
		json_decref(split.doc);
	}
	json_decref(whole.doc);
}

/* ---- a stream -------------------------------------------------------------------------- */

struct stream {
	struct xpu_client *client;
	int r, last;
	unsigned n_events, stop_after; /* 0: never stop */
};

static int on_event(json_t *doc, void *userdata)
{
	struct stream *s = userdata;
	const char *type;

	if (!doc)
		abort();
	/* What a caller does with an event: look at its fields. */
	type = json_string_value(json_object_get(doc, "type"));
	if (type && strlen(type) == SIZE_MAX)
		abort();

	s->n_events++;
	return s->stop_after > 0 && s->n_events >= s->stop_after ? 42 : 0;
}

static int stream_read(int fd, void *userdata)
{
	struct stream *s = userdata;

	return client_stream_fd(s->client, fd, on_event, s);
}

/* Follows @data as a stream and checks the contract. */
static void stream_once(struct xpu_client *c, const uint8_t *data, size_t size, size_t piece,
			struct stream *ret)
{
	struct stream s = { .client = c, .stop_after = size > 0 ? data[size - 1] % 4 : 0 };

	s.r = serve(data, size, piece, stream_read, &s);
	s.last = xpu_client_last_error(c, NULL);
	*ret = s;
	if (s.r == 42) {
		if (s.n_events != s.stop_after)
			abort(); /* the callback's value must stop the stream at once */
		return;
	}
	check_result("stream", s.r, true);

	/*
	 * An HTTP error answer instead of the stream: no events, its errno, and last_error set.
	 * A 3xx is no error status: -EPROTO with nothing in last_error.
	 */
	if (s.last != 0 && (s.last < 400 || s.r != status_errno(s.last) || s.n_events > 0))
		abort();
	if (s.last == 0 && is_status_error(s.r) && s.r != -EPROTO)
		abort();
}

static void fuzz_stream(struct xpu_client *c, const uint8_t *data, size_t size, size_t piece)
{
	struct stream whole, split;

	stream_once(c, data, size, SIZE_MAX, &whole);
	if (piece < size && size < READ_BUF_SIZE) {
		stream_once(c, data, size, piece, &split);
		/* Where a signal cut the wait short, the two cannot be compared. */
		if (whole.r == -EINTR || split.r == -EINTR)
			return;
		if (split.r != whole.r || split.n_events != whole.n_events ||
		    split.last != whole.last) {
			fprintf(stderr, "stream: %d after %u events whole, %d after %u in pieces of %zu\n",
				whole.r, whole.n_events, split.r, split.n_events, piece);
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t pieces[] = { 1, 2, 8, 64, 1024 };
	size_t piece = pieces[size % ELEMENTSOF(pieces)];
	struct xpu_client *c = NULL;

	/* Never connected: the *_fd() calls bring their own connection. */
	if (client_new_unconnected("/nonexistent/xpud.sock", &c) < 0)
		abort();

	fuzz_request(c, data, size, piece);
	fuzz_stream(c, data, size, piece);

	xpu_client_free(c);
	return 0;
}
