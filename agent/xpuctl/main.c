/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * xpuctl: the command-line client of xpud, built on libxpu. It turns the daemon's JSON
 * documents into aligned tables and key/value views, or prints them as they came (-o json).
 *
 * Exit status (also in --help and docs/xpuctl.md; scripts depend on it, keep it stable):
 *   0  success
 *   1  usage error, or a local failure (out of memory, output not writable)
 *   2  xpud answered with an error; its message is printed
 *   3  xpud cannot be reached: not running, wrong socket, connection lost or timed out
 *   4  xpud's answer was malformed
 *
 * This file holds the command line and the table of verbs. Beside it: one file per group of
 * verbs (devices.c, node.c, allocations.c, plan.c, events.c, top.c, export.c), output.c for the
 * views and the tables, whose columns each verb describes as data, and client.c for the requests.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xpu/client.h"
#include "xpuctl/xpuctl.h"

static void help(void)
{
	printf("xpuctl [OPTIONS...] COMMAND [ARG]\n"
	       "\n"
	       "Query xpud, the accelerator node agent, over its local socket.\n"
	       "\n"
	       "Commands:\n"
	       "  devices             List accelerator devices\n"
	       "  device ID           Show one device; ID is its address (0000:18:00.0), a short\n"
	       "                      PCI address (18:00.0) or its UUID\n"
	       "  slices              List schedulable slices\n"
	       "  capacity            Show capacity per resource\n"
	       "  health              Show node and device health\n"
	       "  events              Follow device events until xpud ends the stream or Ctrl-C\n"
	       "  top [--interval DURATION]\n"
	       "                      Devices, slices and allocations, redrawn as they change\n"
	       "                      and every DURATION (default 1s); q quits (off a terminal:\n"
	       "                      one frame)\n"
	       "  version             Show client and daemon versions and backends\n"
	       "  rescan              Ask xpud to rescan devices (needs privilege)\n"
	       "  alloc, release, allocations, fit, plan, reload\n"
	       "                      Allocations and the partition plan (see docs/xpuctl.md)\n"
	       "  cordon DEVICE [--reason TEXT]\n"
	       "                      Withdraw a device's free slices; slices in use keep running\n"
	       "  uncordon DEVICE     Offer its free slices again\n"
	       "  repartition DEVICE --layout LAYOUT|--policy [--timeout DURATION] [--wait]\n"
	       "                      Change one device's layout without draining the node:\n"
	       "                      LAYOUT is a partition rule's offer ('mig: [3g.40gb, 3g.40gb]',\n"
	       "                      'replicas: 4', 'whole: true'); --policy goes back to the\n"
	       "                      configuration's; --wait follows it to the end\n"
	       "  export slurm [--dev-prefix DIR]\n"
	       "                      gres.conf lines and the Gres= of slurm.conf for this node\n"
	       "  export json [--memory SIZE ...]\n"
	       "                      Inventory, slices, capacity and fit in one versioned\n"
	       "                      document (docs/export.schema.json)\n"
	       "  run --resource RESOURCE[=COUNT] [--numa-local] [--memory-max SIZE]\n"
	       "      [--cpu-quota PERCENT] [--device ID] [--connected] -- COMMAND [ARG...]\n"
	       "                      Run COMMAND confined to a grant of its own: its device\n"
	       "                      nodes only (a transient scope under xpu.slice where\n"
	       "                      systemd runs the host, else a cgroup of xpud's), the\n"
	       "                      grant's environment, the CPUs and memory of its NUMA\n"
	       "                      node with --numa-local; released when COMMAND ends.\n"
	       "                      Exits with COMMAND's status (126, 127: it could not be\n"
	       "                      run; 1-4 as below when no grant was made)\n"
	       "\n"
	       "Options:\n"
	       "  -h --help           Show this help\n"
	       "  -V --version        Show the client version\n"
	       "     --socket PATH    xpud's socket (default: $XPUD_SOCKET, else %s)\n"
	       "  -o --output FORMAT  table (default) or json: the daemon's document as returned\n"
	       "     --no-legend      Omit column headers\n"
	       "\n"
	       "Exit status:\n"
	       "  0  success\n"
	       "  1  usage error, or a local failure (out of memory, output not writable)\n"
	       "  2  xpud answered with an error; its message is printed\n"
	       "  3  xpud cannot be reached: not running, wrong socket, connection lost or timed "
	       "out\n"
	       "  4  xpud's answer was malformed\n",
	       XPU_DEFAULT_SOCKET);
}

