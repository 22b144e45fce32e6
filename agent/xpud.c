// SPDX-License-Identifier: GPL-2.0-or-later
/* xpud: the accelerator node agent. Argument parsing and wiring only; see daemon/manager.c. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "backends/nvidia.h"
#include "backends/registry.h"
#include "backends/vendor-rules.h"
#include "core/config.h"
#include "daemon/manager.h"
#include "kube/cdi.h"
#include "kube/deviceplugin.h"
#include "kube/nfd.h"
#include "shared/log.h"
#include "shared/strv.h"
#include "core/state.h"
#include "sim/fixture.h"
#include "xpu/client.h"

static void help(void)
{
	printf("Usage: xpud [OPTIONS]\n"
	       "\n"
	       "The accelerator node agent: discovers GPUs, accelerators and FPGAs, keeps a live\n"
	       "inventory and serves it on a local socket (see xpuctl(1) and docs/api.md).\n"
	       "\n"
	       "Options:\n"
	       "  --root DIR            Read the host through DIR/sys, DIR/dev, DIR/proc\n"
	       "  --socket PATH         Serve the API on PATH (default %s)\n"
	       "  --config FILE         Configuration file (default %s)\n"
	       "  --check-config FILE   Validate a configuration file and exit\n"
	       "  --state-dir DIR       Keep allocations and applied offers in DIR (default %s;\n"
	       "                        with --root or --simulate: ROOT%s)\n"
	       "  --kubelet-dir DIR     Serve the kubelet device plugin API in DIR (default %s;\n"
	       "                        with --root: ROOT%s); no such directory: off\n"
	       "  --cdi-dir DIR         Write CDI specs in DIR (default %s; with --root: ROOT%s)\n"
	       "  --nfd-dir DIR         Write node labels for Node Feature Discovery in DIR\n"
	       "                        (default %s;\n"
	       "                        with --root: ROOT%s); no such directory: off\n"
	       "  --simulate NAME       Run on a bundled simulated node; 'list' names them\n"
	       "  --uevent-socket PATH  Receive uevents in the kernel's format on this datagram\n"
	       "                        socket instead of the kernel's netlink group (the test\n"
	       "                        interface; default with --root: DIR/run/xpud-uevent.sock)\n"
	       "  --log-level LEVEL     debug, info, notice, warning or err\n"
	       "  -h --help             Show this help\n"
	       "     --version          Show the version\n",
	       XPU_DEFAULT_SOCKET, CONFIG_DEFAULT_PATH, STATE_DEFAULT_DIR, STATE_DEFAULT_DIR,
	       DEVICEPLUGIN_DEFAULT_DIR, DEVICEPLUGIN_DEFAULT_DIR, CDI_DEFAULT_DIR, CDI_DEFAULT_DIR,
	       NFD_DEFAULT_DIR, NFD_DEFAULT_DIR);
}

static int list_simulations(void)
{
	for (size_t i = 0; i < sim_nodes_n; i++) {
		json_t *doc = json_loads(sim_nodes[i].json, 0, NULL);
		const char *summary = json_string_value(json_object_get(doc, "summary"));

		printf("%-16s %s\n", sim_nodes[i].name, summary ?: "");
		json_decref(doc);
	}
	return 0;
}

/*
 * A simulated node's vendor libraries are the fakes built next to xpud (build tree: fakes/;
 * installed: ../lib/xpud/sim/), fed from the description files the fixture builder wrote.
 */
static void simulate_vendor_libraries(const char *root)
{
	static const char *const dirs[] = { "fakes", "../lib/xpud/sim" };
	char exe[PATH_MAX], path[PATH_MAX + 64], desc[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return;
	*slash = '\0';
	snprintf(desc, sizeof(desc), "%s/run/fake-nvml.json", root);
	if (access(desc, R_OK) < 0)
		return;
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		snprintf(path, sizeof(path), "%s/%s/libnvidia-ml.so.1", exe, dirs[i]);
		if (access(path, R_OK) == 0) {
			setenv("XPU_NVML_LIBRARY", path, 1);
			setenv("XPU_FAKE_NVML", desc, 1);
			/* MIG instances it creates get their capability files in the tree */
			setenv("XPU_FAKE_NVML_ROOT", root, 1);
			log_info("Simulated NVML: %s", path);
			snprintf(path, sizeof(path), "%s/%s/libcuda.so.1", exe, dirs[i]);
			if (access(path, R_OK) == 0)
				setenv("XPU_CUDA_LIBRARY", path, 1);
			return;
		}
	}
	log_info("No simulated NVML library next to xpud; the simulated GPUs are seen through "
		 "sysfs only.");
}

