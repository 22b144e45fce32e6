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

#include "backends/kmod-config.h"
#include "backends/nvidia-config.h"
#include "backends/vendor-rules.h"
#include "core/config.h"
#include "shared/strv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct config_section *const sections[] = {
	&nvidia_config_section,
	&kmod_config_section,
	NULL,
};

/* What docs/configuration.md promises of a configuration xpud accepted. */
static void check_accepted(const struct config *c)
{
	const char *const paths[] = { c->socket_path, c->kubelet_dir, c->pre_start_hook,
				      c->cdi_dir,     c->nfd_dir };
	const struct nvidia_config *nv = nvidia_config_get(c);
	const struct kmod_config *km = kmod_config_get(c);

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (paths[i] && paths[i][0] != '/')
			abort(); /* paths are absolute */
	if (c->socket_mode > 0777)
		abort();
	if (!config_section(c, "nvidia") || !config_section(c, "kmod"))
		abort(); /* an accepted file has every section, if only with defaults */
	if (km->resource && !resource_name_valid(km->resource))
		abort();
	if (nv->nvml_library && !nv->nvml_library[0])
		abort();
	if (nv->xid_actions.n > 0 && !nv->xid_actions.items)
		abort();
	for (size_t i = 0; i < nv->xid_actions.n; i++)
		if (nv->xid_actions.items[i].xid == 0 ||
		    !health_action_to_string(nv->xid_actions.items[i].action))
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

	config_init_sections(&c, sections);
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
		STRV_FOREACH(w, c.warnings)
			if (strncmp(*w, "line ", 5) != 0)
				abort(); /* a warning names its line too */
		check_accepted(&c);
	}
	free(err);
	err = NULL;
	config_done(&c);

	r = config_parse_layout(text, size, &o, &err);
	if (r < 0) {
		if (r == -EINVAL && (!err || strncmp(err, "line ", 5) != 0))
			abort();
	} else if (err || !offer_kind_to_string(o.kind, o.scheme)) {
		abort(); /* an accepted layout offers something */
	}
	free(err);
	offer_done(&o);
	free(text);
	return 0;
}