struct verb {
	const char *name;
	unsigned n_args;
	const char *usage;
	int (*run)(struct ctl *ctl, char **args);
	bool alloc_options; /* takes --device, --owner-* */
	bool fit_options;   /* takes --memory, --compute, ... */
	bool cordon_options; /* takes --reason */
	bool repartition_options; /* takes --layout, --policy, --timeout, --wait */
	bool export_options; /* takes --dev-prefix (and the fit options, checked by the verb) */
	bool top_options;    /* takes --interval */
	bool run_options;    /* takes --memory-max, --cpu-quota */
	bool more_args;	     /* n_args or more */
	bool placement_options; /* takes --numa-local, --connected */
};

static const struct verb verbs[] = {
	{ "devices", 0, "devices", verb_devices },
	{ "device", 1, "device ID", verb_device },
	{ "slices", 0, "slices", verb_slices },
	{ "capacity", 0, "capacity", verb_capacity },
	{ "health", 0, "health", verb_health },
	{ "events", 0, "events", verb_events },
	{ "top", 0, "top [--interval DURATION]", verb_top, .top_options = true },
	{ "version", 0, "version", verb_version },
	{ "rescan", 0, "rescan", verb_rescan },
	{ "alloc", 1,
	  "alloc RESOURCE[=COUNT] [--numa-local] [--connected] [--device ID] "
	  "[--owner-pid PID|--owner-unit UNIT|--owner-cgroup PATH|--owner-pod POD] "
	  "[--enforce [--memory-max SIZE] [--cpu-quota PERCENT]]",
	  verb_alloc, true, .placement_options = true, .run_options = true },
	{ "release", 1, "release ID", verb_release },
	{ "allocations", 0, "allocations", verb_allocations },
	{ "fit", 0,
	  "fit [--memory SIZE] [--compute FRACTION] [--count N] [--kind KIND] [--resource NAME] "
	  "[--numa-local] [--connected]",
	  verb_fit, false, true, .placement_options = true },
	{ "plan", 0, "plan", verb_plan },
	{ "reload", 0, "reload", verb_reload },
	{ "cordon", 1, "cordon DEVICE [--reason TEXT]", verb_cordon, .cordon_options = true },
	{ "uncordon", 1, "uncordon DEVICE", verb_uncordon },
	{ "repartition", 1,
	  "repartition DEVICE --layout LAYOUT|--policy [--timeout DURATION] [--wait]",
	  verb_repartition, .repartition_options = true },
	{ "export", 1, "export slurm [--dev-prefix DIR] | export json [FIT OPTIONS]", verb_export,
	  .fit_options = true, .placement_options = true, .export_options = true },
	{ "run", 1,
	  RUN_USAGE, verb_run, .alloc_options = true, .placement_options = true, .fit_options = true,
	  .run_options = true,
	  .more_args = true },
};

int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("xpuctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see xpuctl --help)\n", stderr);
	return CTL_EXIT_USAGE;
}

enum {
	ARG_SOCKET = 0x100,
	ARG_NO_LEGEND,
	ARG_NUMA_LOCAL,
	ARG_CONNECTED,
	ARG_DEVICE,
	ARG_OWNER_PID,
	ARG_OWNER_UNIT,
	ARG_OWNER_CGROUP,
	ARG_OWNER_POD,
	ARG_MEMORY,
	ARG_COMPUTE,
	ARG_COUNT,
	ARG_KIND,
	ARG_RESOURCE,
	ARG_REASON,
	ARG_LAYOUT,
	ARG_POLICY,
	ARG_TIMEOUT,
	ARG_WAIT,
	ARG_DEV_PREFIX,
	ARG_INTERVAL,
	ARG_MEMORY_MAX,
	ARG_CPU_QUOTA,
	ARG_ENFORCE,
};

