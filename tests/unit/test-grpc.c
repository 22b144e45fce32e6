// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Our gRPC layer: the framing and header values (pure), and the server and the client talking
 * to each other over a Unix socket on one sd-event loop. The interoperability with grpc-go,
 * the library kubelet uses, is tested by tests/k8s/.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "kube/grpc.h"

/* --- Pure parts ----------------------------------------------------------------------------- */

static void test_frame(void **state)
{
	uint8_t buf[32];
	const uint8_t *msg;
	size_t len, used;

	assert_int_equal(grpc_frame_header(buf, 3), 0);
	memcpy(buf + 5, "abc", 3);
	assert_memory_equal(buf, "\0\0\0\0\3abc", 8);
	/* every prefix is incomplete, the whole is one message */
	for (size_t n = 0; n < 8; n++)
		assert_int_equal(grpc_frame_next(buf, n, 100, &msg, &len, &used), 0);
	assert_int_equal(grpc_frame_next(buf, 8, 100, &msg, &len, &used), 1);
	assert_int_equal(len, 3);
	assert_int_equal(used, 8);
	assert_memory_equal(msg, "abc", 3);
	assert_int_equal(grpc_frame_single(buf, 8, 100, &msg, &len), 0);
	/* trailing bytes, a partial message, nothing */
	assert_int_equal(grpc_frame_single(buf, 9, 100, &msg, &len), -EBADMSG);
	assert_int_equal(grpc_frame_single(buf, 7, 100, &msg, &len), -EBADMSG);
	assert_int_equal(grpc_frame_single(buf, 0, 100, &msg, &len), -EBADMSG);
	/* an empty message is a message */
	assert_int_equal(grpc_frame_header(buf, 0), 0);
	assert_int_equal(grpc_frame_single(buf, 5, 100, &msg, &len), 0);
	assert_int_equal(len, 0);
	/* too large: decided from the header alone */
	assert_int_equal(grpc_frame_header(buf, 101), 0);
	assert_int_equal(grpc_frame_next(buf, 5, 100, &msg, &len, &used), -EMSGSIZE);
	memcpy(buf, "\xff\xff\xff\xff\xff", 5);
	assert_int_equal(grpc_frame_next(buf, 5, 100, &msg, &len, &used), -EBADMSG);
	memcpy(buf, "\x01\0\0\0\0", 5);
	assert_int_equal(grpc_frame_next(buf, 1, 100, &msg, &len, &used), -EPROTONOSUPPORT);
}

static void test_timeout(void **state)
{
	uint64_t u;
	char buf[10];

	assert_int_equal(grpc_timeout_parse("5S", &u), 0);
	assert_int_equal(u, 5000000);
	assert_int_equal(grpc_timeout_parse("100m", &u), 0);
	assert_int_equal(u, 100000);
	assert_int_equal(grpc_timeout_parse("1n", &u), 0);
	assert_int_equal(u, 1); /* rounded up: never earlier than asked */
	assert_int_equal(grpc_timeout_parse("99999999H", &u), 0);
	assert_int_equal(u, 99999999ULL * 3600ULL * 1000000ULL);
	assert_int_equal(grpc_timeout_parse("2M", &u), 0);
	assert_int_equal(u, 120000000);
	assert_int_equal(grpc_timeout_parse("123456789S", &u), -EINVAL); /* 9 digits */
	assert_int_equal(grpc_timeout_parse("S", &u), -EINVAL);
	assert_int_equal(grpc_timeout_parse("5", &u), -EINVAL);
	assert_int_equal(grpc_timeout_parse("5s", &u), -EINVAL);
	assert_int_equal(grpc_timeout_parse("5SS", &u), -EINVAL);
	assert_int_equal(grpc_timeout_parse("-5S", &u), -EINVAL);
	assert_int_equal(grpc_timeout_parse("", &u), -EINVAL);

	assert_string_equal(grpc_timeout_format(1500, buf), "1500u");
	assert_string_equal(grpc_timeout_format(100000000, buf), "100000m");
	assert_string_equal(grpc_timeout_format(100000001, buf), "100001m");
	/* and back: never shorter */
	assert_int_equal(grpc_timeout_parse(grpc_timeout_format(123456789012ULL, buf), &u), 0);
	assert_true(u >= 123456789012ULL);
}

