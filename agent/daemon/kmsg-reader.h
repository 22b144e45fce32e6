/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The kernel's log, read on the loop: /dev/kmsg below the host root, opened once, non-blocking,
 * and read when epoll says so. Every record goes to a callback, in order, each once across
 * restarts of xpud: the sequence number of the last one handled is kept in the state directory
 * ("kmsg-seq", with the boot id it belongs to), saved a second after a batch changed it and when
 * the reader is freed.
 *
 * Two kinds of file: the kernel's /dev/kmsg (a character device: one record per read(),
 * -EPIPE when the kernel overwrote records not yet read, a position that seeks) and, below a
 * fixture root, a FIFO that tests write records into (a read may return several records or
 * part of one: they are split at each newline followed by a record's header, dictionary lines
 * start with a space). The FIFO is opened read-write, so the reader is a writer of its own and
 * never sees an end of file or a hang-up when a test closes its end.
 *
 * Where it starts: with no saved number, at the end (what the kernel logged before is not
 * acted on; a FIFO has no past). With a saved number of this boot, at the beginning, skipping
 * what was handled; a gap after it is reported as lost. After a reboot (another boot id, or a
 * saved number the log never reaches), at the beginning: all of this boot's log is new.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "shared/host.h"
#include "shared/kmsg.h"
#include "shared/macro.h"

#define KMSG_STATE_FILE "kmsg-seq"
/* Records handled per turn of the loop at most: a storm does not starve the other sources. */
#define KMSG_BATCH_MAX 256
/* How long after a batch KMSG_STATE_FILE is saved (once for all the batches meanwhile). */
#define KMSG_SAVE_DELAY_USEC (1000 * 1000ULL)

/* Tests stand in for the kernel's /dev/kmsg: its reads and seeks (errno set on -1), on the fd
 * the reader opened (a FIFO, for its readiness). */
struct kmsg_reader_io {
	ssize_t (*read)(int fd, void *buf, size_t size, void *userdata);
	off_t (*seek)(int fd, off_t offset, int whence, void *userdata);
	bool records; /* read as the kernel's device is (one record per read), whatever it is */
	void *userdata;
};

struct kmsg_reader_options {
	const struct xpu_host *host; /* dev/kmsg and proc/sys/kernel/random/boot_id below it */
	const char *state_dir;	     /* where KMSG_STATE_FILE is kept; NULL: nowhere */
	/* Each record, borrowed for the call; NULL after the last of one batch. */
	void (*record)(const struct kmsg_record *rec, void *userdata);
	/* Reading stopped for good after it had started (a read error): why. Optional. */
	void (*stopped)(const char *reason, void *userdata);
	void *userdata;
	const struct kmsg_reader_io *io; /* NULL: the system calls */
	uint64_t save_delay_usec;	 /* 0: KMSG_SAVE_DELAY_USEC */
};

struct kmsg_reader;

/*
 * Opens the log and starts reading it on @e. Returns 0; or -errno when the log cannot be read
 * (-ENOENT missing, -EACCES/-EPERM without the right to read it, -EISDIR or -ENODEV for a file
 * that is no log), with a malloc'd one-line reason in *@ret_reason ("/dev/kmsg: Permission
 * denied ..."); -ENOMEM. Logs what it does at info and below, not the failure to open.
 */
int kmsg_reader_new(sd_event *e, const struct kmsg_reader_options *o, struct kmsg_reader **ret,
		    char **ret_reason);
struct kmsg_reader *kmsg_reader_free(struct kmsg_reader *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct kmsg_reader *, kmsg_reader_free);
