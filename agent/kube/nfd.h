/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Node labels through Node Feature Discovery's local feature files: NFD's worker reads every
 * file in features.d/ and turns its KEY=VALUE lines into node labels. xpud writes one file,
 * "xpud", with the labels gpu-feature-discovery and the AMD labeller use where they exist
 * (nvidia.com/gpu.product, ...) and its own under xpu.dev/. Its first line,
 * "# +expiry-time=<RFC 3339>", makes NFD drop the labels if xpud dies and stops refreshing
 * them. The label and document builders are pure; the writer lives on the daemon's loop.
 */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

#include "core/device.h"
#include "core/inventory.h"
#include "shared/macro.h"

#define NFD_DEFAULT_DIR "/etc/kubernetes/node-feature-discovery/features.d"
#define NFD_FILE "xpud"
#define NFD_EXPIRY_USEC (3600ULL * 1000000ULL)	/* labels live an hour without xpud */
#define NFD_REFRESH_USEC (1200ULL * 1000000ULL) /* rewritten every 20 minutes */
#define NFD_LABEL_VALUE_MAX 63

/*
 * @s made a valid Kubernetes label value: at most 63 characters of [A-Za-z0-9._-], beginning
 * and ending with an alphanumeric; blanks and other characters become '-'. *ret is NULL when
 * nothing valid is left. 0 or -ENOMEM.
 */
int nfd_label_value(const char *s, char **ret);

/* The labels of @devs as sorted "KEY=VALUE" strings (an empty list for none). 0 or -ENOMEM. */
int nfd_labels(const struct device_list *devs, char ***ret);

/* "2024-05-01T10:20:30Z" for @realtime_usec (UTC), in @buf. 0 or -EINVAL. */
int nfd_format_time(uint64_t realtime_usec, char *buf, size_t size);

/* The file: the expiry line for @expiry_usec (CLOCK_REALTIME), then one label a line.
 * 0 or -ENOMEM / -EINVAL. */
int nfd_document(char *const *labels, uint64_t expiry_usec, char **ret);

struct nfd_writer;

/*
 * Keeps @dir/xpud up to date with @inv's labels (borrowed, must outlive the writer): at once,
 * after every change (coalesced to once per loop iteration, written only when the labels
 * changed) and every NFD_REFRESH_USEC with a new expiry. -ENOENT (logged at info) when @dir
 * does not exist: NFD is not installed, the labels are off. A file that cannot be written is a
 * warning; xpud goes on. Other errors -errno, logged.
 */
int nfd_writer_new(sd_event *e, const char *dir, struct inventory *inv, struct nfd_writer **ret);
/* Accepts NULL, returns NULL. The file stays: it expires by itself, and a restarting xpud
 * does not make the node's labels flap. */
struct nfd_writer *nfd_writer_free(struct nfd_writer *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nfd_writer *, nfd_writer_free);
/* Something in the inventory changed. */
void nfd_writer_changed(struct nfd_writer *w);
