// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/enforce-rules.h"
#include "shared/macro.h"
#include "shared/strv.h"

const struct enforce_rule enforce_pseudo_rules[] = {
	{ 'c', 1, 3, ENFORCE_ACC_ALL },		   /* /dev/null */
	{ 'c', 1, 5, ENFORCE_ACC_ALL },		   /* /dev/zero */
	{ 'c', 1, 7, ENFORCE_ACC_ALL },		   /* /dev/full */
	{ 'c', 1, 8, ENFORCE_ACC_ALL },		   /* /dev/random */
	{ 'c', 1, 9, ENFORCE_ACC_ALL },		   /* /dev/urandom */
	{ 'c', 5, 0, ENFORCE_ACC_ALL },		   /* /dev/tty */
	{ 'c', 5, 2, ENFORCE_ACC_ALL },		   /* /dev/ptmx */
	{ 'c', 136, ENFORCE_ANY, ENFORCE_ACC_RW }, /* /dev/pts/N (Unix98 pty slaves) */
};
const size_t enforce_n_pseudo_rules = ELEMENTSOF(enforce_pseudo_rules);

static bool rule_valid(const struct enforce_rule *r)
{
	return (r->type == 'c' || r->type == 'b') && r->access &&
	       !(r->access & ~ENFORCE_ACC_ALL);
}

const char *enforce_access_string(unsigned access, char buf[static 4])
{
	char *p = buf;

	if (access & ENFORCE_ACC_READ)
		*p++ = 'r';
	if (access & ENFORCE_ACC_WRITE)
		*p++ = 'w';
	if (access & ENFORCE_ACC_MKNOD)
		*p++ = 'm';
	*p = 0;
	return buf;
}

/* ---- the cgroup device program ---------------------------------------------------------- */

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), \
						 .off = (o), .imm = (i) })
#define LDX_W(dst, src, o) INSN(BPF_LDX | BPF_W | BPF_MEM, dst, src, o, 0)
#define MOV_X(dst, src) INSN(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
#define MOV_K(dst, k) INSN(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, k)
#define AND_K(dst, k) INSN(BPF_ALU64 | BPF_AND | BPF_K, dst, 0, 0, k)
#define RSH_K(dst, k) INSN(BPF_ALU64 | BPF_RSH | BPF_K, dst, 0, 0, k)
#define JNE_K(dst, k, o) INSN(BPF_JMP | BPF_JNE | BPF_K, dst, 0, o, k)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* struct bpf_cgroup_dev_ctx: access_type (access << 16 | type), major, minor; all u32. */
#define CTX_ACCESS_TYPE 0
#define CTX_MAJOR 4
#define CTX_MINOR 8
/* the registers the prologue fills */
#define R_TYPE BPF_REG_2
#define R_ACCESS BPF_REG_3
#define R_MAJOR BPF_REG_4
#define R_MINOR BPF_REG_5

#define PROLOGUE_LEN 6
#define MAX_RULE_LEN 8
/* a jump skips at most the rest of one rule's block: far from the 16-bit offset; the bound is
 * the verifier's appetite, not the encoding */
#define MAX_RULES 4096

static size_t rule_len(const struct enforce_rule *r)
{
	return 1 + (r->major != ENFORCE_ANY) + (r->minor != ENFORCE_ANY) + 3 + 2;
}

int enforce_bpf_build(const struct enforce_rule *rules, size_t n, struct bpf_insn **ret,
		      size_t *ret_n)
{
	_cleanup_free_ struct bpf_insn *p = NULL;
	size_t k = 0;

	if (n > MAX_RULES)
		return -E2BIG;
	for (size_t i = 0; i < n; i++)
		if (!rule_valid(&rules[i]))
			return -EINVAL;
	p = calloc(PROLOGUE_LEN + n * MAX_RULE_LEN + 2, sizeof(*p));
	if (!p)
		return -ENOMEM;

	p[k++] = LDX_W(R_TYPE, BPF_REG_1, CTX_ACCESS_TYPE);
	p[k++] = MOV_X(R_ACCESS, R_TYPE);
	p[k++] = RSH_K(R_ACCESS, 16);
	p[k++] = AND_K(R_TYPE, 0xffff);
	p[k++] = LDX_W(R_MAJOR, BPF_REG_1, CTX_MAJOR);
	p[k++] = LDX_W(R_MINOR, BPF_REG_1, CTX_MINOR);

	for (size_t i = 0; i < n; i++) {
		const struct enforce_rule *r = &rules[i];
		size_t next = k + rule_len(r); /* where a mismatch goes on */
#define TO_NEXT ((int16_t)(next - (k + 1)))

		p[k] = JNE_K(R_TYPE, r->type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK,
			     TO_NEXT);
		k++;
		if (r->major != ENFORCE_ANY) {
			p[k] = JNE_K(R_MAJOR, (int32_t)r->major, TO_NEXT);
			k++;
		}
		if (r->minor != ENFORCE_ANY) {
			p[k] = JNE_K(R_MINOR, (int32_t)r->minor, TO_NEXT);
			k++;
		}
		/* every bit asked for must be in the rule's access */
		p[k++] = MOV_X(BPF_REG_1, R_ACCESS);
		p[k++] = AND_K(BPF_REG_1, (int32_t)~r->access);
		p[k] = JNE_K(BPF_REG_1, 0, TO_NEXT);
		k++;
		p[k++] = MOV_K(BPF_REG_0, 1);
		p[k++] = EXIT();
#undef TO_NEXT
	}
	p[k++] = MOV_K(BPF_REG_0, 0);
	p[k++] = EXIT();
	*ret = TAKE_PTR(p);
	*ret_n = k;
	return 0;
}

