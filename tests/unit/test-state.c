// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The persistent state: what a restart reads back, what a corrupt file recovers, and that a
 * failed save leaves the previous state.json as it was.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "backends/vendor-rules.h"
#include "core/state.h"
#include "shared/strv.h"

#define ID1 "a-0123456789abcdef"
#define ID2 "a-00000000deadbeef"
#define ID3 "a-ffffffffffffffff"

/* ---- helpers --------------------------------------------------------------------------- */

static char *tmpdir_new(void)
{
	char *d = strdup("/tmp/test-state-XXXXXX");

	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	chmod(path, 0700); /* a test may have left it read-only */
	return remove(path);
}

static void tmpdir_free(char *d)
{
	chmod(d, 0700);
	nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(d);
}

static char *path_in(const char *dir, const char *name)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static void write_file(const char *dir, const char *name, const char *data, size_t len)
{
	char *p = path_in(dir, name);
	FILE *f = fopen(p, "we");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	free(p);
}

/* The file's content, or NULL if it does not exist. */
static char *read_file_or_null(const char *dir, const char *name)
{
	char *p = path_in(dir, name), *buf;
	FILE *f = fopen(p, "re");
	size_t len = 0;

	free(p);
	if (!f)
		return NULL;
	buf = calloc(1, 1);
	for (size_t n = 1; n > 0; len += n) {
		buf = realloc(buf, len + 4097);
		assert_non_null(buf);
		n = fread(buf + len, 1, 4096, f);
	}
	assert_false(ferror(f));
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Names in @dir other than "." and "..", sorted, joined with spaces. */
static char *dir_listing(const char *dir)
{
	struct dirent **names;
	char **l = NULL, *joined;
	int n = scandir(dir, &names, NULL, alphasort);

	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, ".."))
			assert_int_equal(strv_extend(&l, names[i]->d_name), 0);
		free(names[i]);
	}
	free(names);
	joined = strv_join(l, " ");
	strv_free(l);
	return joined;
}

static void assert_listing(const char *dir, const char *expected)
{
	char *l = dir_listing(dir);

	assert_string_equal(l, expected);
	free(l);
}

static void add_allocation(struct state *s, const char *id, const char *resource,
			   const char *const *slices, enum owner_kind kind, const char *value,
			   uint64_t pid_start, uint64_t created)
{
	struct allocation *a = calloc(1, sizeof(*a));

	assert_non_null(a);
	a->id = strdup(id);
	a->resource = resource ? strdup(resource) : NULL;
	for (const char *const *p = slices; *p; p++)
		assert_int_equal(strv_extend(&a->slices, *p), 0);
	a->owner.kind = kind;
	a->owner.value = value ? strdup(value) : NULL;
	a->owner.pid_start = pid_start;
	a->created_usec = created;
	assert_int_equal(ledger_add(&s->ledger, a), 0);
}

/* A state with every field of the format set somewhere. */
static void full_state(struct state *s)
{
	static const char *const mig[] = {"1g.10gb", "1g.10gb", "3g.40gb", NULL};
	struct offer o;

	*s = (struct state){};
	add_allocation(s, ID1, "nvidia.com/gpu", (const char *const[]){"gpu0", "gpu1", NULL},
		       OWNER_PID, "1234", 987654321, 1700000000123456);
	add_allocation(s, ID2, "xpu.dev/replica",
		       (const char *const[]){"0000:41:00.0/replica-2", NULL}, OWNER_POD,
		       "0f4c3a1e-uid/trainer", 0, 1700000000999999);
	add_allocation(s, ID3, NULL, (const char *const[]){"accel0", NULL}, OWNER_NONE, NULL, 0, 0);

	o = (struct offer){.kind = OFFER_REPLICAS, .count = 4, .resource = "xpu.dev/replica"};
	assert_int_equal(state_set_applied(s, "0000:41:00.0", &o), 0);
	o = (struct offer){
	    .kind = OFFER_MEMORY_SHARES, .count = 8, .share_bytes = 10ULL << 30, .compute = 0.125};
	assert_int_equal(state_set_applied(s, "0000:42:00.0", &o), 0);
	o = (struct offer){.kind = OFFER_PARTITIONS, .scheme = &nvidia_mig_scheme, .layout = (char **)mig, .enable = true};
	assert_int_equal(state_set_applied(s, "GPU-1111", &o), 0);
	o = (struct offer){.kind = OFFER_PARTITIONS, .scheme = &amd_partition_scheme,
			   .layout = (char *[]){"cpx", NULL}};
	assert_int_equal(state_set_applied(s, "0000:c1:00.0", &o), 0);
	o = (struct offer){.kind = OFFER_WHOLE};
	assert_int_equal(state_set_applied(s, "0000:c2:00.0", &o), 0);
}