static int parse_argv(int argc, char *argv[], struct ctl *ctl, bool *ret_done)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "socket", required_argument, NULL, ARG_SOCKET },
		{ "output", required_argument, NULL, 'o' },
		{ "no-legend", no_argument, NULL, ARG_NO_LEGEND },
		{ "numa-local", no_argument, NULL, ARG_NUMA_LOCAL },
		{ "connected", no_argument, NULL, ARG_CONNECTED },
		{ "device", required_argument, NULL, ARG_DEVICE },
		{ "owner-pid", required_argument, NULL, ARG_OWNER_PID },
		{ "owner-unit", required_argument, NULL, ARG_OWNER_UNIT },
		{ "owner-cgroup", required_argument, NULL, ARG_OWNER_CGROUP },
		{ "owner-pod", required_argument, NULL, ARG_OWNER_POD },
		{ "memory", required_argument, NULL, ARG_MEMORY },
		{ "compute", required_argument, NULL, ARG_COMPUTE },
		{ "count", required_argument, NULL, ARG_COUNT },
		{ "kind", required_argument, NULL, ARG_KIND },
		{ "resource", required_argument, NULL, ARG_RESOURCE },
		{ "reason", required_argument, NULL, ARG_REASON },
		{ "layout", required_argument, NULL, ARG_LAYOUT },
		{ "policy", no_argument, NULL, ARG_POLICY },
		{ "timeout", required_argument, NULL, ARG_TIMEOUT },
		{ "wait", no_argument, NULL, ARG_WAIT },
		{ "dev-prefix", required_argument, NULL, ARG_DEV_PREFIX },
		{ "interval", required_argument, NULL, ARG_INTERVAL },
		{ "memory-max", required_argument, NULL, ARG_MEMORY_MAX },
		{ "cpu-quota", required_argument, NULL, ARG_CPU_QUOTA },
		{ "enforce", no_argument, NULL, ARG_ENFORCE },
		{}
	};
	static const char *const owner_kinds[] = {
		/* offsets from the first, like the rows below */
		/* NOLINTNEXTLINE(misc-redundant-expression) */
		[ARG_OWNER_PID - ARG_OWNER_PID] = "pid",
		[ARG_OWNER_UNIT - ARG_OWNER_PID] = "unit",
		[ARG_OWNER_CGROUP - ARG_OWNER_PID] = "cgroup",
		[ARG_OWNER_POD - ARG_OWNER_PID] = "pod",
	};
	int c;

	*ret_done = false;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hVo:", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			*ret_done = true;
			return CTL_EXIT_OK;
		case 'V':
			printf("xpuctl %s\n", XPU_VERSION);
			*ret_done = true;
			return CTL_EXIT_OK;
		case ARG_SOCKET:
			if (isempty(optarg))
				return usage_error("--socket needs a path");
			ctl->socket_arg = optarg;
			break;
		case 'o':
			if (streq(optarg, "json"))
				ctl->json = true;
			else if (streq(optarg, "table"))
				ctl->json = false;
			else
				return usage_error("unknown output format '%s' (table, json)",
						   optarg);
			break;
		case ARG_NO_LEGEND:
			ctl->legend = false;
			break;
		case ARG_NUMA_LOCAL:
			ctl->numa_local = true;
			ctl->n_placement_options++;
			break;
		case ARG_CONNECTED:
			ctl->connected = true;
			ctl->n_placement_options++;
			break;
		case ARG_DEVICE:
			ctl->device = optarg;
			ctl->n_alloc_options++;
			break;
		case ARG_OWNER_PID:
		case ARG_OWNER_UNIT:
		case ARG_OWNER_CGROUP:
		case ARG_OWNER_POD:
			if (ctl->owner_kind)
				return usage_error("only one --owner-* option may be given");
			if (isempty(optarg))
				return usage_error("%s needs a value", argv[optind - 1]);
			ctl->owner_kind = owner_kinds[c - ARG_OWNER_PID];
			ctl->owner_value = optarg;
			ctl->n_alloc_options++;
			break;
		case ARG_MEMORY:
			ctl->memory = optarg;
			ctl->n_fit_options++;
			break;
		case ARG_COMPUTE:
			ctl->compute = optarg;
			ctl->n_fit_options++;
			break;
		case ARG_COUNT:
			ctl->count = optarg;
			ctl->n_fit_options++;
			break;
		case ARG_KIND:
			ctl->kind = optarg;
			ctl->n_fit_options++;
			break;
		case ARG_RESOURCE:
			ctl->resource = optarg;
			ctl->n_fit_options++;
			break;
		case ARG_REASON:
			ctl->reason = optarg;
			ctl->n_cordon_options++;
			break;
		case ARG_LAYOUT:
			if (isempty(optarg))
				return usage_error("--layout needs a layout, e.g. 'mig: all-1g.10gb'");
			ctl->layout = optarg;
			ctl->n_repartition_options++;
			break;
		case ARG_POLICY:
			ctl->to_policy = true;
			ctl->n_repartition_options++;
			break;
		case ARG_TIMEOUT:
			ctl->timeout = optarg;
			ctl->n_repartition_options++;
			break;
		case ARG_WAIT:
			ctl->wait = true;
			ctl->n_repartition_options++;
			break;
		case ARG_DEV_PREFIX:
			if (isempty(optarg))
				return usage_error("--dev-prefix needs a directory");
			ctl->dev_prefix = optarg;
			ctl->n_export_options++;
			break;
		case ARG_INTERVAL:
			ctl->interval = optarg;
			ctl->n_top_options++;
			break;
		case ARG_MEMORY_MAX:
			ctl->memory_max = optarg;
			ctl->n_run_options++;
			break;
		case ARG_CPU_QUOTA:
			ctl->cpu_quota = optarg;
			ctl->n_run_options++;
			break;
		case ARG_ENFORCE:
			ctl->enforce = true;
			ctl->n_run_options++;
			break;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			if (optopt > 0 && optopt < 0x100)
				return usage_error("unknown option '-%c'", optopt);
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	return CTL_EXIT_OK;
}