static void test_message_encoding(void **state)
{
	char *e, *d;

	e = grpc_message_encode("100% sure\nnot ü");
	assert_string_equal(e, "100%25 sure%0Anot %C3%BC");
	d = grpc_message_decode(e, strlen(e));
	assert_string_equal(d, "100% sure\nnot ü");
	free(e);
	free(d);
	/* lenient: broken escapes stay, NUL bytes go */
	d = grpc_message_decode("a%zz%4", 6);
	assert_string_equal(d, "a%zz%4");
	free(d);
	d = grpc_message_decode("a%00b", 5);
	assert_string_equal(d, "ab");
	free(d);
	assert_string_equal(grpc_status_to_string(GRPC_STATUS_RESOURCE_EXHAUSTED),
			    "RESOURCE_EXHAUSTED");
	assert_string_equal(grpc_status_to_string(99), "UNKNOWN");
}

/* --- Server and client on one loop ---------------------------------------------------------- */

struct fixture {
	sd_event *event;
	char dir[64];
	char path[128];
	struct grpc_server *server;
	struct grpc_call *kept; /* the Hang method's call */
	unsigned closed;	/* on_close callbacks seen */
	/* the last reply */
	unsigned replies;
	int status;
	char *message;
	uint8_t *reply;
	size_t reply_len;
};

static void echo(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata)
{
	assert_int_equal(grpc_call_send(c, msg, len), 0);
	assert_int_equal(grpc_call_finish(c, GRPC_STATUS_OK, NULL), 0);
}

static void refuse(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata)
{
	assert_int_equal(grpc_call_finish(c, GRPC_STATUS_FAILED_PRECONDITION,
					  "slice 0000:17:00.0 is 100% gone\n"),
			 0);
}

static void silent(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata)
{
	/* neither answers nor keeps the call: the layer answers INTERNAL */
}

static void on_kept_close(struct grpc_call *c, void *userdata)
{
	struct fixture *f = userdata;

	assert_ptr_equal(c, f->kept);
	f->kept = NULL;
	f->closed++;
}

static void hang(struct grpc_call *c, const uint8_t *msg, size_t len, void *userdata)
{
	struct fixture *f = userdata;

	f->kept = c;
	grpc_call_set_on_close(c, on_kept_close, f);
}