static int check_config(const char *path)
{
	_cleanup_free_ char *err = NULL;
	struct config c;
	int r;

	config_init_sections(&c, registry_config_sections);
	r = config_load(path, &c, &err);
	if (r < 0) {
		config_done(&c);
		if (err)
			fprintf(stderr, "%s\n", err);
		else
			fprintf(stderr, "Failed to read %s: %s\n", path, strerror(-r));
		return 1;
	}
	STRV_FOREACH(w, c.warnings)
		fprintf(stderr, "%s\n", *w);
	printf("%s: ok (%zu partition rule%s)\n", path, c.policy.n_rules,
	       c.policy.n_rules == 1 ? "" : "s");
	config_done(&c);
	return 0;
}

int main(int argc, char *argv[])
{
	enum {
		ARG_ROOT = 0x100,
		ARG_SOCKET,
		ARG_CONFIG,
		ARG_CHECK_CONFIG,
		ARG_SIMULATE,
		ARG_UEVENT_SOCKET,
		ARG_LOG_LEVEL,
		ARG_STATE_DIR,
		ARG_KUBELET_DIR,
		ARG_CDI_DIR,
		ARG_NFD_DIR,
		ARG_VERSION,
	};
	static const struct option options[] = {
		{ "root", required_argument, NULL, ARG_ROOT },
		{ "socket", required_argument, NULL, ARG_SOCKET },
		{ "config", required_argument, NULL, ARG_CONFIG },
		{ "check-config", required_argument, NULL, ARG_CHECK_CONFIG },
		{ "simulate", required_argument, NULL, ARG_SIMULATE },
		{ "uevent-socket", required_argument, NULL, ARG_UEVENT_SOCKET },
		{ "log-level", required_argument, NULL, ARG_LOG_LEVEL },
		{ "state-dir", required_argument, NULL, ARG_STATE_DIR },
		{ "kubelet-dir", required_argument, NULL, ARG_KUBELET_DIR },
		{ "cdi-dir", required_argument, NULL, ARG_CDI_DIR },
		{ "nfd-dir", required_argument, NULL, ARG_NFD_DIR },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{},
	};
	struct manager_options o = { .log_level = -1 };
	_cleanup_(manager_freep) struct manager *m = NULL;
	_cleanup_free_ char *sim_dir = NULL;
	const char *simulate = NULL, *check = NULL;
	int c, r;

	log_setup(LOG_TARGET_AUTO);
	/* the partition schemes the configuration, the API and the state file know */
	partition_schemes_set(backend_partition_schemes);
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case ARG_ROOT:
			o.root = optarg;
			break;
		case ARG_SOCKET:
			o.socket_path = optarg;
			break;
		case ARG_CONFIG:
			o.config_path = optarg;
			o.config_explicit = true;
			break;
		case ARG_CHECK_CONFIG:
			check = optarg;
			break;
		case ARG_SIMULATE:
			simulate = optarg;
			break;
		case ARG_UEVENT_SOCKET:
			o.uevent_socket = optarg;
			break;
		case ARG_STATE_DIR:
			o.state_dir = optarg;
			break;
		case ARG_KUBELET_DIR:
			o.kubelet_dir = optarg;
			break;
		case ARG_CDI_DIR:
			o.cdi_dir = optarg;
			break;
		case ARG_NFD_DIR:
			o.nfd_dir = optarg;
			break;
		case ARG_LOG_LEVEL:
			o.log_level = log_level_from_string(optarg);
			if (o.log_level < 0) {
				fprintf(stderr, "xpud: invalid log level '%s'\n", optarg);
				return 1;
			}
			log_set_max_level(o.log_level);
			break;
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			printf("xpud %s\n", XPU_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'xpud --help'.\n");
			return 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "xpud: unexpected argument '%s'. Try 'xpud --help'.\n", argv[optind]);
		return 1;
	}

	if (check)
		return check_config(check);
	if (simulate) {
		const struct sim_node *node;
		_cleanup_free_ char *err = NULL;

		if (streq(simulate, "list"))
			return list_simulations();
		if (o.root) {
			fprintf(stderr, "xpud: --simulate and --root exclude each other.\n");
			return 1;
		}
		node = sim_node_find(simulate);
		if (!node) {
			fprintf(stderr, "xpud: no simulated node '%s'; 'xpud --simulate list' names "
					"them.\n",
				simulate);
			return 1;
		}
		r = fixture_build_temp(node->json, &sim_dir, &err);
		if (r < 0) {
			log_error_errno(r, "Failed to build simulated node %s: %s", simulate,
					err ?: strerror(-r));
			return 1;
		}
		log_info("Simulating node '%s' in %s.", simulate, sim_dir);
		o.root = sim_dir;
		simulate_vendor_libraries(sim_dir);
	}

	r = manager_new(&o, &m);
	if (r >= 0)
		r = manager_run(m);
	m = manager_free(m);
	if (sim_dir)
		(void)fixture_destroy(sim_dir);
	return r < 0 ? 1 : 0;
}
