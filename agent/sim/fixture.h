/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fixture trees: a fake host (sys/, dev/, proc/, run/) generated from a readable JSON node
 * description, used by the tests and by `xpud --simulate`. The format is documented in
 * tests/fixtures/README.md. Nothing here logs; errors come back as -errno plus a message.
 */
#pragma once

#include <stddef.h>

struct sim_node {
	const char *name;
	const char *json; /* the description's text */
};

/* The descriptions embedded at build time from tests/fixtures/nodes/ (generated sim-nodes.c). */
extern const struct sim_node sim_nodes[];
extern const size_t sim_nodes_n;
const struct sim_node *sim_node_find(const char *name);

/*
 * Materialises the node described by @json below the existing directory @dir (merging into what
 * is there, so a second description can add devices to a tree: hot-plug tests do this).
 * Returns 0, or -EINVAL with a malloc'd message in *ret_error (which may be NULL) naming the
 * offending key, or -errno from the file system.
 */
int fixture_build(const char *json, const char *dir, char **ret_error);

/*
 * Removes one PCI function (and its class devices, bus and class links) from a tree built by
 * fixture_build(), as a hot-unplug would. Returns 0 or -ENOENT.
 */
int fixture_remove_pci(const char *dir, const char *address);

/* Creates a fresh mkdtemp() directory under $TMPDIR (or /tmp) and builds @json in it. */
int fixture_build_temp(const char *json, char **ret_dir, char **ret_error);
/* rm -rf of a tree made by fixture_build_temp(). 0 or -errno. */
int fixture_destroy(const char *dir);

/*
 * Binds @driver to (or, with NULL, unbinds any driver from) the PCI function @address of a tree,
 * as the kernel shows it: the driver link and the DRIVER= line of its uevent. 0 or -errno.
 */
int fixture_set_driver(const char *dir, const char *address, const char *driver);