static void assert_allocation_ids(const struct state *s, const char *const *ids)
{
	size_t n = 0;

	for (; ids[n]; n++) {
		assert_true(n < s->ledger.n);
		assert_string_equal(s->ledger.items[n]->id, ids[n]);
	}
	assert_int_equal(s->ledger.n, n);
}

static void assert_one_line(const char *msg, const char *needle)
{
	assert_non_null(msg);
	assert_null(strchr(msg, '\n'));
	if (!strstr(msg, needle))
		fail_msg("message '%s' does not mention '%s'", msg, needle);
}

/* A document with one allocation entry @entry between two good ones. */
static char *doc_with(const char *entry)
{
	char *d;

	assert_true(asprintf(&d,
			     "{\"version\": 1, \"allocations\": ["
			     "{\"id\": \"" ID1 "\", \"slices\": [\"gpu0\"]}, %s, "
			     "{\"id\": \"" ID3 "\", \"slices\": [\"gpu3\"]}]}",
			     entry) > 0);
	return d;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_round_trip(void **unused)
{
	struct state s, back = {};
	char *text, *again, *err = NULL, *dir = tmpdir_new(), *sub = path_in(dir, "lib");
	const struct offer *o;
	json_t *doc;
	struct stat st;

	full_state(&s);
	text = state_to_json(&s);
	assert_non_null(text);

	assert_int_equal(state_from_json(text, strlen(text), &back, &err), 0);
	assert_null(err);
	assert_int_equal(back.ledger.n, 3);
	assert_string_equal(back.ledger.items[0]->id, ID1);
	assert_string_equal(back.ledger.items[0]->resource, "nvidia.com/gpu");
	assert_true(strv_equal(back.ledger.items[0]->slices, s.ledger.items[0]->slices));
	assert_int_equal(back.ledger.items[0]->owner.kind, OWNER_PID);
	assert_string_equal(back.ledger.items[0]->owner.value, "1234");
	assert_true(back.ledger.items[0]->owner.pid_start == 987654321);
	assert_true(back.ledger.items[0]->created_usec == 1700000000123456);
	assert_int_equal(back.ledger.items[1]->owner.kind, OWNER_POD);
	assert_null(back.ledger.items[2]->resource);
	assert_int_equal(back.ledger.items[2]->owner.kind, OWNER_NONE);
	assert_int_equal(back.n_applied, 5);
	for (size_t i = 0; i < s.n_applied; i++) {
		o = state_applied(&back, s.applied[i].device_id);
		assert_non_null(o);
		assert_true(offer_equal(o, &s.applied[i].offer));
	}
	o = state_applied(&back, "0000:42:00.0");
	assert_true(o->compute == 0.125 && o->share_bytes == 10ULL << 30 && o->count == 8);

	/* the same state gives the same text */
	again = state_to_json(&back);
	assert_string_equal(again, text);
	free(again);

	/* zero fields are left out: no owner for "none", no count for a whole device */
	doc = json_loads(text, 0, NULL);
	assert_non_null(doc);
	assert_int_equal(json_integer_value(json_object_get(doc, "version")), 1);
	assert_null(
	    json_object_get(json_array_get(json_object_get(doc, "allocations"), 2), "owner"));
	assert_null(json_object_get(
	    json_object_get(json_array_get(json_object_get(doc, "applied"), 4), "offer"), "count"));
	json_decref(doc);
	state_done(&back);

	/* and through the file, into a directory that does not exist yet */
	assert_int_equal(state_save(sub, &s), 0);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	again = path_in(sub, STATE_FILE);
	assert_int_equal(stat(again, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	free(again);
	again = read_file_or_null(sub, STATE_FILE);
	assert_int_equal(strlen(again), strlen(text) + 1);
	assert_memory_equal(again, text, strlen(text));
	assert_int_equal(again[strlen(text)], '\n');
	free(again);
	assert_int_equal(state_load(sub, &back, &err), 0);
	assert_null(err);
	again = state_to_json(&back);
	assert_string_equal(again, text);
	assert_listing(sub, STATE_FILE);

	free(again);
	free(text);
	free(sub);
	state_done(&back);
	state_done(&s);
	tmpdir_free(dir);
}

static void test_load_missing(void **unused)
{
	char *dir = tmpdir_new(), *sub = path_in(dir, "nonexistent"), *warning = (char *)"unset";
	struct state s = {};

	assert_int_equal(state_load(dir, &s, &warning), 0);
	assert_null(warning);
	assert_int_equal(s.ledger.n, 0);
	assert_int_equal(s.n_applied, 0);

	warning = (char *)"unset";
	assert_int_equal(state_load(sub, &s, &warning), 0);
	assert_null(warning);
	assert_int_equal(s.ledger.n, 0);
	assert_listing(dir, "");

	free(sub);
	tmpdir_free(dir);
}

static void test_truncated(void **unused)
{
	char *dir = tmpdir_new(), *text, *warning, *corrupt;
	struct state s;
	size_t len;

	full_state(&s);
	text = state_to_json(&s);
	len = strlen(text);
	state_done(&s);

	for (size_t cut = 0; cut < len; cut++) {
		write_file(dir, STATE_FILE, text, cut);
		warning = NULL;
		assert_int_equal(state_load(dir, &s, &warning), 1);
		assert_one_line(warning, "no allocations recovered");
		assert_one_line(warning, STATE_FILE ".corrupt");
		assert_int_equal(s.ledger.n, 0);
		assert_int_equal(s.n_applied, 0);
		/* the evidence is kept, whole, and state.json is out of the way */
		assert_listing(dir, STATE_FILE ".corrupt");
		corrupt = read_file_or_null(dir, STATE_FILE ".corrupt");
		assert_int_equal(strlen(corrupt), cut);
		assert_memory_equal(corrupt, text, cut);
		free(corrupt);
		free(warning);
		state_done(&s);
	}

	/* the next save writes a clean file, next to the kept one */
	full_state(&s);
	assert_int_equal(state_save(dir, &s), 0);
	state_done(&s);
	warning = NULL;
	assert_int_equal(state_load(dir, &s, &warning), 0);
	assert_null(warning);
	assert_int_equal(s.ledger.n, 3);
	assert_listing(dir, STATE_FILE " " STATE_FILE ".corrupt");

	state_done(&s);
	free(text);
	tmpdir_free(dir);
}

/* An allocation entry that is dropped, with the reason it is dropped for. */
struct bad_entry {
	const char *entry;
	const char *needle;
};

static const struct bad_entry bad_entries[] = {
    {"{\"slices\": [\"gpu1\"]}", "allocations[1]: id: missing"},
    {"{\"id\": \"" ID2 "\"}", "allocations[1]: slices: missing"},
    {"{\"id\": \"" ID2 "\", \"slices\": []}", "allocations[1]: slices: empty list"},
    {"{\"id\": \"" ID2 "\", \"slices\": \"gpu1\"}", "slices: expected a list"},
    {"{\"id\": \"" ID2 "\", \"slices\": [1]}", "slices[0]: expected a string"},
    {"{\"id\": \"" ID2 "\", \"slices\": [\"\"]}", "slices: empty string"},
    {"{\"id\": \"" ID2 "\", \"slices\": [\"g\", \"g\"]}", "slices: 'g' is listed twice"},
    {"{\"id\": 7, \"slices\": [\"gpu1\"]}", "id: expected a string"},
    {"{\"id\": \"a-0123\", \"slices\": [\"gpu1\"]}",
     "id: 'a-0123' is not 'a-' and 16 lowercase hex digits"},
    {"{\"id\": \"a-0123456789ABCDEF\", \"slices\": [\"gpu1\"]}", "lowercase hex"},
    {"{\"id\": \"b-0123456789abcdef\", \"slices\": [\"gpu1\"]}", "lowercase hex"},
    {"{\"id\": \"a-0123456789abcdeg\", \"slices\": [\"gpu1\"]}", "lowercase hex"},
    {"{\"id\": \"" ID1 "\", \"slices\": [\"gpu1\"]}", "id '" ID1 "' is used twice"},
    {"{\"id\": \"" ID2 "\", \"slices\": [\"gpu1\", \"gpu0\"]}",
     "slice 'gpu0' is held by " ID1 " already"},
    {"{\"id\": \"" ID2 "\", \"slices\": [\"gpu1\"], \"owner\": {\"kind\": \"job\"}}",
     "owner: kind: 'job' is not pid, cgroup, unit, pod or none"},
    {"{\"id\": \"" ID2 "\", \"slices\": [\"gpu1\"], \"owner\": {\"kind\": \"pid\"}}",
     "owner: value: missing"},
    {"{\"id\": \"" ID2 "\", \"slices\": [\"gpu1\"], \"owner\": {\"value\": \"1\"}}",
     "owner: kind: missing"},
    {"{\"id\": \"" ID2 "\", \"slices\": [\"gpu1\"], \"owner\": \"pid\"}",
     "owner: expected an object"},
    {"{\"id\": \"" ID2 "\", \"slices\": [\"gpu1\"], "
     "\"owner\": {\"kind\": \"pid\", \"value\": \"1\", \"pid_start\": -1}}",
     "owner: pid_start: -1 is outside 0.."},
    {"{\"id\": \"" ID2 "\", \"slices\": [\"gpu1\"], \"created_usec\": \"now\"}",
     "created_usec: expected an integer"},
    {"{\"id\": \"" ID2 "\", \"slices\": [\"gpu1\"], \"created_usec\": 1.5}",
     "created_usec: expected an integer"},
    {"{\"id\": \"" ID2 "\", \"slices\": [\"gpu1\"], \"resource\": \"\"}", "resource: empty string"},
    {"{\"id\": \"" ID2 "\", \"slices\": [\"gpu1\"], \"slice\": [\"gpu1\"]}", "unknown key 'slice'"},
    {"[\"" ID2 "\"]", "allocations[1]: expected an object"},
};

static void test_allocation_errors(void **unused)
{
	for (size_t i = 0; i < sizeof(bad_entries) / sizeof(bad_entries[0]); i++) {
		char *doc = doc_with(bad_entries[i].entry), *err = NULL;
		struct state s = {};

		assert_int_equal(state_from_json(doc, strlen(doc), &s, &err), -EINVAL);
		assert_one_line(err, bad_entries[i].needle);
		/* the good entries around the bad one are kept */
		assert_allocation_ids(&s, (const char *const[]){ID1, ID3, NULL});
		state_done(&s);
		free(err);
		free(doc);
	}
}

static void test_long_strings(void **unused)
{
	char *big = malloc(4098), *entry, *doc, *err = NULL;
	struct state s = {};

	memset(big, 'x', 4097);
	big[4097] = '\0';
	assert_true(asprintf(&entry, "{\"id\": \"" ID2 "\", \"slices\": [\"%s\"]}", big) > 0);
	doc = doc_with(entry);
	assert_int_equal(state_from_json(doc, strlen(doc), &s, &err), -EINVAL);
	assert_one_line(err, "slices: longer than 4096 bytes");
	assert_allocation_ids(&s, (const char *const[]){ID1, ID3, NULL});
	state_done(&s);
	free(err);
	free(doc);
	free(entry);

	/* 4096 bytes is still fine */
	big[4096] = '\0';
	assert_true(asprintf(&entry, "{\"id\": \"" ID2 "\", \"slices\": [\"%s\"]}", big) > 0);
	doc = doc_with(entry);
	assert_int_equal(state_from_json(doc, strlen(doc), &s, &err), 0);
	assert_allocation_ids(&s, (const char *const[]){ID1, ID2, ID3, NULL});
	state_done(&s);
	free(doc);
	free(entry);
	free(big);
}

/* Applied offers that are dropped, and why. */
static const struct bad_entry bad_offers[] = {
    {"{\"kind\": \"slices\"}",
     "offer: kind: 'slices' is not whole, replicas, memory-shares, mig, amd-partition, "
     "intel-tiles, neuron-cores or xrt-cus"},
    {"{\"count\": 2}", "offer: kind: missing"},
    {"{\"kind\": \"replicas\"}", "offer: count: 0 is outside 1..64"},
    {"{\"kind\": \"replicas\", \"count\": 0}", "offer: count: 0 is outside 1..64"},
    {"{\"kind\": \"replicas\", \"count\": 65}", "offer: count: 65 is outside 1..64"},
    {"{\"kind\": \"replicas\", \"count\": -3}", "offer: count: -3 is outside 1..64"},
    {"{\"kind\": \"replicas\", \"count\": \"4\"}", "offer: count: expected an integer"},
    {"{\"kind\": \"memory-shares\", \"count\": 2, \"compute\": 1.5}",
     "offer: compute: 1.5 is outside (0, 1]"},
    {"{\"kind\": \"memory-shares\", \"count\": 2, \"compute\": 0}",
     "offer: compute: 0 is outside (0, 1]"},
    {"{\"kind\": \"memory-shares\", \"count\": 2, \"compute\": -0.5}",
     "offer: compute: -0.5 is outside (0, 1]"},
    {"{\"kind\": \"memory-shares\", \"count\": 2, \"compute\": \"half\"}",
     "offer: compute: expected a number"},
    {"{\"kind\": \"memory-shares\", \"count\": 2, \"share_bytes\": 0}",
     "offer: share_bytes: 0 is outside 1.."},
    {"{\"kind\": \"mig\"}", "offer: mig_profiles: missing"},
    {"{\"kind\": \"mig\", \"mig_profiles\": []}", "offer: mig_profiles: empty list"},
    {"{\"kind\": \"mig\", \"mig_profiles\": [\"1g.10gb\"], \"mig_enable\": 1}",
     "offer: mig_enable: expected true or false"},
    {"{\"kind\": \"amd-partition\"}", "offer: amd_mode: missing"},
    {"{\"kind\": \"whole\", \"colour\": \"red\"}", "offer: unknown key 'colour'"},
    {"[]", "offer: expected an object"},
};

static void test_applied_errors(void **unused)
{
	for (size_t i = 0; i < sizeof(bad_offers) / sizeof(bad_offers[0]); i++) {
		char *doc, *err = NULL;
		struct state s = {};

		assert_true(asprintf(&doc,
				     "{\"version\": 1, \"applied\": ["
				     "{\"device\": \"d0\", \"offer\": {\"kind\": \"whole\"}}, "
				     "{\"device\": \"d1\", \"offer\": %s}]}",
				     bad_offers[i].entry) > 0);
		assert_int_equal(state_from_json(doc, strlen(doc), &s, &err), -EINVAL);
		assert_one_line(err, "applied[1]: ");
		assert_one_line(err, bad_offers[i].needle);
		assert_int_equal(s.n_applied, 1);
		assert_non_null(state_applied(&s, "d0"));
		state_done(&s);
		free(err);
		free(doc);
	}
}

/* Whole documents that give nothing back. */
static const struct bad_entry bad_documents[] = {
    {"", "not valid JSON: line 1"},
    {"{\"version\": 1,", "not valid JSON"},
    {"{\"version\": 1} x", "not valid JSON"},
    {"{\"version\": 1, \"version\": 1}", "not valid JSON"},
    {"[1]", "expected an object"},
    {"{}", "version: missing"},
    {"{\"version\": 2, \"allocations\": []}", "version: 2 is not supported (only 1 is)"},
    {"{\"version\": \"1\"}", "version: expected an integer"},
    {"{\"version\": 1, \"allocations\": {}}", "allocations: expected a list"},
    {"{\"version\": 1, \"applied\": 3}", "applied: expected a list"},
    {"{\"version\": 1, \"allocation\": []}", "unknown key 'allocation'"},
};

static void test_document_errors(void **unused)
{
	for (size_t i = 0; i < sizeof(bad_documents) / sizeof(bad_documents[0]); i++) {
		const char *doc = bad_documents[i].entry;
		char *err = NULL;
		struct state s = {};

		assert_int_equal(state_from_json(doc, strlen(doc), &s, &err), -EBADMSG);
		assert_one_line(err, bad_documents[i].needle);
		assert_int_equal(s.ledger.n, 0);
		assert_int_equal(s.n_applied, 0);
		free(err);
	}
}

static void test_partial_recovery(void **unused)
{
	char *dir = tmpdir_new(), *warning = NULL, *doc, *kept;
	struct state s = {};

	doc = doc_with("{\"id\": \"" ID2 "\", \"slices\": []}");
	write_file(dir, STATE_FILE, doc, strlen(doc));
	assert_int_equal(state_load(dir, &s, &warning), 1);
	assert_one_line(warning, "allocations[1]: slices: empty list");
	assert_one_line(warning, "recovered 2 of 3 allocations");
	assert_one_line(warning, STATE_FILE ".corrupt");
	assert_allocation_ids(&s, (const char *const[]){ID1, ID3, NULL});
	kept = read_file_or_null(dir, STATE_FILE ".corrupt");
	assert_string_equal(kept, doc);
	free(kept);
	free(warning);

	/* the daemon saves what it recovered: a clean file the next start reads without fuss */
	assert_int_equal(state_save(dir, &s), 0);
	state_done(&s);
	warning = (char *)"unset";
	assert_int_equal(state_load(dir, &s, &warning), 0);
	assert_null(warning);
	assert_allocation_ids(&s, (const char *const[]){ID1, ID3, NULL});
	state_done(&s);

	/* several problems: the first is named, the others counted */
	free(doc);
	doc = strdup("{\"version\": 1, \"allocations\": [{\"id\": \"x\", \"slices\": [\"a\"]}, "
		     "{\"id\": \"" ID1 "\", \"slices\": [\"b\"]}, {}], "
		     "\"applied\": [{\"device\": \"d\"}]}");
	write_file(dir, STATE_FILE, doc, strlen(doc));
	assert_int_equal(state_load(dir, &s, &warning), 1);
	assert_one_line(warning, "allocations[0]: id: 'x' is not");
	assert_one_line(warning, "and 2 more invalid entries");
	assert_one_line(warning, "recovered 1 of 3 allocations");
	assert_allocation_ids(&s, (const char *const[]){ID1, NULL});
	assert_int_equal(s.n_applied, 0);
	state_done(&s);
	free(warning);
	free(doc);
	tmpdir_free(dir);
}

static void test_duplicate_slice(void **unused)
{
	const char *doc =
	    "{\"version\": 1, \"allocations\": ["
	    "{\"id\": \"" ID1 "\", \"slices\": [\"gpu0\", \"gpu1\"]}, "
	    "{\"id\": \"" ID2 "\", \"slices\": [\"gpu2\", \"gpu1\"]}, "
	    "{\"id\": \"" ID3 "\", \"slices\": [\"gpu2\"]}], "
	    "\"applied\": [{\"device\": \"d\", \"offer\": {\"kind\": \"whole\"}}, "
	    "{\"device\": \"d\", \"offer\": {\"kind\": \"replicas\", \"count\": 2}}]}";
	char *dir = tmpdir_new(), *warning = NULL;
	struct state s = {};

	write_file(dir, STATE_FILE, doc, strlen(doc));
	assert_int_equal(state_load(dir, &s, &warning), 1);
	/* the first holder keeps gpu1; gpu2 is then free for the third */
	assert_one_line(warning, "allocations[1]: slice 'gpu1' is held by " ID1 " already");
	assert_one_line(warning, "and 1 more invalid entries");
	assert_one_line(warning, "recovered 2 of 3 allocations");
	assert_allocation_ids(&s, (const char *const[]){ID1, ID3, NULL});
	assert_int_equal(s.n_applied, 1);
	assert_int_equal(state_applied(&s, "d")->kind, OFFER_WHOLE);
	state_done(&s);
	free(warning);
	tmpdir_free(dir);
}

/* A save that fails leaves the old state.json as it was, and no temporary file. */
static void test_save_failures(void **unused)
{
	char *dir = tmpdir_new(), *before, *after, *file = path_in(dir, "file"), *sub;
	struct rlimit saved, small;
	struct state s, big = {};

	full_state(&s);
	assert_int_equal(state_save(dir, &s), 0);
	before = read_file_or_null(dir, STATE_FILE);

	/* a bigger state that does not fit the file size limit: the write fails midway */
	for (int i = 0; i < 200; i++) {
		char id[19], slice[16];

		snprintf(id, sizeof(id), "a-%016x", i);
		snprintf(slice, sizeof(slice), "gpu%d", i);
		add_allocation(&big, id, "nvidia.com/gpu", (const char *const[]){slice, NULL},
			       OWNER_UNIT, "job.service", 0, 1);
	}
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	small = (struct rlimit){.rlim_cur = strlen(before) + 100, .rlim_max = saved.rlim_max};
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	assert_int_equal(state_save(dir, &big), -EFBIG);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	signal(SIGXFSZ, SIG_DFL);
	after = read_file_or_null(dir, STATE_FILE);
	assert_string_equal(after, before);
	free(after);
	assert_listing(dir, STATE_FILE);

	/* a read-only directory (root writes anyway: nothing to see then) */
	if (geteuid() != 0) {
		assert_int_equal(chmod(dir, 0500), 0);
		assert_int_equal(state_save(dir, &big), -EACCES);
		assert_int_equal(chmod(dir, 0700), 0);
		after = read_file_or_null(dir, STATE_FILE);
		assert_string_equal(after, before);
		free(after);
		assert_listing(dir, STATE_FILE);
	}

	/* a directory below a regular file cannot be made */
	write_file(dir, "file", "", 0);
	sub = path_in(file, "state");
	assert_int_equal(state_save(sub, &s), -ENOTDIR);
	free(sub);

	/* the rename fails: state.json is a directory that is not empty */
	sub = path_in(dir, "other");
	assert_int_equal(mkdir(sub, 0700), 0);
	free(file);
	file = path_in(sub, STATE_FILE);
	assert_int_equal(mkdir(file, 0700), 0);
	write_file(file, "x", "", 0);
	assert_true(state_save(sub, &s) < 0);
	assert_listing(sub, STATE_FILE);
	assert_listing(file, "x");
	free(sub);

	/* a state that would not load back is not written at all */
	free(s.ledger.items[1]->slices[0]);
	s.ledger.items[1]->slices[0] = strdup("gpu0"); /* held by the first allocation too */
	assert_int_equal(state_save(dir, &s), -EINVAL);
	assert_null(state_to_json(&s));
	after = read_file_or_null(dir, STATE_FILE);
	assert_string_equal(after, before);
	free(after);
	free(s.ledger.items[1]->id);
	s.ledger.items[1]->id = strdup("a-12");
	assert_int_equal(state_save(dir, &s), -EINVAL);
	assert_listing(dir, "file other " STATE_FILE);

	free(before);
	free(file);
	state_done(&s);
	state_done(&big);
	tmpdir_free(dir);
}

/* A corrupt file is never deleted: an older .corrupt is replaced, state.json moved aside. */
static void test_corrupt_replaces_older(void **unused)
{
	char *dir = tmpdir_new(), *warning = NULL, *kept;
	struct state s = {};

	write_file(dir, STATE_FILE ".corrupt", "old", 3);
	write_file(dir, STATE_FILE, "{\"version\": 9}", 14);
	assert_int_equal(state_load(dir, &s, &warning), 1);
	assert_one_line(warning, "version: 9 is not supported");
	kept = read_file_or_null(dir, STATE_FILE ".corrupt");
	assert_string_equal(kept, "{\"version\": 9}");
	assert_listing(dir, STATE_FILE ".corrupt");
	free(kept);
	free(warning);
	tmpdir_free(dir);
}

/* A state.json that is no file is an error to report, not corruption to move aside. */
static void test_not_a_file(void **unused)
{
	char *dir = tmpdir_new(), *path = path_in(dir, STATE_FILE), *warning = NULL;
	struct state s = {};

	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(state_load(dir, &s, &warning), -EISDIR);
	assert_int_equal(rmdir(path), 0);
	/* a FIFO would block the start forever if it were read */
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(state_load(dir, &s, &warning), -EBADFD);
	assert_null(warning);
	assert_listing(dir, STATE_FILE);
	free(path);
	tmpdir_free(dir);
}

/* Layouts, cordons and repartitions: written only when there are any, read back equal. */
static void test_round_trip_repartitions(void **unused)
{
	static const char *const mig[] = {"3g.40gb", "3g.40gb", NULL};
	static const char *const old[] = {"1g.10gb", "1g.10gb", NULL};
	struct state s = {}, back = {};
	struct repartition r = {};
	char *text, *again, *err = NULL;
	const struct repartition *b;

	text = state_to_json(&s);
	assert_null(strstr(text, "cordons"));
	assert_null(strstr(text, "layouts"));
	assert_null(strstr(text, "repartitions"));
	free(text);

	assert_int_equal(state_set_layout(&s, "0000:db:00.0",
					  &(struct offer){.kind = OFFER_PARTITIONS, .scheme = &nvidia_mig_scheme,
							  .layout = (char **)mig}),
			 0);
	assert_int_equal(state_set_cordon(&s, "0000:18:00.0", "fan", 1700000000000001), 0);
	/* cordoning again replaces the reason, keeps since */
	assert_int_equal(state_set_cordon(&s, "0000:18:00.0", "fan replaced", 1800000000000000), 0);
	r.device_id = strdup("0000:db:00.0");
	assert_int_equal(offer_copy(&(struct offer){.kind = OFFER_PARTITIONS, .scheme = &nvidia_mig_scheme, .layout = (char **)mig},
				    &r.target),
			 0);
	assert_int_equal(offer_copy(&(struct offer){.kind = OFFER_PARTITIONS, .scheme = &nvidia_mig_scheme, .layout = (char **)old},
				    &r.previous),
			 0);
	r.has_previous = true;
	r.has_previous_layout = true;
	assert_int_equal(offer_copy(&(struct offer){.kind = OFFER_WHOLE}, &r.previous_layout), 0);
	r.phase = REPARTITION_ROLLING_BACK;
	r.started_usec = 1700000000000002;
	r.deadline_usec = 1700000000600002;
	r.error = strdup("nvmlDeviceCreateGpuInstance(3g.40gb): Insufficient resources");
	assert_int_equal(state_add_repartition(&s, &r), 0);
	assert_null(r.device_id); /* moved in */
	r.device_id = strdup("0000:db:00.0");
	assert_int_equal(state_add_repartition(&s, &r), -EBUSY);
	repartition_done(&r);

	text = state_to_json(&s);
	assert_non_null(text);
	assert_int_equal(state_from_json(text, strlen(text), &back, &err), 0);
	assert_null(err);
	assert_true(offer_equal(state_layout(&back, "0000:db:00.0"), state_layout(&s, "0000:db:00.0")));
	assert_string_equal(state_cordon(&back, "0000:18:00.0")->reason, "fan replaced");
	assert_true(state_cordon(&back, "0000:18:00.0")->since_usec == 1700000000000001);
	b = state_repartition(&back, "0000:db:00.0");
	assert_non_null(b);
	assert_int_equal(b->phase, REPARTITION_ROLLING_BACK);
	assert_false(b->by_policy);
	assert_true(b->has_previous && b->has_previous_layout);
	assert_int_equal(b->previous_layout.kind, OFFER_WHOLE);
	assert_true(strv_equal(b->previous.layout, (char **)old));
	assert_true(b->deadline_usec == 1700000000600002);
	assert_string_equal(b->error, "nvmlDeviceCreateGpuInstance(3g.40gb): Insufficient resources");
	again = state_to_json(&back);
	assert_string_equal(again, text);
	free(again);

	/* and they go */
	assert_true(state_unset_cordon(&back, "0000:18:00.0"));
	assert_false(state_unset_cordon(&back, "0000:18:00.0"));
	state_unset_layout(&back, "0000:db:00.0");
	state_remove_repartition(&back, "0000:db:00.0");
	assert_null(state_repartition(&back, "0000:db:00.0"));
	again = state_to_json(&back);
	assert_null(strstr(again, "cordons"));
	free(again);
	free(text);
	state_done(&s);
	state_done(&back);
}

/* A bad cordon or repartition entry is dropped alone, with its place and reason. */
static const struct bad_entry bad_extras[] = {
    {"\"cordons\": [{\"device\": \"d\"}]", "cordons[0]: reason: missing"},
    {"\"cordons\": [{\"device\": \"d\", \"reason\": \"x\", \"since\": 1}]",
     "cordons[0]: unknown key 'since'"},
    {"\"cordons\": [{\"device\": \"d\", \"reason\": \"x\"}, "
     "{\"device\": \"d\", \"reason\": \"y\"}]",
     "cordons[1]: device 'd' is listed twice"},
    {"\"layouts\": [{\"device\": \"d\"}]", "layouts[0]: offer: missing"},
    {"\"repartitions\": [{\"device\": \"d\", \"phase\": \"draining\"}]",
     "repartitions[0]: target: missing"},
    {"\"repartitions\": [{\"device\": \"d\", \"target\": {\"kind\": \"whole\"}, "
     "\"phase\": \"done\"}]",
     "phase: 'done' is not draining, applying or rolling-back"},
    {"\"repartitions\": [{\"device\": \"d\", \"target\": {\"kind\": \"whole\"}}]",
     "repartitions[0]: phase: missing"},
    {"\"repartitions\": [{\"device\": \"d\", \"target\": {\"kind\": \"whole\"}, "
     "\"phase\": \"draining\", \"by_policy\": 1}]",
     "by_policy: expected true or false"},
    {"\"repartitions\": [{\"device\": \"d\", \"target\": {\"kind\": \"whole\"}, "
     "\"phase\": \"draining\", \"previous\": {\"kind\": \"mig\"}}]",
     "previous: mig_profiles: missing"},
};

static void test_repartition_errors(void **unused)
{
	for (size_t i = 0; i < sizeof(bad_extras) / sizeof(bad_extras[0]); i++) {
		char *doc, *err = NULL;
		struct state s = {};

		assert_true(asprintf(&doc,
				     "{\"version\": 1, \"allocations\": [{\"id\": \"" ID1 "\", "
				     "\"slices\": [\"gpu0\"]}], %s}",
				     bad_extras[i].entry) > 0);
		assert_int_equal(state_from_json(doc, strlen(doc), &s, &err), -EINVAL);
		assert_one_line(err, bad_extras[i].needle);
		/* the rest of the file is kept */
		assert_int_equal(s.ledger.n, 1);
		state_done(&s);
		free(err);
		free(doc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_load_missing),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_allocation_errors),
		cmocka_unit_test(test_long_strings),
		cmocka_unit_test(test_applied_errors),
		cmocka_unit_test(test_round_trip_repartitions),
		cmocka_unit_test(test_repartition_errors),
		cmocka_unit_test(test_document_errors),
		cmocka_unit_test(test_partial_recovery),
		cmocka_unit_test(test_duplicate_slice),
		cmocka_unit_test(test_save_failures),
		cmocka_unit_test(test_corrupt_replaces_older),
		cmocka_unit_test(test_not_a_file),
	};

	partition_schemes_set(backend_partition_schemes);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