int main(int argc, char *argv[])
{
	struct ctl ctl = { .legend = true };
	const struct verb *verb = NULL;
	unsigned n_args;
	bool done;
	int r;

	r = parse_argv(argc, argv, &ctl, &done);
	if (r != CTL_EXIT_OK || done)
		return r;

	if (optind >= argc)
		return usage_error("missing command");
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		if (streq(argv[optind], verbs[i].name))
			verb = &verbs[i];
	if (!verb)
		return usage_error("unknown command '%s'", argv[optind]);
	n_args = (unsigned)(argc - optind - 1);
	if (verb->more_args ? n_args < verb->n_args : n_args != verb->n_args)
		return usage_error("usage: xpuctl %s", verb->usage);
	if ((ctl.n_alloc_options && !verb->alloc_options) ||
	    (ctl.n_placement_options && !verb->placement_options) ||
	    (ctl.n_fit_options && !verb->fit_options) ||
	    (ctl.n_cordon_options && !verb->cordon_options) ||
	    (ctl.n_repartition_options && !verb->repartition_options) ||
	    (ctl.n_export_options && !verb->export_options) ||
	    (ctl.n_top_options && !verb->top_options) ||
	    (ctl.n_run_options && !verb->run_options))
		return usage_error("that option does not apply to '%s'; usage: xpuctl %s",
				   verb->name, verb->usage);

	r = verb->run(&ctl, argv + optind + 1);
	xpu_client_free(ctl.client);

	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "xpuctl: failed to write output: %s\n", strerror(errno));
		return CTL_EXIT_USAGE;
	}
	return r;
}