/* ---- the v1 devices controller ---------------------------------------------------------- */

int enforce_v1_line(const struct enforce_rule *r, char *buf, size_t size)
{
	char major[16] = "*", minor[16] = "*", acc[4];
	int n;

	if (!rule_valid(r))
		return -EINVAL;
	if (r->major != ENFORCE_ANY)
		snprintf(major, sizeof(major), "%u", r->major);
	if (r->minor != ENFORCE_ANY)
		snprintf(minor, sizeof(minor), "%u", r->minor);
	n = snprintf(buf, size, "%c %s:%s %s", r->type, major, minor,
		     enforce_access_string(r->access, acc));
	return n < 0 || (size_t)n >= size ? -ENOBUFS : 0;
}

/* ---- hierarchies -------------------------------------------------------------------------- */

const char *cgroup_hierarchy_to_string(enum cgroup_hierarchy h)
{
	static const char *const names[] = {
		[CGROUP_HIERARCHY_NONE] = "none",
		[CGROUP_HIERARCHY_UNIFIED] = "unified",
		[CGROUP_HIERARCHY_HYBRID] = "hybrid",
		[CGROUP_HIERARCHY_LEGACY] = "legacy",
	};

	return (unsigned)h < ELEMENTSOF(names) ? names[h] : NULL;
}

void cgroup_mounts_done(struct cgroup_mounts *m)
{
	m->unified = mfree(m->unified);
	m->devices = mfree(m->devices);
}

/* mountinfo escapes space, tab, newline and backslash as \ooo: undone in place. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (const char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*w++ = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0'));
			p += 3;
		} else
			*w++ = *p;
	}
	*w = 0;
}

/* Whether the comma-separated @opts has the word @word. */
static bool has_option(const char *opts, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = opts; p; p = strchr(p, ',')) {
		if (*p == ',')
			p++;
		if (!strncmp(p, word, n) && (p[n] == ',' || p[n] == 0))
			return true;
	}
	return false;
}

int cgroup_mounts_parse(const char *mountinfo, struct cgroup_mounts *ret)
{
	struct cgroup_mounts m = {};
	bool any_v1 = false;
	_cleanup_free_ char *copy = strdup(mountinfo ?: "");
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* id parent major:minor root mount-point options [optional...] - type source super */
		char *sep = strstr(line, " - "), *f[5], *t[3], *s2 = NULL, *rest = line;
		size_t i, j;

		if (!sep)
			continue;
		*sep = 0;
		for (i = 0; i < 5 && (f[i] = strtok_r(rest, " ", &s2)); i++)
			rest = NULL;
		for (j = 0, rest = sep + 3; j < 3 && (t[j] = strtok_r(rest, " ", &s2)); j++)
			rest = NULL;
		if (i < 5 || j < 3)
			continue;
		if (streq(t[0], "cgroup2") && !m.unified) {
			unescape_octal(f[4]);
			m.unified = strdup(f[4]);
			if (!m.unified)
				goto oom;
		} else if (streq(t[0], "cgroup")) {
			any_v1 = true;
			if (!m.devices && has_option(t[2], "devices")) {
				unescape_octal(f[4]);
				m.devices = strdup(f[4]);
				if (!m.devices)
					goto oom;
			}
		}
	}
	m.hierarchy = m.unified ? (any_v1 ? CGROUP_HIERARCHY_HYBRID : CGROUP_HIERARCHY_UNIFIED)
				: (any_v1 ? CGROUP_HIERARCHY_LEGACY : CGROUP_HIERARCHY_NONE);
	*ret = m;
	return 0;
oom:
	cgroup_mounts_done(&m);
	return -ENOMEM;
}

int cgroup_path_parse(const char *proc_cgroup, const char *controller, char **ret)
{
	_cleanup_free_ char *copy = strdup(proc_cgroup ?: "");
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	/* hierarchy-id:controllers:path */
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		bool match;

		if (!c2 || c2[1] != '/')
			continue;
		*c2 = 0;
		if (controller)
			match = has_option(c1 + 1, controller);
		else /* "0::/path": hierarchy 0, no controllers */
			match = streq(line, "0:");
		if (match) {
			*ret = strdup(c2 + 1);
			return *ret ? 0 : -ENOMEM;
		}
	}
	return -ENOENT;
}

/* ---- limits ------------------------------------------------------------------------------- */

int enforce_cpu_max(unsigned percent, char *buf, size_t size)
{
	const unsigned period = 100000; /* the kernel's default period, 100 ms */
	int n;

	if (percent == 0 || percent > 100000)
		return -EINVAL;
	n = snprintf(buf, size, "%llu %u", (unsigned long long)percent * period / 100, period);
	return n < 0 || (size_t)n >= size ? -ENOBUFS : 0;
}

int enforce_dmem_lines(const char *capacity, const char *pci, uint64_t bytes, char ***ret)
{
	_cleanup_free_ char *copy = strdup(capacity ?: ""), *prefix = NULL;
	_cleanup_strv_free_ char **lines = NULL;
	char *save = NULL;

	if (!copy || asprintf(&prefix, "drm/%s/", pci) < 0)
		return -ENOMEM;
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		size_t n = strcspn(l, " \t");

		if (n <= strlen(prefix) || strncmp(l, prefix, strlen(prefix)) != 0)
			continue;
		l[n] = 0;
		if (strv_extendf(&lines, "%s %llu", l, (unsigned long long)bytes) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(lines);
	return 0;
}
