/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * xpud's configuration file (YAML, /etc/xpud/xpud.yaml by default; see docs/configuration.md).
 * Parsing is pure: text in, struct out, with line-numbered errors. Unknown keys are errors so
 * that a typo never silently changes nothing.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/health.h"
#include "core/policy.h"
#include "shared/macro.h"
#include "shared/parse.h"

#define CONFIG_DEFAULT_PATH "/etc/xpud/xpud.yaml"
#define CONFIG_REPARTITION_TIMEOUT_USEC (10ULL * 60 * 1000000) /* repartition-timeout: 10 min */

/* What a device's error asks for, in increasing severity (the XID catalogue's vocabulary). */
enum health_action {
	HEALTH_ACTION_IGNORE,
	HEALTH_ACTION_APP_ERROR,   /* the application's fault; the device is fine */
	HEALTH_ACTION_RESTART_APP, /* restart the application; the device is fine */
	HEALTH_ACTION_RESET_DEVICE, /* the device is unusable until it is reset */
	HEALTH_ACTION_REBOOT_NODE,  /* ... until the node is rebooted */
	_HEALTH_ACTION_MAX,
	_HEALTH_ACTION_INVALID = -22,
};

const char *health_action_to_string(enum health_action a);
enum health_action health_action_from_string(const char *s);

struct xid_action {
	unsigned xid;
	enum health_action action;
};

struct config {
	char *socket_path;     /* NULL: default */
	char *socket_group;    /* group owning the socket (read-only API access) */
	unsigned socket_mode;  /* permission bits of the socket, default 0660 */
	char *admin_group;     /* members may call mutating endpoints, besides root */
	char *nvml_library;    /* path of libnvidia-ml.so.1; NULL: the loader's search */
	char *cuda_library;    /* path of libcuda.so.1; NULL: the loader's search */
	char *kmod_resource;   /* resource of xpu_pci's devices; NULL: "xpu.dev/edu" for edu, else
				* "xpu.dev/pci-<vendor>-<device>" */
	struct xid_action *xid_actions; /* overrides of the XID table ("79:reset-gpu,13:ignore") */
	size_t n_xid_actions;
	uint64_t health_interval_usec; /* health probe period; 0 disables probing */
	struct health_policy health; /* health-suspect-after, health-probation */
	uint64_t repartition_timeout_usec; /* how long a repartition waits for slices; 0: ever */
	int log_level;	       /* -1: leave as is */
	char *kubelet_dir;     /* the kubelet's device plugin directory; NULL: default */
	char *pre_start_hook;  /* run before a container starts (PreStartContainer); NULL: none */
	char *cdi_dir;	       /* where CDI specs are written; NULL: default */
	char *nfd_dir;	       /* NFD's local features directory; NULL: default */
	struct policy policy;  /* "partitions:": how devices are offered; no rules: all whole */
	/* "reset-when-idle:": the kinds of device xpud resets by itself when a fault asks for a
	 * reset and nothing is allocated on them; one bit per enum xpu_kind (CONFIG_KIND_BIT). */
	unsigned reset_when_idle;
};

#define CONFIG_KIND_BIT(kind) (1U << (unsigned)(kind))
#define CONFIG_ALL_KINDS ((1U << _XPU_KIND_MAX) - 1)

void config_init(struct config *c);
void config_done(struct config *c);

/*
 * Parses YAML text into @c (initialised by the caller). Returns 0, or -EINVAL with a malloc'd
 * message in *ret_error of the form "line N: ...". Does not log.
 */
int config_parse(const char *text, size_t len, struct config *c, char **ret_error);

/*
 * Parses a layout, a partition rule without 'match' ("mig: [3g.40gb, 3g.40gb]", "replicas: 4",
 * "whole: true"; YAML), into @ret (caller frees with offer_done()). 0, or -EINVAL with a
 * malloc'd "line N: ..." in *ret_error, or -ENOMEM.
 */
int config_parse_layout(const char *text, size_t len, struct offer *ret, char **ret_error);

/* Reads and parses a file. -ENOENT when missing; errors as config_parse() ("FILE:line N: ..."). */
int config_load(const char *path, struct config *c, char **ret_error);




/* A resource name as Kubernetes extended resources have them: a lower-case DNS subdomain, '/',
 * then 1-63 of [A-Za-z0-9._-] starting and ending alphanumeric ("example.com/gpu-shared"). */
bool resource_name_valid(const char *s);
