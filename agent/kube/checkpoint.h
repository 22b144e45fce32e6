/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kubelet's device manager checkpoint (<device-plugin dir>/kubelet_internal_checkpoint): which
 * pod and container holds which device ids of which resource. kubelet writes it after every
 * allocation and when pods go; xpud reads it to learn who holds what it handed to kubelet.
 *
 * Format (JSON): {"Data": {"PodDeviceEntries": [{"PodUID", "ContainerName", "ResourceName",
 * "DeviceIDs": {"<numa>": [ids]} (or, from older kubelets, [ids]), "AllocResp": "..."}],
 * "RegisteredDevices": {...}}, "Checksum": N}. Fields xpud does not use are ignored; the
 * checksum is kubelet's (a hash of its Go structures) and is not checked.
 */
#pragma once

#include <stddef.h>

struct kubelet_entry {
	char *pod_uid;
	char *container;
	char *resource;
	char **ids; /* NULL-terminated, each once */
};

void kubelet_entries_free(struct kubelet_entry *e, size_t n);

/*
 * Parses the checkpoint text. 0 with the entries (possibly none), -EBADMSG with a one-line
 * reason in *ret_error when it is not such a document (entries with missing or mistyped fields
 * are skipped, not fatal), -ENOMEM.
 */
int kubelet_checkpoint_parse(const char *text, size_t len, struct kubelet_entry **ret,
			     size_t *ret_n, char **ret_error);