static const struct grpc_method methods[] = {
	{ "/t.S/Echo", echo },
	{ "/t.S/Fail", refuse },
	{ "/t.S/Silent", silent },
	{ "/t.S/Hang", hang },
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct grpc_limits limits = GRPC_LIMITS_DEFAULT;
	int fd;

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test-grpc-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/s.sock", f->dir);
	strcpy(sun.sun_path, f->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(sd_event_new(&f->event), 0);
	limits.max_message_bytes = 1024;
	assert_int_equal(grpc_server_new(f->event, fd, &limits, methods, ELEMENTSOF(methods), f,
					 &f->server),
			 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	grpc_server_free(f->server);
	sd_event_unref(f->event);
	unlink(f->path);
	rmdir(f->dir);
	free(f->message);
	free(f->reply);
	free(f);
	return 0;
}

static void on_reply(int status, const char *message, const uint8_t *reply, size_t len,
		     void *userdata)
{
	struct fixture *f = userdata;

	f->replies++;
	f->status = status;
	free(f->message);
	f->message = message ? strdup(message) : NULL;
	free(f->reply);
	f->reply = NULL;
	f->reply_len = len;
	if (reply) {
		f->reply = malloc(len + 1);
		memcpy(f->reply, reply, len);
	}
}

/* Calls @path and runs the loop until the reply (5 s at most). */
static void call(struct fixture *f, const char *path, const void *msg, size_t len,
		 uint64_t timeout_usec)
{
	struct grpc_client_call *cc;
	unsigned before = f->replies;

	assert_int_equal(grpc_client_call_new(f->event, f->path, path, msg, len, timeout_usec,
					      on_reply, f, &cc),
			 0);
	for (unsigned i = 0; i < 5000 && f->replies == before; i++)
		assert_true(sd_event_run(f->event, 1000) >= 0);
	assert_int_equal(f->replies, before + 1);
}

static void test_unary(void **state)
{
	struct fixture *f = *state;

	call(f, "/t.S/Echo", "hello", 5, 0);
	assert_int_equal(f->status, GRPC_STATUS_OK);
	assert_int_equal(f->reply_len, 5);
	assert_memory_equal(f->reply, "hello", 5);
	/* an empty message, with a deadline that does not pass */
	call(f, "/t.S/Echo", "", 0, 5000000);
	assert_int_equal(f->status, GRPC_STATUS_OK);
	assert_int_equal(f->reply_len, 0);
	assert_non_null(f->reply);
	/* the largest allowed */
	{
		uint8_t big[1024];

		memset(big, 'x', sizeof(big));
		call(f, "/t.S/Echo", big, sizeof(big), 0);
		assert_int_equal(f->status, GRPC_STATUS_OK);
		assert_int_equal(f->reply_len, sizeof(big));
	}
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	uint8_t big[1025];

	call(f, "/t.S/Fail", "x", 1, 0);
	assert_int_equal(f->status, GRPC_STATUS_FAILED_PRECONDITION);
	assert_string_equal(f->message, "slice 0000:17:00.0 is 100% gone\n");
	assert_null(f->reply);

	call(f, "/t.S/Nope", "x", 1, 0);
	assert_int_equal(f->status, GRPC_STATUS_UNIMPLEMENTED);
	assert_string_equal(f->message, "unknown method");

	call(f, "/t.S/Silent", "x", 1, 0);
	assert_int_equal(f->status, GRPC_STATUS_INTERNAL);

	memset(big, 'x', sizeof(big));
	call(f, "/t.S/Echo", big, sizeof(big), 0);
	assert_int_equal(f->status, GRPC_STATUS_RESOURCE_EXHAUSTED);
	assert_string_equal(f->message, "request message too large");

	/* the server is still fine, and every finished connection went away */
	call(f, "/t.S/Echo", "ok", 2, 0);
	assert_int_equal(f->status, GRPC_STATUS_OK);
	for (unsigned i = 0; i < 100 && grpc_server_n_connections(f->server) > 0; i++)
		assert_true(sd_event_run(f->event, 10000) >= 0);
	assert_int_equal(grpc_server_n_connections(f->server), 0);
}

static void test_deadline(void **state)
{
	struct fixture *f = *state;

	/* both sides enforce it: the client answers, the server ends the kept call */
	call(f, "/t.S/Hang", "x", 1, 50000);
	assert_int_equal(f->status, GRPC_STATUS_DEADLINE_EXCEEDED);
	for (unsigned i = 0; i < 100 && f->kept; i++)
		assert_true(sd_event_run(f->event, 10000) >= 0);
	assert_null(f->kept);
	assert_int_equal(f->closed, 1);
}

static void test_server_stops(void **state)
{
	struct fixture *f = *state;
	struct grpc_client_call *cc;

	assert_int_equal(grpc_client_call_new(f->event, f->path, "/t.S/Hang", "x", 1, 0, on_reply,
					      f, &cc),
			 0);
	for (unsigned i = 0; i < 1000 && !f->kept; i++)
		assert_true(sd_event_run(f->event, 1000) >= 0);
	assert_non_null(f->kept);
	/* the keeper learns it, the client gets an error, not a hang */
	f->server = grpc_server_free(f->server);
	assert_null(f->kept);
	assert_int_equal(f->closed, 1);
	for (unsigned i = 0; i < 1000 && f->replies == 0; i++)
		assert_true(sd_event_run(f->event, 1000) >= 0);
	assert_int_equal(f->replies, 1);
	assert_int_not_equal(f->status, GRPC_STATUS_OK);
}

static void test_client_cancel_and_absent(void **state)
{
	struct fixture *f = *state;
	struct grpc_client_call *cc;
	char missing[160];

	snprintf(missing, sizeof(missing), "%s/none.sock", f->dir);
	assert_int_equal(grpc_client_call_new(f->event, missing, "/t.S/Echo", "x", 1, 0, on_reply,
					      f, &cc),
			 -ENOENT);
	/* a cancelled call never calls back; the server side closes the kept call */
	assert_int_equal(grpc_client_call_new(f->event, f->path, "/t.S/Hang", "x", 1, 0, on_reply,
					      f, &cc),
			 0);
	for (unsigned i = 0; i < 1000 && !f->kept; i++)
		assert_true(sd_event_run(f->event, 1000) >= 0);
	assert_non_null(f->kept);
	grpc_client_call_cancel(cc);
	for (unsigned i = 0; i < 1000 && f->kept; i++)
		assert_true(sd_event_run(f->event, 1000) >= 0);
	assert_null(f->kept);
	assert_int_equal(f->replies, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_message_encoding),
		cmocka_unit_test_setup_teardown(test_unary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_cancel_and_absent, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
