// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The configuration file's parser (xpud.yaml) on its own: any bytes are either a configuration
 * whose values are within their documented limits, or a rejection that says which line is wrong.
 * The layout parser (xpuctl repartition) gets the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vendor-rules.h"
#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What docs/configuration.md promises of a configuration xpud accepted. */
static void check_accepted(const struct config *c)
{
	const char *const paths[] = { c->socket_path, c->kubelet_dir, c->pre_start_hook,
				      c->cdi_dir,     c->nfd_dir };

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (paths[i] && paths[i][0] != '/')
			abort(); /* paths are absolute */
	if (c->socket_mode > 0777)
		abort();
	if (c->kmod_resource && !resource_name_valid(c->kmod_resource))
		abort();
	if (c->n_xid_actions > 0 && !c->xid_actions)
		abort();
	for (size_t i = 0; i < c->n_xid_actions; i++)
		if (!health_action_to_string(c->xid_actions[i].action))
			abort();
	if (c->reset_when_idle & ~CONFIG_ALL_KINDS)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, *err = NULL;
	struct offer o = {};
	struct config c;
	int r;

	partition_schemes_set(backend_partition_schemes);
	/* exactly @size bytes, no terminator: the parser must not read past the length */
	text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);

	config_init(&c);
	r = config_parse(text, size, &c, &err);
	if (r < 0) {
		if (r != -EINVAL && r != -ENOMEM)
			abort();
		/* every rejection explains itself, with its line */
		if (r == -EINVAL && (!err || strncmp(err, "line ", 5) != 0))
			abort();
	} else {
		if (err)
			abort(); /* no message with a success */
		check_accepted(&c);
	}
	free(err);
	err = NULL;
	config_done(&c);

	r = config_parse_layout(text, size, &o, &err);
	if (r < 0) {
		if (r == -EINVAL && (!err || strncmp(err, "line ", 5) != 0))
			abort();
	} else if (err || !offer_kind_to_string(o.kind)) {
		abort(); /* an accepted layout offers something */
	}
	free(err);
	offer_done(&o);
	free(text);
	return 0;
}
